"""Training speed options: autocast precision (bf16, fp16 + GradScaler), torch.compile, channels-last."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mio_strategies.harness import build_restorer, load_checkpoint, load_config, train
from mio_strategies.harness._acceleration import Acceleration
from tests.tiny_runs import TINY
from tests.tiny_runs import same_state as _same
from tests.tiny_runs import tiny_data as _data
from tests.tiny_runs import tiny_val as _val

pytestmark = pytest.mark.basicsr

OPTIONS = {
    "bf16": ["precision=bf16"],
    "fp16": ["precision=fp16"],
    "channels-last": ["channels_last=true"],
    "bf16-channels-last": ["precision=bf16", "channels_last=true"],
}


# a run that learns within 8 steps: brightening (low-light only), constant lr
LEARNS = ["strategy=M+EP", "order=L", "periods=2", "period_iters=4", "lr=5e-3", "lr_min=5e-3"]


def _fixed_batch(order="L"):
    """Four training patches (low-light) of the runs below."""
    from mio_strategies.data import mio_collate

    cfg = load_config("cpu_demo", TINY + [f"order={order}", "strategy=M"])
    b = mio_collate([_data(cfg)[i] for i in range(4)])
    return b["lq"], b["gt"], b["task"]


def _fixed_loss(restorer):
    lq, gt, task = _fixed_batch()
    with torch.no_grad():
        return F.l1_loss(restorer(lq, task), gt).item()


def test_speed_options_are_validated_naming_the_valid_values():
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'bf16', 'fp16'\], got 'half'"):
        load_config("cpu_demo", ["precision=half"])
    with pytest.raises(ValueError, match=r"compile must be false or one of \['default', 'reduce-overhead', 'max-autotune'\]"):
        load_config("cpu_demo", ["compile=fast"])
    with pytest.raises(TypeError, match="channels_last must be true or false"):
        load_config("cpu_demo", ["channels_last=1"])
    with pytest.raises(ValueError, match=r"stream must be null or one of \['torch', 'philox'\]"):
        load_config("cpu_demo", ["stream=cuda"])
    cfg = load_config("cpu_demo", ["compile=true"])
    assert cfg.compile == "default" and load_config("cpu_demo").compile is False
    assert (cfg.precision, cfg.channels_last, cfg.stream) == ("fp32", False, None)


@pytest.mark.parametrize("option", list(OPTIONS), ids=list(OPTIONS))
def test_option_trains_and_resumes_exactly(option, tmp_path):
    cfg = load_config("cpu_demo", TINY + LEARNS + OPTIONS[option])
    before = _fixed_loss(build_restorer(cfg.backbone, "explicit", backbone_kwargs=cfg.backbone_kwargs,
                                        seed=cfg.seed, prompt_size=cfg.prompt_size))
    full = train(cfg, tmp_path / "full", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    train(cfg, tmp_path / "part", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=3)
    torch.manual_seed(3)
    done = train(cfg, tmp_path / "part", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, resume=True)
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(done.checkpoint)
    assert a["precision"] == cfg.precision
    assert _same(a["model"], b["model"]) and _same(a["ema"], b["ema"]) and _same(a["optimizer"], b["optimizer"])
    assert _same(a["grad_scaler"], b["grad_scaler"])
    assert (a["grad_scaler"] is not None) == (cfg.precision == "fp16")
    assert [h["loss"] for h in full.history] == [h["loss"] for h in done.history]
    # training moved the loss: the trained live weights fit a fixed batch better than the initial ones
    live = build_restorer(cfg.backbone, "explicit", backbone_kwargs=cfg.backbone_kwargs, seed=cfg.seed,
                          prompt_size=cfg.prompt_size)
    live.load_state_dict(a["model"])
    assert _fixed_loss(live) < 0.9 * before


@pytest.mark.parametrize("option", list(OPTIONS), ids=list(OPTIONS))
def test_injector_is_the_identity_at_attach_under_each_option(option):
    cfg = load_config("cpu_demo", TINY + ["strategy=S+EP", *OPTIONS[option]])
    kw = {"backbone_kwargs": cfg.backbone_kwargs, "seed": cfg.seed, "prompt_size": cfg.prompt_size}
    prompted, bare = build_restorer(cfg.backbone, "explicit", **kw), build_restorer(cfg.backbone, None, **kw)
    lq, _, task = _fixed_batch()
    outs = []
    for r in (prompted, bare):
        acc = Acceleration(cfg.precision, cfg.compile, cfg.channels_last, torch.device("cpu"))
        acc.prepare(r)
        with acc.autocast():
            assert torch.is_autocast_enabled("cpu") == (cfg.precision != "fp32")
            outs.append(r(acc.inputs(lq), task))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], bare(lq, task)) or cfg.precision == "fp32"  # autocast did change the numbers


def test_fp16_checkpoint_carries_the_grad_scaler_and_another_precision_starts_fresh(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=1", "precision=fp16"])
    train(cfg, tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=3)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["precision"] == "fp16" and state["grad_scaler"]["scale"] > 0
    # a resume may change the precision (not run-defining); it then continues without the old scaler
    done = train(cfg.replace(precision="bf16"), tmp_path / "run", dataset=_data(cfg), val_dataset=_val(cfg),
                 progress=False, resume=True)
    end = load_checkpoint(done.checkpoint)
    assert done.finished and end["precision"] == "bf16" and end["grad_scaler"] is None


def test_train_command_flags_set_the_speed_options(tmp_path):
    from mio_strategies.cli import main

    out = tmp_path / "cli"
    args = ["train", "--config", "cpu_demo", *[a for kv in TINY for a in ("--set", kv)], "--set", "periods=7",
            "--set", "period_iters=1", "--output", str(out), "--no-progress", "--precision", "bf16", "--channels-last"]
    assert main(args) == 0
    cfg = load_checkpoint(out / "checkpoint.pt")["config"]
    assert (cfg["precision"], cfg["channels_last"], cfg["compile"]) == ("bf16", True, False)


# dynamo reads .grad of the prompt vectors (non-leaf tensors) while tracing the hooks: torch's noise, not ours
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf Tensor:UserWarning")
def test_compiled_training_keeps_the_prompt_hooks_and_resumes_exactly(tmp_path):
    """torch.compile (inductor, the default backend) with the injector's forward hooks inside the graph."""
    cfg = load_config("cpu_demo", TINY + ["strategy=S+EP", "periods=7", "period_iters=1", "compile=default",
                                          "log_every=1"])
    kw = {"backbone_kwargs": cfg.backbone_kwargs, "seed": cfg.seed, "prompt_size": cfg.prompt_size}
    prompted, bare = build_restorer(cfg.backbone, "explicit", **kw), build_restorer(cfg.backbone, None, **kw)
    lq, _, task = _fixed_batch()
    eager = bare(lq, task)
    Acceleration("fp32", "default", False, torch.device("cpu")).prepare(prompted)
    assert torch.allclose(prompted(lq, task), eager, atol=1e-5)  # the identity at attach, compiled
    full = train(cfg, tmp_path / "full", dataset=_data(cfg), val_dataset=_val(cfg), progress=False)
    train(cfg, tmp_path / "part", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, stop_after=4)
    done = train(cfg, tmp_path / "part", dataset=_data(cfg), val_dataset=_val(cfg), progress=False, resume=True)
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(done.checkpoint)
    assert _same(a["model"], b["model"]) and _same(a["optimizer"], b["optimizer"])
    losses = [h["loss"] for h in full.history]
    assert losses == [h["loss"] for h in done.history]
    # the prompts were trained through the compiled hooks: the prompt modulators moved away from zero
    assert any(v.abs().sum() > 0 for k, v in a["model"]["injector"].items() if "modulators" in k and "weight" in k)
