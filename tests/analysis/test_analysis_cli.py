"""The ``analyze`` sub-command end to end on a tiny model and a tiny on-disk test set."""

from __future__ import annotations

import argparse
import json
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from mio_strategies.analysis._testset import iter_image_batches
from mio_strategies.analysis.features import capture_features
from mio_strategies.data import PairedFolderDataset
from mio_strategies.harness._analyze_cli import add_parser
from mio_strategies.harness._analyze_model import _load_model, _load_train_checkpoint
from mio_strategies.tasks import TASKS

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build():
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                nn.init.uniform_(p, -0.3, 0.3, generator=g)
        return model

    def not_a_model():
        return 3
    """
)


def write_testset(root, per_task: int = 3, size: int = 16, odd_size: bool = True):
    """The on-disk layout: manifest.json, GT/<name>.png, <task>/<name>.png (8-bit RGB)."""
    rng = np.random.default_rng(0)
    (root / "GT").mkdir(parents=True)
    entries = []
    for i in range(per_task):
        name = f"img{i:03d}"
        h = size + 4 if (odd_size and i == per_task - 1) else size  # one image of another size
        gt = rng.integers(0, 256, (h, size, 3), dtype=np.uint8)
        Image.fromarray(gt).save(root / "GT" / f"{name}.png")
        for task in TASKS:
            (root / task.name).mkdir(exist_ok=True)
            lq = np.clip(gt.astype(np.float64) * (0.15 + 0.12 * task.id), 0, 255).astype(np.uint8)
            Image.fromarray(lq).save(root / task.name / f"{name}.png")
            entries.append(
                {"task": task.name, "image": name, "lq": f"{task.name}/{name}.png", "gt": f"GT/{name}.png",
                 "params": {"scale": 0.15 + 0.12 * task.id}}
            )
    (root / "manifest.json").write_text(json.dumps({"version": 1, "preset": "in", "entries": entries}))
    return root


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "tiny_models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(pkg))
    return "tiny_models"


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="mio-strategies")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["analyze", *argv])
    return args.func(args)


def test_analyze_writes_the_plot_and_the_figures(tmp_path, factory_module, capsys):
    root = write_testset(tmp_path / "testset")
    model = _load_model(f"{factory_module}:build")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.5)  # a checkpoint that differs from the factory's init
    torch.save({"params": model.state_dict()}, tmp_path / "net.pt")
    out = tmp_path / "out"
    code = run_cli([
        "--model", f"{factory_module}:build", "--checkpoint", str(tmp_path / "net.pt"), "--testset", str(root),
        "--module", "1", "--method", "pca", "--batch-size", "4", "--output-dir", str(out),
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "analyze" in captured.err and "21/21" in captured.err  # the progress bar, counting images
    with Image.open(out / "ddr.png") as img:
        arr = np.asarray(img.convert("RGB"))
    assert arr.shape[0] > 100 and arr.std() > 5
    figures = json.loads((out / "ddr.json").read_text())
    assert figures["n"] == 21 and figures["channels"] == 8
    assert figures["method"] == "pca" and figures["module"] == "1" and figures["seed"] == 0
    assert figures["counts"] == {t.name: 3 for t in TASKS}
    assert figures["preset"] == "in" and figures["plot"] == "ddr.png"
    assert figures["chi"] > 0 and figures["chi_features"] > 0
    assert "CHI" in captured.out


def test_analyze_uses_the_checkpoint_weights(tmp_path, factory_module):
    model = _load_model(f"{factory_module}:build")
    state = {k: torch.full_like(v, 0.25) for k, v in model.state_dict().items()}
    for key in ("params", "state_dict", "model", None):
        torch.save(state if key is None else {key: state}, tmp_path / "c.pt")
        loaded = _load_model(f"{factory_module}:build", tmp_path / "c.pt")
        assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items()), key
    torch.save({"params_ema": state, "params": {}}, tmp_path / "ema.pt")
    loaded = _load_model(f"{factory_module}:build", tmp_path / "ema.pt", key="params_ema")
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())


def test_model_loading_errors_name_the_fix(tmp_path, factory_module):
    with pytest.raises(ValueError, match="must look like 'package.module:factory'"):
        _load_model("tiny_models.build")
    with pytest.raises(ValueError, match="cannot load model factory 'tiny_models:nope'"):
        _load_model(f"{factory_module}:nope")
    with pytest.raises(ValueError, match="returned a int, not a torch.nn.Module"):
        _load_model(f"{factory_module}:not_a_model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _load_model(f"{factory_module}:build", tmp_path / "missing.pt")
    torch.save({"params": {"0.weight": torch.zeros(1)}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not fit 'tiny_models:build'"):
        _load_model(f"{factory_module}:build", tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"has no key 'ema'; its keys: \['params'\]"):
        _load_model(f"{factory_module}:build", tmp_path / "bad.pt", key="ema")
    torch.save({"params_ema": {"0.weight": torch.zeros(1)}}, tmp_path / "ema_only.pt")  # BasicSR's EMA-only file
    with pytest.raises(ValueError, match=r"\(its entries \['params_ema'\] hold state dicts: pass --checkpoint-key params_ema\)"):
        _load_model(f"{factory_module}:build", tmp_path / "ema_only.pt")
    torch.save({"iter": 3, "params_ema": {}}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match=r"entry 'iter' of checkpoint .* holds a int, not a state dict"):
        _load_model(f"{factory_module}:build", tmp_path / "state.pt", key="iter")
    # a module's extra state (a prompt injector's {"config": ...}) is not offered as a checkpoint key
    torch.save({"0.weight": torch.zeros(1), "injector._extra_state": {"config": {"embed_dim": 8}}}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=r"does not fit 'tiny_models:build': ") as info:
        _load_model(f"{factory_module}:build", tmp_path / "x.pt")
    assert "--checkpoint-key" not in str(info.value)


def test_analyze_reports_a_bad_module_name_and_exits_2(tmp_path, factory_module, capsys):
    root = write_testset(tmp_path / "testset", per_task=2, odd_size=False)
    code = run_cli([
        "--model", f"{factory_module}:build", "--testset", str(root), "--module", "3",
        "--method", "pca", "--output-dir", str(tmp_path / "out"), "--no-progress",
    ])
    assert code == 2
    assert "module '3' not found in Sequential" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_analyze_reports_a_folder_that_is_not_a_testset(tmp_path, factory_module, capsys):
    code = run_cli([
        "--model", f"{factory_module}:build", "--testset", str(tmp_path), "--module", "1",
        "--method", "pca", "--output-dir", str(tmp_path / "out"), "--no-progress",
    ])
    assert code == 2
    assert "no ground-truth folder 'GT'" in capsys.readouterr().err


def test_testset_batches_follow_the_dataset_and_split_by_size(tmp_path):
    root = write_testset(tmp_path / "ts", per_task=3)
    dataset = PairedFolderDataset(root)
    batches = list(iter_image_batches(dataset, batch_size=4))
    assert sum(b.shape[0] for b, _ in batches) == 21
    assert all(b.shape[0] <= 4 for b, _ in batches)
    assert {tuple(b.shape[-2:]) for b, _ in batches} == {(16, 16), (20, 16)}  # sizes never mixed
    assert torch.cat([t for _, t in batches]).tolist() == dataset.task_ids.tolist()
    torch.testing.assert_close(torch.cat([b for b, _ in batches[:1]])[0], dataset[0]["lq"])


def test_testset_batches_read_items_lazily(tmp_path):
    root = write_testset(tmp_path / "ts", per_task=3, odd_size=False)

    class Counting(PairedFolderDataset):
        reads = 0

        def __getitem__(self, index):
            type(self).reads += 1
            return super().__getitem__(index)

    batches = iter_image_batches(Counting(root), batch_size=2)
    next(batches)
    assert Counting.reads == 3  # the two of the batch and the one that ended it, not all 21
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        next(iter_image_batches(Counting(root), batch_size=0))


TINY_RUN = [  # lr 1e-2 would leave every ReLU of the prompt extractor dead in some runs (tasks alike)
    "backbone=srresnet_tiny", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1",
    "periods=7", "period_iters=2", "batch_size=2", "patch_size=16", "val_size=24",
    "prompt_size=16", "lr=1e-3", "ema_decay=0.5", "strategy=S+EP",
]


@pytest.fixture(scope="module")
def train_checkpoint(tmp_path_factory):
    """A real `mio-strategies train` checkpoint of a tiny SRResNet with explicit prompts."""
    from mio_strategies.data import MiODataset
    from mio_strategies.harness import load_config, train

    cfg = load_config("cpu_demo", TINY_RUN)
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 24, 24, generator=g) for _ in range(2)]
    data = MiODataset(images, cfg.order, patch_size=cfg.patch_size, seed=cfg.seed, repeat=2)
    return train(cfg, tmp_path_factory.mktemp("run"), dataset=data, progress=False).checkpoint


@pytest.mark.basicsr
def test_analyze_reads_a_train_checkpoint_without_model(tmp_path, train_checkpoint, capsys):
    root = write_testset(tmp_path / "testset", per_task=3)
    out = tmp_path / "out"
    code = run_cli([
        "--checkpoint", str(train_checkpoint), "--testset", str(root), "--module", "body.0",
        "--method", "pca", "--output-dir", str(out), "--no-progress",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    figures = json.loads((out / "ddr.json").read_text())
    assert figures["n"] == 21 and figures["channels"] == 4 and figures["module"] == "body.0"
    assert figures["model"] == "srresnet_tiny S+EP" and figures["checkpoint"] == str(train_checkpoint)


@pytest.mark.basicsr
def test_train_checkpoint_features_follow_each_inputs_task(train_checkpoint):
    model, label = _load_train_checkpoint(train_checkpoint)
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)).expand(7, -1, -1, -1)
    batches = [(image, torch.arange(7))]
    feats = capture_features(model, batches, model.backbone.conv_last, pass_task=True).features
    assert label == "srresnet_tiny S+EP" and feats.shape[0] == 7
    # one image, seven explicit prompts: the true task of each input selects its modulation
    assert all(not torch.allclose(feats[0], feats[i]) for i in range(1, 7))
    again = capture_features(model, [(image[:2], torch.tensor([3, 3]))], model.backbone.conv_last, pass_task=True)
    torch.testing.assert_close(again.features[0], feats[3])


@pytest.mark.basicsr
def test_checkpoint_kinds_and_model_flag_must_agree(tmp_path, train_checkpoint, factory_module, capsys):
    root = write_testset(tmp_path / "testset", per_task=2, odd_size=False)
    common = ["--testset", str(root), "--module", "1", "--method", "pca", "--output-dir", str(tmp_path / "o"), "--no-progress"]
    assert run_cli(["--model", f"{factory_module}:build", "--checkpoint", str(train_checkpoint), *common]) == 2
    assert "written by `mio-strategies train`" in capsys.readouterr().err
    torch.save({"params": _load_model(f"{factory_module}:build").state_dict()}, tmp_path / "plain.pt")
    assert run_cli(["--checkpoint", str(tmp_path / "plain.pt"), *common]) == 2
    err = capsys.readouterr().err
    assert "not a mio-strategies checkpoint" in err and "give --model MODULE:FACTORY as well" in err
    assert run_cli(common) == 2
    assert "give --checkpoint run/checkpoint.pt" in capsys.readouterr().err


@pytest.mark.parametrize(
    "device, cuda_available, match",
    [
        ("foo", None, r"--device 'foo' is not a torch device .*use cpu, cuda or cuda:N"),
        ("cuda", False, r"--device 'cuda': CUDA is not available on this machine; use --device cpu"),
        ("cuda:3", True, r"--device 'cuda:3': this machine has 1 CUDA device\(s\)"),
        ("meta", None, r"--device 'meta' holds no data"),
    ],
)
def test_analyze_reports_a_bad_or_unavailable_device_and_exits_2(
    tmp_path, factory_module, capsys, monkeypatch, device, cuda_available, match
):
    if cuda_available is not None:  # simulate a machine with (one) or without a GPU
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_available)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if cuda_available else 0)
    root = write_testset(tmp_path / "testset", per_task=1, odd_size=False)
    code = run_cli([
        "--model", f"{factory_module}:build", "--testset", str(root), "--module", "1",
        "--method", "pca", "--device", device, "--output-dir", str(tmp_path / "out"), "--no-progress",
    ])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("mio-strategies analyze: error: ")
    assert __import__("re").search(match, err), err
    assert not (tmp_path / "out").exists()
