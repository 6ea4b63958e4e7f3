"""Training harness: configs, every strategy end to end, exact resume, checkpoints, demo, DDP init."""

from __future__ import annotations

import functools
import operator
import os

import pytest
import torch

from mio_strategies.harness import (
    STRATEGIES,
    CheckpointMismatchError,
    NotACheckpointError,
    build_restorer,
    load_checkpoint,
    load_config,
    load_restorer,
    run_demo,
    save_checkpoint,
    train,
)
from mio_strategies.harness._resume import check_compatible
from tests.tiny_runs import TINY
from tests.tiny_runs import images as _images
from tests.tiny_runs import same_state as _same
from tests.tiny_runs import tiny_data as _data
from tests.tiny_runs import tiny_val as _val

pytestmark = pytest.mark.basicsr

# -- config ------------------------------------------------------------------------------------------
def test_paper_presets_follow_the_protocol():
    s = load_config("srresnet")
    assert (s.periods, s.period_iters, s.batch_size, s.patch_size, s.order) == (10, 250_000, 16, 128, "SBNJRHL")
    assert (s.optimizer, s.lr, s.lr_min, s.betas, s.ema_decay) == ("adam", 2e-4, 1e-7, (0.9, 0.99), 0.999)
    assert load_config("swinir").period_iters == 100_000
    r = load_config("restormer")
    assert (r.optimizer, r.order, r.period_iters) == ("adamw", "RJBSNHL", 100_000)
    assert load_config("promptir").backbone == "promptir"


def test_list_presets_shows_each_full_protocol_preset_with_its_measured_gpu_hours(capsys):
    from mio_strategies.cli import main
    from mio_strategies.harness._config import preset_metadata

    assert main(["train", "--list-presets"]) == 0
    presets = capsys.readouterr().out.split("backbones:")[0]
    lines = {ln.split()[0]: ln for ln in presets.splitlines() if ln.startswith("  ")}
    for name in ("srresnet", "swinir", "restormer", "promptir"):
        hours = preset_metadata(name)["expected"]["h200_hours_per_strategy"]
        assert hours["M"] > 0
        assert f"[one H200: M {hours['M']} h" in lines[name]
    assert "S+EP 25 h" in lines["srresnet"]
    assert "one H200" not in lines["cpu_demo"]
    # metadata is not a training option
    assert not hasattr(load_config("swinir"), "expected")


def test_overrides_set_values_and_nested_backbone_options():
    cfg = load_config("cpu_demo", ["strategy=s+ep", "backbone_kwargs.num_feat=8", "lr=5e-4"])
    assert cfg.strategy == "S+EP" and cfg.backbone_kwargs["num_feat"] == 8 and cfg.lr == 5e-4
    assert cfg.backbone_kwargs["num_block"] == 4  # kept from the preset


def test_another_backbone_starts_from_its_own_defaults(tmp_path):
    # SRResNet options (num_feat 64, num_block 8) are not carried to the U-Net
    srres = tmp_path / "srres.yaml"
    srres.write_text("base: mini_quick\nbackbone: srresnet_tiny\nbackbone_kwargs: {num_feat: 64, num_block: 8}\n")
    assert load_config(srres, ["backbone=unet_tiny"]).backbone_kwargs == {}
    assert load_config(srres, ["backbone=unet_tiny", "backbone_kwargs.levels=2"]).backbone_kwargs == {"levels": 2}
    assert load_config(srres, ["backbone=srresnet_tiny"]).backbone_kwargs == {"num_feat": 64, "num_block": 8}
    path = tmp_path / "u.yaml"
    path.write_text(f"base: {srres.name}\nbackbone: unet_tiny\nbackbone_kwargs: {{num_feat: 8}}\n")
    assert load_config(path).backbone_kwargs == {"num_feat": 8}


def test_backbone_kwargs_that_is_not_a_mapping_names_the_shell_quoting_fix(tmp_path):
    # an unquoted {a:1,b:2} on the command line is brace-expanded by bash into strings
    with pytest.raises(TypeError, match=r"backbone_kwargs must be a mapping, got 'num_feat:16'.*--set 'backbone_kwargs=\{num_feat: 32"):
        load_config("cpu_demo", ["backbone_kwargs=num_feat:16"])
    path = tmp_path / "bad.yaml"
    path.write_text("base: cpu_demo\nbackbone_kwargs: [8, 2]\n")
    with pytest.raises(TypeError, match=r"backbone_kwargs must be a mapping, got \[8, 2\]"):
        load_config(path)
    # YAML without a space after the colon reads one key "num_feat:16"
    with pytest.raises(KeyError, match=r"no option 'num_feat:16'; did you mean 'num_feat'\? \(YAML needs a space after the colon"):
        load_config("cpu_demo", ["backbone_kwargs={num_feat:16}"])
    assert load_config("cpu_demo", ["backbone_kwargs={num_feat: 16}"]).backbone_kwargs["num_feat"] == 16


def test_yaml_file_with_base_preset(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("base: swinir\nstrategy: S\nperiod_iters: 10\n")
    cfg = load_config(path)
    assert (cfg.backbone, cfg.strategy, cfg.total_iters) == ("swinir", "S", 100)


def test_unknown_config_key_suggests_the_closest():
    with pytest.raises(KeyError, match=r"unknown config key 'perod_iters': did you mean 'period_iters'"):
        load_config("srresnet", ["perod_iters=10"])


def test_unknown_strategy_backbone_and_preset_list_valid_ones():
    with pytest.raises(ValueError, match=r"unknown strategy 'S\+XP'.*'M', 'S', 'M\+EP', 'S\+EP', 'M\+AP', 'S\+AP'"):
        load_config("srresnet", ["strategy=S+XP"])
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet'.*valid backbones are \["):
        load_config("srresnet", ["backbone=resnet"])
    with pytest.raises(ValueError, match=r"unknown preset 'srresnett'.*did you mean 'srresnet'"):
        load_config("srresnett")


def test_prompt_strategy_on_promptir_is_refused():
    with pytest.raises(ValueError, match=r"'promptir' already has its own adaptive prompt"):
        load_config("promptir", ["strategy=S+EP"])


# -- training ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "strategy, reset, steps",
    # sequential: the only stage start after the first is iteration 2 (B enters): 14 steps since;
    # mixed training has no stage start after the first; every period start: 2 steps since
    [("S", "stage", 14), ("S", "period", 2), ("S", None, 16), ("M", "stage", 16), ("M", "period", 2)],
)
def test_optimizer_resets_at_stage_or_period_starts(strategy, reset, steps, tmp_path):
    # order SB over 8 periods of 2 iterations: B enters at period 1, then 6 all-task periods. The reference
    # chained one job per stage (a new Adam where tasks enter): Adam's step count at the end tells how many
    # iterations ran since the last reset
    over = [f"strategy={strategy}", "order=SB", "periods=8", "period_iters=2", "batch_size=2", "patch_size=16",
            "val_every=0", "ema_decay=0", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1"]
    if reset:
        over.append(f"reset_optimizer_each_{reset}=true")
    cfg = load_config("cpu_demo", over)
    res = train(cfg, tmp_path / "run", dataset=_data(cfg), progress=False)
    state = torch.load(res.checkpoint, weights_only=True)["optimizer"]["state"]
    assert {int(v["step"]) for v in state.values()} == {steps}


def test_both_optimizer_resets_are_refused():
    with pytest.raises(ValueError, match=r"reset_optimizer_each_period and reset_optimizer_each_stage are both true: choose one"):
        load_config("cpu_demo", ["reset_optimizer_each_period=true", "reset_optimizer_each_stage=true"])


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_trains_end_to_end(strategy, tmp_path):
    cfg = load_config("cpu_demo", TINY + [f"strategy={strategy}"])
    res = train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    assert res.finished and res.iteration == 14
    assert [h["tasks"] for h in res.history][::2] == (
        ["S", "SB", "SBN", "SBNJ", "SBNJR", "SBNJRH", "SBNJRHL"] if strategy.startswith("S") else ["SBNJRHL"] * 7
    )
    assert res.validation and set(res.validation[-1]["psnr"]) == {"sr", "blur", "noise", "jpeg", "rain", "haze", "lowlight"}
    restorer, cfg2, state = load_restorer(res.checkpoint)
    assert cfg2.strategy == strategy and state["finished"]
    assert (restorer.injector is None) == (strategy in ("M", "S"))


@pytest.mark.parametrize("strategy", ["S+EP", "S+AP"])
def test_converged_tier_preset_trains_with_prompts_on_its_channel_attention_unet(strategy, tmp_path):
    shrink = [o for o in TINY if not o.startswith(("backbone", "ema_decay"))]
    cfg = load_config("mini_converged", shrink + ["backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1",
                                                   "patch_size=16", "val_size=24", f"strategy={strategy}"])
    assert cfg.backbone == "unet_tiny" and cfg.backbone_kwargs["channel_attention"] is True and cfg.ema_decay == 0.999
    res = train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    assert res.finished
    restorer, _, _ = load_restorer(res.checkpoint)
    assert type(restorer.backbone.dec[0][0]).__name__ == "RCAB"
    assert sorted(restorer.injector.target_names) == ["conv_last", "dec.0", "dec.1", "dec.2", "latent"]


def test_stop_after_must_be_a_non_negative_integer(tmp_path):
    cfg = load_config("cpu_demo", TINY)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match=rf"stop_after must be a non-negative integer, got {bad!r}"):
            train(cfg, tmp_path / "run", progress=False, stop_after=bad)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("extra", [
    ["strategy=S+EP", "period_iters=3"],
    # drop-path draws from torch's global generator in every step: resume must repeat those draws too
    ["backbone=swinir_tiny", "backbone_kwargs.drop_path_rate=0.5", "strategy=S", "period_iters=2", "val_every=4"],
], ids=["srresnet-S+EP", "swinir-drop-path"])
def test_resume_equals_uninterrupted(tmp_path, extra):
    base = TINY if not extra[0].startswith("backbone=") else [x for x in TINY if not x.startswith("backbone")]
    cfg = load_config("cpu_demo", base + extra)
    full = train(cfg, tmp_path / "full", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    part = train(cfg, tmp_path / "part", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=8)
    assert not part.finished and part.iteration == 8
    torch.manual_seed(12345)  # the caller's generator state must not matter
    done = train(cfg, tmp_path / "part", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, resume=True)
    assert done.finished
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(done.checkpoint)
    assert _same(a["model"], b["model"]) and _same(a["ema"], b["ema"]) and _same(a["optimizer"], b["optimizer"])
    assert [h["loss"] for h in full.history] == [h["loss"] for h in done.history]
    assert a["sampler"] == b["sampler"]
    # the resumed run's log is the uninterrupted run's log (no record twice)
    assert (tmp_path / "part" / "log.jsonl").read_text() == (tmp_path / "full" / "log.jsonl").read_text()


class _NoisyData(torch.utils.data.Dataset):
    """A user dataset that draws from torch's global generator in __getitem__ (random noise on the input)."""

    def __init__(self, base):
        self.base, self.task_ids = base, base.task_ids

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = dict(self.base[i])
        item["lq"] = item["lq"] + 0.05 * torch.randn(item["lq"].shape)
        return item


def test_resume_is_exact_for_a_dataset_that_draws_from_the_global_generator(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=2"])
    full = train(cfg, tmp_path / "full", dataset=_NoisyData(_data(cfg)), val_dataset=_val(cfg), progress=False)
    train(cfg, tmp_path / "part", dataset=_NoisyData(_data(cfg)), val_dataset=_val(cfg), progress=False, stop_after=5)
    done = train(cfg, tmp_path / "part", dataset=_NoisyData(_data(cfg)), val_dataset=_val(cfg), progress=False,
                 resume=True)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in done.history]


def test_ema_moves_every_float_tensor_a_step_towards_the_live_weights():
    from mio_strategies.harness._loop import EMA, float_state
    from mio_strategies.models import build_restorer

    restorer = build_restorer("srresnet_tiny", "explicit", backbone_kwargs={"num_feat": 4, "num_block": 1},
                              seed=0, prompt_size=16)
    ema = EMA(restorer, 0.75)
    start = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in restorer.parameters():
            p.add_(1.0)
    ema.update(restorer)
    live = float_state(restorer)
    assert set(ema.shadow) == set(live) and any(k.startswith("injector.") for k in live)
    for k, v in ema.shadow.items():
        torch.testing.assert_close(v, 0.75 * start[k] + 0.25 * live[k])


def test_a_resumed_run_reports_the_time_of_every_leg(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=2"])
    part = train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=5)
    ckpt = load_checkpoint(part.checkpoint)
    first = ckpt["timing"]
    # the same checkpoint as if written before the run's time was recorded
    del ckpt["timing"]
    (tmp_path / "old").mkdir()
    save_checkpoint(ckpt, tmp_path / "old" / "checkpoint.pt")
    assert first["steps"] == 5 and part.run_seconds == pytest.approx(part.seconds)
    assert 0 < first["step_seconds"] <= first["seconds"] <= part.seconds
    done = train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, resume=True)
    whole = load_checkpoint(done.checkpoint)["timing"]
    assert whole["steps"] == cfg.total_iters and done.iteration == cfg.total_iters
    assert done.run_seconds == pytest.approx(first["seconds"] + done.seconds)
    assert whole["step_seconds"] > first["step_seconds"] and done.run_seconds > done.seconds
    assert done.run_iters_per_second == pytest.approx(whole["steps"] / whole["step_seconds"])
    # resumed from a checkpoint written before the run's time was recorded: only this leg's time is known
    legacy = train(cfg, tmp_path / "old", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, resume=True)
    assert legacy.finished and legacy.run_seconds is None and legacy.run_iters_per_second is None
    assert load_checkpoint(legacy.checkpoint)["timing"] is None


def test_training_leaves_the_callers_generators_as_they_were(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=1"])
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_resume_drops_log_records_after_the_checkpoint(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=2", "checkpoint_every=4"])
    train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=6)
    # the run was cut at 6 with its checkpoint there; pretend it died at 5, after the checkpoint of 4
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["iteration"] == 6
    train(cfg, tmp_path / "ref", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=4)
    import shutil

    shutil.copy(tmp_path / "ref" / "checkpoint.pt", tmp_path / "run" / "checkpoint.pt")  # log says 6, checkpoint 4
    with (tmp_path / "run" / "log.jsonl").open("a") as fh:
        fh.write('{"kind": "train", "itera')  # a line cut by the crash
    train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, resume=True)
    import json

    iters = [json.loads(x)["iteration"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
             if json.loads(x)["kind"] == "train"]
    assert iters == list(range(1, 15))


def test_logged_lr_is_the_lr_of_that_step(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=3"])
    res = train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    lrs = [h["lr"] for h in res.history]
    for p in range(cfg.periods):  # each period starts at lr and anneals towards lr_min
        period = lrs[3 * p: 3 * p + 3]
        assert period[0] == pytest.approx(cfg.lr) and period[0] > period[1] > period[2] > cfg.lr_min
    assert [h["period"] for h in res.history][:4] == [1, 1, 1, 2]


def test_resume_with_other_optimisation_or_data_settings_is_refused(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=2", "ema_decay=0"])
    train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=3)
    for change, pattern in ((["lr=5e-3"], r"lr: 0\.001 in the checkpoint, 0\.005 requested"),
                            (["ema_decay=0.9"], r"ema_decay: 0\.0 in the checkpoint, 0\.9 requested"),
                            (["preset=out"], r"preset: 'in' in the checkpoint, 'out' requested"),
                            (["optimizer=adamw", "weight_decay=0.5"], r"optimizer: 'adam' .*weight_decay: 0\.0")):
        with pytest.raises(CheckpointMismatchError, match=pattern + r".*resume with the run's own settings"):
            train(load_config(cfg.to_dict(), change), tmp_path / "run", dataset=_data(cfg), progress=False, resume=True)
    # what does not change the run may change: logging, validation, the device
    free = load_config(cfg.to_dict(), ["log_every=2", "val_every=2", "device=cpu", "name=again"])
    assert train(free, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, resume=True).finished


def test_a_failing_config_leaves_the_folder_it_would_overwrite(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=1"])
    train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    for bad in (["train_images=" + str(tmp_path / "nope")], ["val_images=" + str(tmp_path / "nope")]):
        with pytest.raises(FileNotFoundError, match=r"nope' does not exist"):
            train(load_config(cfg.to_dict(), bad), tmp_path / "run", progress=False, overwrite=True)
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
    # a backbone option the builder refuses fails when the model is built, before the folder is replaced
    with pytest.raises(ValueError, match=r"num_feat"):
        train(load_config(cfg.to_dict(), ["backbone_kwargs.num_feat=0"]), tmp_path / "run", dataset=_data(cfg),
              progress=False, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
    # too few periods for a sequential order is refused when the config is built, before any training
    with pytest.raises(ValueError, match=r"periods=3 is fewer than the 7 stages"):
        load_config("cpu_demo", ["strategy=S", "periods=3"])
    # mixed training has a single stage: any number of periods
    m = load_config("cpu_demo", TINY + ["periods=2", "period_iters=1"])
    assert train(m, tmp_path / "m", dataset=_data(m), val_dataset=_val(m), progress=False).iteration == 2


def test_bad_types_name_the_key(tmp_path):
    with pytest.raises(TypeError, match=r"betas must be two numbers in \[0, 1\), e\.g\. \[0\.9, 0\.99\], got 0\.9"):
        load_config("cpu_demo", ["betas=0.9"])
    with pytest.raises(TypeError, match=r"order must be a string of task letters or names .*got 5"):
        load_config("cpu_demo", ["order=5"])
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'cuda:x'"):
        load_config("cpu_demo", ["device=cuda:x"])
    assert load_config("cpu_demo", ["device=cuda:1"]).device == "cuda:1"


def test_a_cuda_device_the_machine_lacks_is_named(monkeypatch):
    from mio_strategies.harness._loop import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda", 1) == torch.device("cuda", 1)  # the local rank's device
    assert resolve_device("cuda:1", 0) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"device 'cuda:2' requested but this machine has 2 CUDA device\(s\): use cuda:0 to cuda:1"):
        resolve_device("cuda:2", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device 'cuda' requested but no CUDA device is available: use device=cpu"):
        resolve_device("cuda", 0)


def test_config_base_loops_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\nlr: 1.0e-3\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    for name in ("a.yaml", "self.yaml"):
        with pytest.raises(ValueError, match=r"config 'base' chain loops: .*cannot be its own base"):
            load_config(tmp_path / name)
    (tmp_path / "ok.yaml").write_text("base: cpu_demo\nlr: 3.0e-4\n")
    (tmp_path / "top.yaml").write_text("base: ok.yaml\nseed: 3\n")
    cfg = load_config(tmp_path / "top.yaml")
    assert (cfg.lr, cfg.seed, cfg.backbone) == (3e-4, 3, "srresnet_tiny")


def test_existing_output_folder_is_refused_unless_overwrite(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["periods=7", "period_iters=1"])
    train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    with pytest.raises(FileExistsError, match=r"already exists and is not empty: pass overwrite=True to replace it, or resume=True"):
        train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    res = train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, overwrite=True)
    assert res.finished


@pytest.mark.skipif(os.name != "posix", reason="the folder lock uses fcntl")
def test_a_folder_another_process_trains_into_is_refused(tmp_path):
    import fcntl

    # a relaunched benchmark once resumed runs that orphaned workers were still training: two processes
    # interleaved one run's checkpoints and log
    cfg = load_config("cpu_demo", TINY + ["periods=7", "period_iters=1"])
    run, lock = tmp_path / "run", tmp_path / ".run.lock"
    train(cfg, run, dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=3)
    before = (run / "checkpoint.pt").read_bytes()
    with open(lock, "w") as other:  # another open file: flock conflicts with it as with another process
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for kw in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(FileExistsError, match=r"run' is being trained into by another process \(it holds "
                                                      r"'.*\.run\.lock'\): wait for it to finish or stop it"):
                train(cfg, run, dataset=_data(cfg), val_dataset=_val(cfg), progress=False, **kw)
        assert (run / "checkpoint.pt").read_bytes() == before  # untouched
    res = train(cfg, run, dataset=_data(cfg), val_dataset=_val(cfg), progress=False, resume=True)
    assert res.finished and not lock.exists()  # released and removed at the end
    # the CLI reports it as one line
    from mio_strategies.cli import main

    with open(lock, "w") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["train", "--config", "cpu_demo", *functools.reduce(operator.iadd, (["--set", o] for o in TINY), []), "--output", str(run),
                     "--overwrite", "--no-progress"]) == 2
    assert (run / "checkpoint.pt").is_file()


def test_resume_from_another_strategy_is_refused(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=1"])
    train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    other = cfg.replace(strategy="S+EP", backbone_kwargs={"num_feat": 8, "num_block": 1})
    with pytest.raises(CheckpointMismatchError, match=r"strategy: 'M' in the checkpoint, 'S\+EP' requested.*num_feat"):
        train(other, tmp_path / "run", dataset=_data(other), progress=False, resume=True)
    with pytest.raises(CheckpointMismatchError, match=r"backbone: 'srresnet_tiny' in the checkpoint, 'swinir' requested"):
        load_restorer(tmp_path / "run" / "checkpoint.pt", expect={"backbone": "swinir"})


def test_checkpoint_write_is_atomic_and_loads_weights_only(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"format": "mio-strategies", "version": 1, "config": {}, "x": torch.ones(2)}, path)

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"format": "mio-strategies", "version": 1, "config": {}, "x": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*bad\.pt"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"weight": torch.ones(1)}, tmp_path / "plain.pt")  # readable, but a plain state dict
    with pytest.raises(NotACheckpointError, match=r"plain\.pt' is not a mio-strategies checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_check_compatible_lists_every_difference():
    with pytest.raises(CheckpointMismatchError, match=r"backbone: 'a' .* 'b' requested; strategy: 'M' .* 'S' requested"):
        check_compatible({"config": {"backbone": "a", "strategy": "M"}}, {"backbone": "b", "strategy": "S"}, resume=False)


@pytest.mark.distributed
def test_single_process_gloo_group_trains(tmp_path, monkeypatch):
    import torch.distributed as dist

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(29500 + os.getpid() % 1000))
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        cfg = load_config("cpu_demo", TINY + ["period_iters=1", "strategy=S"])
        res = train(cfg, tmp_path / "ddp", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
        assert res.finished and dist.is_initialized()
    finally:
        dist.destroy_process_group()


def _ddp_worker(rank, world, store, cfg_dict, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        cfg = load_config(cfg_dict)
        res = train(cfg, out, dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
        # train returns on no rank before rank 0 has written the final checkpoint that every result names
        assert res.checkpoint.is_file() and load_checkpoint(res.checkpoint)["finished"]
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_processes_train_like_one_with_the_global_batch(tmp_path):
    """Each rank trains on its shard of the global batch and the gradients are averaged, so two processes
    with batch 2 follow the same weights as one process with batch 4 (up to float summation order). Adam
    is nearly blind to the gradients' scale, so this checks the sharding and the all-reduce, not the 1/world."""
    cfg = load_config("cpu_demo", TINY + ["period_iters=1", "strategy=S+EP", "batch_size=2", "ema_decay=0"])
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), cfg.to_dict(), str(tmp_path / "ddp")),
                                nprocs=2)
    one = cfg.replace(batch_size=4)
    res = train(one, tmp_path / "one", dataset=_data(one), val_dataset=_val(one), progress=False)
    a, b = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt"), load_checkpoint(res.checkpoint)
    assert a["iteration"] == b["iteration"] == cfg.total_iters
    def tensors(state, prefix=""):
        for k, v in state.items():
            if isinstance(v, dict):
                yield from tensors(v, f"{prefix}{k}.")
            elif isinstance(v, torch.Tensor):
                yield f"{prefix}{k}", v

    ta, tb = dict(tensors(a["model"])), dict(tensors(b["model"]))
    assert ta.keys() == tb.keys() and len(ta) > 10
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], rtol=1e-4, atol=1e-6, msg=k)
    init = build_restorer(cfg.backbone, cfg.strategy_prompt, backbone_kwargs=cfg.backbone_kwargs,
                          seed=cfg.seed, prompt_size=cfg.prompt_size).state_dict()
    assert not _same(b["model"], init)  # the weights did train


def test_demo_code_path_with_a_tiny_budget(tmp_path):
    out = tmp_path / "demo"
    res = run_demo(out, overrides=["period_iters=1", "batch_size=2", "patch_size=16", "val_size=24",
                                   "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1", "prompt_size=16"],
                   progress=False)
    assert set(res["results"]) == {"M", "S+EP"}
    assert "| identity |" in res["table"] and "| S+EP |" in res["table"]
    for name in ("results.md", "results_psnr.csv", "results.json", "report.md"):
        assert (out / name).is_file()
    report = (out / "report.md").read_text()
    assert "identity" in report and "S+EP" in report
    assert "DDR (PCA of the pooled features of `body.0`)" in report  # SRResNet: the last residual block
    assert "Explicit-prompt rows are given each image's task" in report  # the paper's tables use a classifier
    assert "Wall time of each training, on this machine under its load at the time" in report  # not a speed
    assert "Paired differences to M, " in res["summary"] and "- S+EP - M: " in res["summary"]
    with pytest.raises(FileExistsError, match="pass overwrite=True to replace it"):
        run_demo(out, progress=False)


# -- exported and shipped weights ---------------------------------------------------------------------
UNET = [x for x in TINY if not x.startswith("backbone")] + [
    "backbone=unet_tiny", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1", "backbone_kwargs.levels=2",
    "periods=7", "period_iters=1",
]


def _exported(tmp_path, strategies=("M", "S+EP")):
    from mio_strategies.harness import export_weights

    folder = tmp_path / "weights"
    for s in strategies:
        cfg = load_config("cpu_demo", UNET + [f"strategy={s}"])
        res = train(cfg, tmp_path / s.replace("+", "_"), dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
        export_weights(res.checkpoint, folder / (s.replace("+", "_") + ".pt"))
    return folder


def test_exported_weights_are_the_runs_ema_model_without_training_state(tmp_path):
    from mio_strategies.harness import export_weights, shipped_weights

    folder = _exported(tmp_path, ["S+EP"])
    full, _, _ = load_restorer(tmp_path / "S_EP" / "checkpoint.pt")
    slim, cfg, state = load_restorer(folder / "S_EP.pt")
    assert cfg.strategy == "S+EP" and state["weights"] == "ema" and "optimizer" not in state and "sampler" not in state
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(full(x, torch.tensor([2])), slim(x, torch.tensor([2])))
    assert (folder / "S_EP.pt").stat().st_size < (tmp_path / "S_EP" / "checkpoint.pt").stat().st_size / 2
    assert shipped_weights(folder) == {"S+EP": folder / "S_EP.pt"}
    # exporting an exported file keeps its label (its EMA weights are its "model" now)
    again = export_weights(folder / "S_EP.pt", tmp_path / "again.pt")
    assert load_checkpoint(again)["weights"] == "ema"
    with pytest.raises(FileExistsError, match=r"S_EP\.pt' already exists: pass overwrite=True"):
        export_weights(tmp_path / "S_EP" / "checkpoint.pt", folder / "S_EP.pt")
    # exported weights cannot be resumed (they have no optimizer or sampler state)
    run = tmp_path / "again"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((folder / "S_EP.pt").read_bytes())
    with pytest.raises(ValueError, match=r"holds exported weights .* cannot be resumed"):
        train(cfg, run, dataset=_data(cfg), progress=False, resume=True)
    # an unfinished run is not exported
    part = train(cfg, tmp_path / "part", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=3)
    with pytest.raises(ValueError, match=r"unfinished run \(iteration 3 of 7\)"):
        export_weights(part.checkpoint, tmp_path / "part.pt")
    assert not (tmp_path / "part.pt").exists()


def test_demo_evaluates_pretrained_weights_without_training(tmp_path, monkeypatch):
    folder = _exported(tmp_path)
    out = tmp_path / "demo"
    res = run_demo(out, pretrained=folder, progress=False)  # every strategy the folder holds, M first
    assert list(res["results"]) == ["M", "S+EP"] and "| S+EP |" in res["table"]
    assert not (out / "M").exists() and not (out / "S_EP").exists()  # nothing trained
    report = (out / "report.md").read_text()
    assert "Pretrained weights (not trained here): M: " in report and "7 iterations, ema weights" in report
    assert "Backbone `unet_tiny`" in report
    assert (out / "ddr.png").is_file() and set(res["chi"]) == {"M", "S+EP"}
    assert "DDR (PCA of the pooled features of `dec.0`)" in report  # a U-Net's finest decoder scale
    # the same numbers as evaluating the weights directly
    from mio_strategies.data import PairedFolderDataset
    from mio_strategies.harness import evaluate

    data = PairedFolderDataset(out / "testset")
    direct = evaluate(load_restorer(folder / "S_EP.pt")[0], [data[i] for i in range(0, len(data), 7)])
    demo = {(r["task"], r["image"]): r["psnr"] for r in res["results"]["S+EP"].records}
    assert {(r["task"], r["image"]): pytest.approx(r["psnr"]) for r in direct.records}.items() <= demo.items()
    # the command line passes the folder through (and refuses a missing one before writing)
    from mio_strategies.cli import main
    from mio_strategies.harness import _demo

    seen = {}
    monkeypatch.setattr(_demo, "run_demo", lambda *a, **k: seen.update(k) or {"table": "t", "paths": {}})
    assert main(["demo", "--pretrained", str(folder), "--output", str(tmp_path / "d1")]) == 0
    assert seen["pretrained"] == str(folder) and seen["strategies"] is None
    assert main(["demo", "--pretrained", "--strategies", "S+EP", "--output", str(tmp_path / "d1")]) == 0
    assert seen["pretrained"] is True and seen["strategies"] == ["S+EP"]
    monkeypatch.undo()
    assert main(["demo", "--pretrained", str(tmp_path / "none"), "--output", str(tmp_path / "d2")]) == 2
    assert not (tmp_path / "d2").exists()


def test_demo_pretrained_refuses_what_it_cannot_do_before_writing(tmp_path, monkeypatch):
    from mio_strategies.harness import _weights

    folder = _exported(tmp_path, ["M"])
    out = tmp_path / "demo"
    with pytest.raises(FileNotFoundError, match=r"has no weights S_EP\.pt \(weights of \['S\+EP'\]\)"):
        run_demo(out, pretrained=folder, strategies=["M", "S+EP"], progress=False)
    monkeypatch.setattr(_weights, "WEIGHTS_DIR", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"the package ships no demo weights \(files named like M\.pt, S_EP\.pt\): "
                                                r"run the demo without --pretrained"):
        run_demo(out, pretrained=True, progress=False)
    with pytest.raises(FileNotFoundError, match=r"the package ships no demo weights M_EP\.pt \(weights of \['M\+EP'\]\)"):
        run_demo(out, pretrained=True, strategies=["M+EP"], progress=False)
    (tmp_path / "none").mkdir()
    with pytest.raises(FileNotFoundError, match=r"none' has no weights \(files named like M\.pt, S_EP\.pt\): export"):
        run_demo(out, pretrained=tmp_path / "none", progress=False)
    with pytest.raises(ValueError, match=r"pretrained weights are not trained"):
        run_demo(out, pretrained=folder, overrides=["period_iters=1"], progress=False)
    for bad in (["M", "m"], []):
        with pytest.raises(ValueError, match=r"strategies must name each strategy once"):
            run_demo(out, strategies=bad, progress=False)
    with pytest.raises(ValueError, match=r"unknown strategy 'X'"):
        run_demo(out, strategies=["M", "X"], progress=False)
    (folder / "S_EP.pt").write_bytes((folder / "M.pt").read_bytes())  # M weights under the S+EP name
    with pytest.raises(ValueError, match=r"S_EP\.pt' holds M weights, not S\+EP"):
        run_demo(out, pretrained=folder, progress=False)
    assert not out.exists()


def test_shipped_demo_weights_reproduce_their_readme_table_and_beat_the_identity():
    """The weights in the package (benchmarks/ship_weights.py from the converged mini tier): each loads as the
    finished EMA model of its strategy and scores what its README says on the benchmark's fixed crops."""
    from mio_strategies.harness import evaluate, shipped_weights
    from mio_strategies.harness._weights import WEIGHTS_DIR
    from mio_strategies.harness.sweep import fixed_testset

    found = shipped_weights()
    assert set(found) == {"M+EP", "S+EP"}
    testset = fixed_testset("SBNJRHL", 96)  # the benchmark's fixed crops (benchmarks/mini_mio.py)
    rows = {ln.split("|")[1].strip(): [float(v) for v in ln.split("|")[2:-1]]
            for ln in (WEIGHTS_DIR / "README.md").read_text().split("\n## Task classifier")[0].splitlines()
            if ln.startswith("| ") and "---" not in ln
            and not ln.startswith("| model")}
    items = [testset[i] for i in range(len(testset))]
    for s, path in found.items():
        restorer, cfg, state = load_restorer(path)
        assert cfg.strategy == s and state["weights"] == "ema" and state["iteration"] == cfg.total_iters
        assert (WEIGHTS_DIR / path.name.replace(".pt", ".log.jsonl")).is_file()
        res = evaluate(restorer, items, name=s)
        per = [v["psnr"] for v in res.per_task().values()]
        assert per == pytest.approx(rows[s][:-1], abs=0.01)  # the README's numbers, task by task
        ident = [v["psnr"] for v in res.per_task(identity=True).values()]
        assert ident == pytest.approx(rows["identity"][:-1], abs=0.01)
        assert all(p > i for p, i in zip(per, ident)), s


def test_demo_verdicts_treat_a_tie_alike_for_the_average_and_each_task():
    from mio_strategies.harness import EvalResult
    from mio_strategies.harness._demo import _verdict

    def result(psnr: dict[str, float]) -> EvalResult:
        return EvalResult("S+EP", [{"task": t, "image": "a", "psnr": v, "ssim": 0.5, "identity_psnr": 20.0,
                                    "identity_ssim": 0.5} for t, v in psnr.items()])

    tie = _verdict(result({"sr": 20.001, "noise": 19.999}))  # the same as the input to the printed precision
    assert tie == "- S+EP: average 20.00 dB, at or below the identity (20.00 dB); at or below the identity on sr, noise"
    assert _verdict(result({"sr": 21.0, "noise": 23.0})).endswith("above the identity (20.00 dB); above it on every task")
    assert _verdict(result({"sr": 19.0, "noise": 25.0})) == (
        "- S+EP: average 22.00 dB, above the identity (20.00 dB); at or below the identity on sr")


def test_cli_resume_reads_the_run_folders_own_config(tmp_path, capsys):
    from mio_strategies.cli import main

    over = TINY + ["strategy=S+EP", "val_every=0"]
    cfg = load_config("cpu_demo", over)
    part = train(cfg, tmp_path / "run", progress=False, stop_after=6)
    assert not part.finished
    # no --config: the run's config.yaml, not the srresnet preset (which would be refused as another run)
    assert main(["train", "--output", str(tmp_path / "run"), "--resume", "--no-progress"]) == 0
    assert "14 iterations" in capsys.readouterr().out
    _, saved, state = load_restorer(tmp_path / "run" / "checkpoint.pt")
    assert state["finished"] and saved.strategy == "S+EP" and saved.backbone == "srresnet_tiny"


def test_a_run_recorded_before_a_config_field_existed_resumes_with_its_default(tmp_path):
    # reset_optimizer_each_stage was added after runs had been checkpointed: such a run trained with the
    # default (False), so it resumes, and is refused only when the field is asked with another value
    import yaml

    cfg = load_config("cpu_demo", TINY + ["val_every=0"])
    run = tmp_path / "run"
    train(cfg, run, dataset=_data(cfg), progress=False, stop_after=4)
    ckpt = load_checkpoint(run / "checkpoint.pt")
    del ckpt["config"]["reset_optimizer_each_stage"]
    save_checkpoint(ckpt, run / "checkpoint.pt")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["reset_optimizer_each_stage"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(ValueError, match=r"reset_optimizer_each_stage: False in the checkpoint, True requested"):
        train(cfg.replace(reset_optimizer_each_stage=True), run, dataset=_data(cfg), progress=False, resume=True)
    assert train(cfg, run, dataset=_data(cfg), progress=False, resume=True).finished


def test_grouped_orders_train_stage_by_stage(tmp_path):
    # "SB|NJ|R|H|L": tasks of a group enter together (the form the order error message suggests)
    over = ["strategy=S", "order=SB|NJ|R|H|L", "periods=5", "period_iters=2", "batch_size=2", "patch_size=16",
            "val_every=0", "ema_decay=0", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1",
            "log_every=1", "reset_optimizer_each_stage=true"]
    cfg = load_config("cpu_demo", over)
    assert [t.letter for t in cfg.order_tasks] == list("SBNJRHL")
    res = train(cfg, tmp_path / "run", dataset=_data(cfg), progress=False)
    assert [h["tasks"] for h in res.history][::2] == ["SB", "SBNJ", "SBNJR", "SBNJRH", "SBNJRHL"]
    state = torch.load(res.checkpoint, weights_only=True)["optimizer"]["state"]
    assert {int(v["step"]) for v in state.values()} == {2}  # the last stage (L) entered at iteration 8
    with pytest.raises(ValueError, match=r"empty group at position 1"):
        load_config("cpu_demo", ["order=SB||NJ"])


@pytest.mark.parametrize("strategy", ["S+EP", "M"])
def test_extend_continues_a_finished_run_as_the_longer_schedule_would(tmp_path, monkeypatch, strategy):
    # sampler chunks of 2 iterations at batch 2: the 14-iteration run ends on a chunk boundary, so its
    # extension to 9 periods repeats a 9-period run from the start exactly (weights, optimizer, log)
    monkeypatch.setattr("mio_strategies.curriculum._sampler._CHUNK_INDICES", 4)
    short = load_config("cpu_demo", TINY + [f"strategy={strategy}", "val_every=2"])
    longer = load_config(short.to_dict(), ["periods=9"])
    full = train(longer, tmp_path / "full", dataset=_data(longer), val_dataset=_val(longer), progress=False)
    first = train(short, tmp_path / "run", dataset=_data(short), val_dataset=_val(short), progress=False)
    assert first.finished and first.iteration == 14
    with pytest.raises(CheckpointMismatchError, match=r"periods: 7 in the checkpoint, 9 requested.*extend it \(--extend"):
        train(longer, tmp_path / "run", dataset=_data(longer), progress=False, resume=True)  # resume alone refuses
    done = train(longer, tmp_path / "run", dataset=_data(longer), val_dataset=_val(longer), progress=False, extend=True)
    assert done.finished and done.iteration == 18
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(done.checkpoint)
    assert _same(a["model"], b["model"]) and _same(a["ema"], b["ema"]) and _same(a["optimizer"], b["optimizer"])
    assert a["sampler"] == b["sampler"] and b["config"]["periods"] == 9
    assert (tmp_path / "run" / "log.jsonl").read_text() == (tmp_path / "full" / "log.jsonl").read_text()
    assert "periods: 9" in (tmp_path / "run" / "config.yaml").read_text()
    # the added periods train all tasks at the cosine's restarts
    added = [h for h in done.history if h["iteration"] > 14]
    assert {h["tasks"] for h in added} == {"SBNJRHL"} and added[0]["lr"] == pytest.approx(short.lr)


def test_extend_refuses_fewer_periods_or_another_setting_and_changes_nothing(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["strategy=S", "val_every=0"])
    run = tmp_path / "run"
    train(cfg, run, dataset=_data(cfg), progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for change, pattern in ((["periods=8", "lr=5e-3"], r"cannot extend the run saved in this checkpoint: lr: 0\.001 in "
                                                        r"the checkpoint, 0\.005 requested; an extension may add periods"),
                            (["periods=7", "period_iters=3"], r"period_iters: 2 in the checkpoint, 3 requested")):
        with pytest.raises(CheckpointMismatchError, match=pattern):
            train(load_config(cfg.to_dict(), change), run, dataset=_data(cfg), progress=False, extend=True)
    m = load_config("cpu_demo", TINY + ["periods=3", "val_every=0"])  # mixed: any number of periods
    train(m, tmp_path / "m", dataset=_data(m), progress=False)
    with pytest.raises(CheckpointMismatchError, match=r"periods: 3 in the checkpoint, 2 requested; an extension may add"):
        train(load_config(m.to_dict(), ["periods=2"]), tmp_path / "m", dataset=_data(m), progress=False, extend=True)
    with pytest.raises(FileNotFoundError, match=r"cannot extend: no checkpoint\.pt in"):
        train(cfg, tmp_path / "empty", dataset=_data(cfg), progress=False, extend=True)
    with pytest.raises(TypeError, match=r"extend must be True or False, got str 'yes'"):
        train(cfg, run, dataset=_data(cfg), progress=False, extend="yes")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # the same number of periods: a finished run stays as it is
    assert train(cfg, run, dataset=_data(cfg), progress=False, extend=True).iteration == 14


def test_cli_extend_reads_the_run_folders_own_config(tmp_path, capsys):
    from mio_strategies.cli import main

    cfg = load_config("cpu_demo", TINY + ["strategy=S+EP", "val_every=0"])
    train(cfg, tmp_path / "run", progress=False)
    assert main(["train", "--output", str(tmp_path / "run"), "--extend", "--set", "periods=8", "--no-progress"]) == 0
    assert "16 iterations" in capsys.readouterr().out
    _, saved, state = load_restorer(tmp_path / "run" / "checkpoint.pt")
    assert state["finished"] and saved.periods == 8 and saved.strategy == "S+EP"
    assert main(["train", "--output", str(tmp_path / "run"), "--extend", "--set", "periods=7", "--no-progress"]) == 2
    assert "periods: 8 in the checkpoint, 7 requested" in capsys.readouterr().err


def test_extend_keeps_the_default_data_the_run_started_with(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.fromarray((_images(1)[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "img" / "a.png")
    # one image x 7 tasks: 14 iterations of batch 2 size the default pool at 4 repeats, 18 iterations at 6
    cfg = load_config("cpu_demo", TINY + ["strategy=M", "val_every=0", f"train_images={tmp_path / 'img'}"])
    train(cfg, tmp_path / "run", progress=False)
    pool = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["sampler"]["config"]["dataset"]["num_items"]
    assert pool == 28
    done = train(load_config(cfg.to_dict(), ["periods=9"]), tmp_path / "run", progress=False, extend=True)
    assert done.finished and done.iteration == 18
    state = load_checkpoint(done.checkpoint)
    assert state["sampler"]["config"]["dataset"]["num_items"] == 28 and state["sampler"]["position"] == 36
    # a run of the longer schedule from the start draws from a pool sized for itself
    fresh = train(load_config(cfg.to_dict(), ["periods=9"]), tmp_path / "fresh", progress=False)
    assert load_checkpoint(fresh.checkpoint)["sampler"]["config"]["dataset"]["num_items"] == 42
