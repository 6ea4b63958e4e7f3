"""Training harness: configs, every strategy end to end, exact resume, checkpoints, demo, DDP init."""

from __future__ import annotations

import os

import pytest
import torch

from mio_strategies.harness import (
    STRATEGIES,
    CheckpointMismatchError,
    NotACheckpointError,
    load_checkpoint,
    load_config,
    load_restorer,
    run_demo,
    save_checkpoint,
    train,
)
from mio_strategies.harness._checkpoint import check_compatible

pytestmark = pytest.mark.basicsr

TINY = [
    "backbone=srresnet_tiny", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1",
    "periods=7", "period_iters=2", "batch_size=2", "patch_size=16", "val_size=24",
    "prompt_size=16", "log_every=1", "lr=1e-3", "lr_min=1e-5", "ema_decay=0.9",
]


def _same(a, b):
    """Exact equality of nested states (tensors compared bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _images(n=2):
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 24, 24, generator=g) for _ in range(n)]


def _data(cfg):
    from mio_strategies.data import MiODataset

    return MiODataset(_images(), cfg.order, patch_size=cfg.patch_size, seed=cfg.seed, repeat=2)


def _val(cfg):
    from mio_strategies.data import MiODataset

    return MiODataset(_images(1), cfg.order, patch_size=cfg.val_size, augment=False, seed=99)


# -- config ------------------------------------------------------------------------------------------
def test_paper_presets_follow_the_protocol():
    s = load_config("srresnet")
    assert (s.periods, s.period_iters, s.batch_size, s.patch_size, s.order) == (10, 250_000, 16, 128, "SBNJRHL")
    assert (s.optimizer, s.lr, s.lr_min, s.betas, s.ema_decay) == ("adam", 2e-4, 1e-7, (0.9, 0.99), 0.999)
    assert load_config("swinir").period_iters == 100_000
    r = load_config("restormer")
    assert (r.optimizer, r.order, r.period_iters) == ("adamw", "RJBSNHL", 100_000)
    assert load_config("promptir").backbone == "promptir"


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


def test_resume_equals_uninterrupted(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["strategy=S+EP", "period_iters=3"])
    full = train(cfg, tmp_path / "full", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    part = train(cfg, tmp_path / "part", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=8)
    assert not part.finished and part.iteration == 8
    done = train(cfg, tmp_path / "part", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, resume=True)
    assert done.finished
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(done.checkpoint)
    assert _same(a["model"], b["model"]) and _same(a["ema"], b["ema"]) and _same(a["optimizer"], b["optimizer"])
    assert [h["loss"] for h in full.history] == [h["loss"] for h in done.history]
    assert a["sampler"] == b["sampler"]


def test_existing_output_folder_is_refused_unless_overwrite(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["periods=7", "period_iters=1"])
    train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    with pytest.raises(FileExistsError, match=r"already exists and is not empty: pass --overwrite"):
        train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    res = train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, overwrite=True)
    assert res.finished


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
    assert "Explicit-prompt rows are given each image's task" in report  # the paper's tables use a classifier
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        run_demo(out, progress=False)
