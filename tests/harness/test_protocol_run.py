"""Benchmark protocols end to end: presets, the scoring conventions, tiny train + eval per protocol."""

from __future__ import annotations

import json

import pytest
import torch

from mio_strategies.cli import main
from mio_strategies.harness._protocol_run import (
    ProtocolResult,
    format_protocol_tables,
    protocol_config,
)
from mio_strategies.metrics import (
    convention_psnr,
    convention_ssim,
    rgb_to_y,
)
from mio_strategies.protocols import ProtocolTrainDataset, ReferenceRow, get_protocol
from mio_strategies.tasks import get_task
from tests.protocol_trees import make_tree

TINY = ["--config", "srresnet", "--set", "backbone=srresnet_tiny", "--set", "period_iters=1", "--set", "batch_size=2",
        "--set", "patch_size=32", "--set", "val_size=32", "--set", "device=cpu", "--set", "log_every=1",
        "--no-progress"]


# -- scoring conventions -------------------------------------------------------------------------------
def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 40, 48, generator=g)
    return x, (x + 0.08 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def test_ssim_and_psnr_match_scikit_image_conventions():
    metrics = pytest.importorskip("skimage.metrics")
    x, y = _pair()
    for i in range(2):
        a, b = (t[i].permute(1, 2, 0).double().numpy() for t in (x, y))
        assert float(convention_psnr(y, x)[i]) == pytest.approx(metrics.peak_signal_noise_ratio(a, b, data_range=1))
        ref = metrics.structural_similarity(a, b, data_range=1, channel_axis=-1)
        assert float(convention_ssim(y, x)[i]) == pytest.approx(ref, abs=1e-10)
        ref = metrics.structural_similarity(a, b, data_range=1, channel_axis=-1, gaussian_weights=True)
        assert float(convention_ssim(y, x, window="gaussian11")[i]) == pytest.approx(ref, abs=1e-10)


def test_basicsr_window_matches_the_harness_ssim_on_8bit_images():
    from mio_strategies.metrics import ssim

    x, y = (torch.round(t * 255) / 255 for t in _pair(1))
    assert torch.allclose(convention_ssim(y, x, window="basicsr", border=4), ssim(y, x, 4), atol=1e-8)


def test_y_channel_is_bt601_and_differs_from_rgb():
    assert torch.allclose(rgb_to_y(torch.zeros(1, 3, 1, 1)), torch.tensor(16 / 255, dtype=torch.float32))
    assert torch.allclose(rgb_to_y(torch.ones(1, 3, 1, 1)), torch.tensor(235 / 255, dtype=torch.float32))
    x, y = _pair(2)
    assert not torch.allclose(convention_psnr(y, x, color="y"), convention_psnr(y, x))
    q = convention_psnr(y, x, quantize=True)
    assert not torch.equal(q, convention_psnr(y, x))  # 8-bit rounding of the output changes the score
    with pytest.raises(ValueError, match="color must be"):
        convention_psnr(x, y, color="lab")


# -- presets -------------------------------------------------------------------------------------------
def test_protocol_preset_replaces_the_backbone_schedule_and_overrides_win(tmp_path):
    cfg = protocol_config("three-task", tmp_path, "srresnet", ["backbone=srresnet_tiny", "strategy=S+EP"])
    assert (cfg.order, cfg.periods, cfg.period_iters, cfg.batch_size) == ("RNH", 6, 90_000, 32)
    assert (cfg.protocol, cfg.protocol_root, cfg.name) == ("three-task", str(tmp_path), "three-task-srresnet_tiny")
    assert protocol_config("cdd11", tmp_path, "srresnet", ["backbone=srresnet_tiny"]).balance == "samples"
    assert protocol_config("three-task", tmp_path, "srresnet", ["periods=8"]).periods == 8
    default = protocol_config("five-task", tmp_path, overrides=["strategy=S+EP"])  # every strategy applies
    assert (default.backbone, default.strategy, default.order) == ("restormer", "S+EP", "RBNHL")
    with pytest.raises(ValueError, match="exactly protocol 'three-task'"):
        protocol_config("three-task", tmp_path, "srresnet", ["order=RNHB"])
    with pytest.raises(KeyError, match="unknown protocol"):
        protocol_config("four-task", tmp_path)


def test_cdd11_batches_give_explicit_prompts_their_components_mixture(tmp_path, one_thread):
    from torch.utils.data import DataLoader

    from mio_strategies.data import mio_collate
    from mio_strategies.models import build_restorer

    make_tree("cdd11", tmp_path, n=1)
    ds = ProtocolTrainDataset(get_protocol("cdd11"), tmp_path, patch_size=32)
    batch = next(iter(DataLoader(ds, batch_size=len(ds), collate_fn=mio_collate)))
    assert batch["prompt"].shape == (len(ds), 7)
    r = build_restorer("srresnet_tiny", "explicit", seed=0)
    for p in r.injector.parameters():  # move the modulators off the identity so prompts matter
        torch.nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(0))
    i = batch["protocol_task"].index("low_haze_rain")
    lq = batch["lq"][i : i + 1]
    mixed = r(lq, batch["prompt"][i : i + 1])
    slot_only = r(lq, batch["task"][i : i + 1])
    assert not torch.allclose(mixed, slot_only)


# -- tables --------------------------------------------------------------------------------------------
def test_published_rows_sit_in_the_table_of_their_convention():
    p = get_protocol("three-task")
    rec = {"test_set": "sots", "image": "a", "psnr": 20.0, "ssim": 0.5, "psnr_alt": 22.0,
           "identity_psnr": 10.0, "identity_ssim": 0.1, "identity_psnr_alt": 12.0}
    res = ProtocolResult("mine", "three-task", [rec, {**rec, "test_set": "rain100l"}])
    y_row = ReferenceRow("YNet", "", "a test", "y", {"sots": (40.0, None)}, None)
    text = format_protocol_tables(p, [res], extra_references=[y_row])
    rgb_part, y_part = text.split("the other convention")
    assert "PromptIR, NeurIPS 2023" in rgb_part and "YNet" not in rgb_part
    assert "| YNet | 40.00 |" in y_part and "PromptIR" not in y_part.split("Published rows")[0]
    assert "| mine | 20.00 / 0.5000 | 20.00 / 0.5000 | - |" in rgb_part
    with pytest.raises(ValueError, match="protocol 'cdd11'"):
        format_protocol_tables("three-task", [ProtocolResult("x", "cdd11")])


# -- end to end ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "strategy"), [("three-task", "S+EP"), ("five-task", "M+AP"), ("cdd11", "S+EP"),
                                                ("mio-7", "S")])
def test_tiny_train_then_eval_writes_the_protocols_table(tmp_path, name, strategy, capsys, one_thread):
    root = tmp_path / "data"
    make_tree(name, root, n=1)
    run = tmp_path / "run"
    assert main(["train", "--protocol", name, "--data", str(root), "--output", str(run), "--set",
                 f"strategy={strategy}", *TINY]) == 0
    p = get_protocol(name)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    trained = [r["tasks"] for r in log if r["kind"] == "train"]
    first = p.preset.order.split("|")[0][0]
    assert trained[0] == (first if strategy.startswith("S") else p.preset.order)  # the curriculum's first stage
    assert main(["train", "--output", str(run), "--resume", "--no-progress"]) == 0  # config.yaml knows the data
    out = tmp_path / "eval"
    extra = ["--reference", "srresnet:M"] if name == "mio-7" else []
    assert main(["eval", "--protocol", name, "--data", str(root), "--checkpoint", str(run / "checkpoint.pt"),
                 "--output", str(out), "--limit", "1", *extra]) == 0
    data = json.loads((out / "results.json").read_text())
    assert list(data["results"][0]["per_set"]) == [s.name for s in p.test_sets]
    md = (out / "results.md").read_text()
    assert "Y (BT.601)" in md and "input (no restoration)" in md
    for ref in p.references:
        assert ref.method in md
    if name == "mio-7":
        assert "paper srresnet M (in-dis)" in md
    capsys.readouterr()


def test_eval_protocol_refuses_bad_combinations(tmp_path, capsys):
    root = tmp_path / "data"
    make_tree("three-task", root, n=1)
    ck = str(tmp_path / "missing.pt")
    assert main(["eval", "--protocol", "three-task", "--checkpoint", ck, "--output", str(tmp_path / "o")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["eval", "--protocol", "three-task", "--data", str(root), "--testset", str(root), "--checkpoint", ck,
                 "--output", str(tmp_path / "o")]) == 2
    assert main(["eval", "--protocol", "three-task", "--data", str(root), "--reference", "srresnet:M",
                 "--checkpoint", ck, "--output", str(tmp_path / "o")]) == 2
    assert "mio-7" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", ck, "--output", str(tmp_path / "o")]) == 2
    assert "--testset" in capsys.readouterr().err
    assert main(["train", "--protocol", "three-task", "--output", str(tmp_path / "r")]) == 2


def test_the_speed_flags_reach_a_protocols_run_or_are_refused_with_the_reason(tmp_path, capsys, one_thread):
    root = tmp_path / "data"
    make_tree("three-task", root, n=1)
    run = tmp_path / "run"
    assert main(["train", "--protocol", "three-task", "--data", str(root), "--output", str(run), "--precision", "bf16",
                 "--channels-last", *TINY]) == 0
    saved = (run / "config.yaml").read_text()
    assert "precision: bf16" in saved and "channels_last: true" in saved
    capsys.readouterr()
    for flag, value in (("--synthesis", "device"), ("--jpeg-codec", "diffjpeg")):
        out = tmp_path / f"refused-{value}"
        assert main(["train", "--protocol", "three-task", "--data", str(root), "--output", str(out), flag, value,
                     *TINY]) == 2
        err = capsys.readouterr().err
        assert "protocol" in err and value in err, err
        assert not out.exists()  # refused before anything is written


def test_mio7_synthesizes_its_training_data_as_the_config_says(tmp_path, one_thread):
    from mio_strategies.harness._protocol_run import protocol_train_dataset, protocol_validation_set

    root = tmp_path / "data"
    make_tree("mio-7", root, n=1)
    device = protocol_train_dataset(protocol_config("mio-7", root, "srresnet", ["synthesis=device"]))
    assert device.synthesis == "device" and any(device[i]["deferred"] for i in range(len(device)))
    ref = protocol_config("mio-7", root, "srresnet", ["data_implementation=reference"])
    assert protocol_train_dataset(ref).implementation == "reference"
    assert protocol_validation_set(ref).implementation == "reference"
    run = tmp_path / "run"  # a run degrading mio-7's batches on the device trains
    assert main(["train", "--protocol", "mio-7", "--data", str(root), "--output", str(run), "--synthesis", "device",
                 *TINY]) == 0
    assert load_checkpoint_config(run)["synthesis"] == "device"


def load_checkpoint_config(run):
    from mio_strategies.harness import load_checkpoint

    return load_checkpoint(run / "checkpoint.pt")["config"]


@pytest.mark.parametrize(("key", "value"), [("stream", "philox"), ("jpeg_codec", "diffjpeg")])
def test_data_keys_apply_to_a_synthesizing_protocol_and_are_refused_by_one_that_reads_pairs(tmp_path, key, value):
    from mio_strategies.harness._protocol_run import protocol_train_dataset, protocol_validation_set

    root = tmp_path / "data"
    make_tree("mio-7", root, n=1)
    cfg = protocol_config("mio-7", root, "srresnet", [f"{key}={value}"])
    train_set, val_set = protocol_train_dataset(cfg), protocol_validation_set(cfg)
    assert getattr(train_set, key) == value and getattr(val_set, key) == value
    task = "noise" if key == "stream" else "jpeg"
    item = next(train_set[i] for i in range(len(train_set)) if get_task(train_set[i]["task"]).name == task)
    assert item["params"][{"stream": "stream", "jpeg_codec": "codec"}[key]] == value  # recorded by the draw
    with pytest.raises(ValueError, match=f"{key} '{value}' .* protocol 'three-task' reads its degraded training "
                                         f"images from its folders: leave {key} null"):
        protocol_config("three-task", root, "srresnet", [f"{key}={value}"])


def test_a_signal_stops_a_protocols_run_with_one_line_and_a_resumable_checkpoint(tmp_path, capsys, monkeypatch,
                                                                                   one_thread):
    import os
    import signal

    from mio_strategies.harness import _protocol_cli, load_checkpoint

    real_train = _protocol_cli.train

    def send_sigterm_after_the_first_step(record):
        if record.get("kind") == "train":
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(_protocol_cli, "train",
                        lambda *a, **k: real_train(*a, callback=send_sigterm_after_the_first_step, **k))
    root = tmp_path / "data"
    make_tree("three-task", root, n=1)
    run = tmp_path / "run"
    assert main(["train", "--protocol", "three-task", "--data", str(root), "--output", str(run), *TINY]) == 143
    err = capsys.readouterr().err
    assert "Traceback" not in err and "training interrupted by SIGTERM" in err and "--resume" in err
    saved = load_checkpoint(run / "checkpoint.pt")
    assert not saved["finished"] and saved["iteration"] >= 1
    monkeypatch.setattr(_protocol_cli, "train", real_train)
    assert main(["train", "--output", str(run), "--resume", "--no-progress"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["finished"]


def test_validation_gives_explicit_prompts_the_composite_mixture(tmp_path):
    from mio_strategies.harness import evaluate
    from mio_strategies.protocols import ProtocolTestDataset

    make_tree("cdd11", tmp_path, n=1)
    seen = []

    class Recorder:  # an explicit-prompt restorer that records the prompt request and returns its input
        prompt = "explicit"

        def restore(self, lq, task):
            seen.append(task)
            return lq

    evaluate(Recorder(), ProtocolTestDataset(get_protocol("cdd11"), tmp_path, "low_haze"))
    assert seen[0].dtype.is_floating_point and seen[0].shape == (1, 7)
    assert seen[0][0, 6] == seen[0][0, 5] == 0.5
