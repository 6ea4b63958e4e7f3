"""Packed runs (stacked weights, torch.func) train what separate runs train."""

from __future__ import annotations

import pytest
import torch

from mio_strategies.harness import load_checkpoint, load_config, train
from mio_strategies.harness._packed import train_packed
from tests.tiny_runs import tiny_data as _data
from tests.tiny_runs import tiny_val as _val

pytestmark = pytest.mark.basicsr

# the converged tier's backbone, shrunk
SMALL = [
    "backbone=unet_tiny",
    "backbone_kwargs.num_feat=4",
    "backbone_kwargs.num_block=1",
    "backbone_kwargs.levels=2",
    "backbone_kwargs.channel_attention=true",
    "periods=7",
    "period_iters=2",
    "batch_size=2",
    "patch_size=16",
    "val_size=24",
    "log_every=1",
    "lr=2e-3",
    "lr_min=1e-5",
    "ema_decay=0.9",
    "checkpoint_every=0",
]
# float32 sums inside the batched (grouped) convolutions run in another order than one run's convolutions
RTOL, ATOL = 1e-4, 1e-5


def _close(a, b):
    if isinstance(a, torch.Tensor):
        return torch.allclose(a, b, rtol=RTOL, atol=ATOL)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def _pack(cfgs, outs, **kw):
    return train_packed(
        cfgs, outs, datasets=[_data(c) for c in cfgs], val_datasets=[_val(c) for c in cfgs], progress=False, **kw
    )


def _alone(cfg, out, **kw):
    return train(cfg, out, dataset=_data(cfg), val_dataset=_val(cfg), progress=False, **kw)


def _configs():
    return [load_config("cpu_demo", SMALL + [f"strategy={s}", f"seed={k}"]) for s in "MS" for k in (0, 1)]


def test_packed_runs_equal_separate_runs_within_float_tolerance(tmp_path):
    cfgs = _configs()
    packed = _pack(cfgs, [tmp_path / f"p{i}" for i in range(4)])
    for i, cfg in enumerate(cfgs):
        alone = _alone(cfg, tmp_path / f"s{i}")
        a, b = load_checkpoint(packed[i].checkpoint), load_checkpoint(alone.checkpoint)
        assert a["sampler"] == b["sampler"]  # the same batches
        assert _close(a["model"], b["model"]) and _close(a["ema"], b["ema"])
        assert _close(a["optimizer"]["state"], b["optimizer"]["state"])
        la, lb = [h["loss"] for h in packed[i].history], [h["loss"] for h in alone.history]
        assert torch.allclose(torch.tensor(la), torch.tensor(lb), rtol=RTOL, atol=ATOL)
        assert [h["tasks"] for h in packed[i].history] == [h["tasks"] for h in alone.history]
        # not the same model four times: the runs moved apart
        assert not _close(a["model"], load_checkpoint(packed[(i + 1) % 4].checkpoint)["model"])
        va, vb = a["validation"][-1]["psnr"], b["validation"][-1]["psnr"]
        assert va.keys() == vb.keys()
        assert torch.allclose(
            torch.tensor(list(va.values())), torch.tensor(list(vb.values())), atol=1e-3, equal_nan=True
        )


def test_packed_runs_resume_and_their_checkpoints_resume_separately(tmp_path):
    cfgs = _configs()[:2]
    full = _pack(cfgs, [tmp_path / f"f{i}" for i in range(2)])
    _pack(cfgs, [tmp_path / f"p{i}" for i in range(2)], stop_after=5)
    done = _pack(cfgs, [tmp_path / f"p{i}" for i in range(2)], resume=True)
    for a, b in zip(full, done):
        sa, sb = load_checkpoint(a.checkpoint), load_checkpoint(b.checkpoint)
        assert _close(sa["model"], sb["model"]) and sa["sampler"] == sb["sampler"]
    # a packed checkpoint is a train() checkpoint: run 1 resumed alone from iteration 5 ends where it ends packed
    _pack(cfgs, [tmp_path / f"q{i}" for i in range(2)], stop_after=5)
    alone = _alone(cfgs[1], tmp_path / "q1", resume=True)
    assert _close(load_checkpoint(alone.checkpoint)["model"], load_checkpoint(full[1].checkpoint)["model"])


def test_packing_refuses_prompts_and_differing_settings(tmp_path):
    cfgs = _configs()
    with pytest.raises(ValueError, match=r"strategy 'S\+EP' cannot be packed"):
        train_packed([cfgs[0], cfgs[0].replace(strategy="S+EP")], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match=r"these differ: \['lr'\]"):
        train_packed([cfgs[0], cfgs[1].replace(lr=1e-3)], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="same output folder twice"):
        train_packed(cfgs[:2], [tmp_path / "a", tmp_path / "a"])
    with pytest.raises(ValueError, match="2 configs but 1 output"):
        train_packed(cfgs[:2], [tmp_path / "a"])
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_a_signal_stops_packed_runs_with_every_checkpoint_written(tmp_path, monkeypatch):
    import contextlib
    import signal

    from mio_strategies.harness import TrainingInterrupted, _packed
    from mio_strategies.utils.signals import StopRequest

    @contextlib.contextmanager
    def signalled():  # SIGTERM arrives during the first step
        request = StopRequest()
        request.signum = signal.SIGTERM
        yield request

    cfgs = _configs()[:2]
    outs = [tmp_path / f"p{i}" for i in range(2)]
    monkeypatch.setattr(_packed, "stop_on_signals", signalled)
    with pytest.raises(TrainingInterrupted, match="after iteration 1 of 14"):
        _pack(cfgs, outs)
    assert [load_checkpoint(o / "checkpoint.pt")["iteration"] for o in outs] == [1, 1]
    monkeypatch.undo()
    done = _pack(cfgs, outs, resume=True)
    full = _pack(cfgs, [tmp_path / f"f{i}" for i in range(2)])
    for a, b in zip(done, full):
        assert _close(load_checkpoint(a.checkpoint)["model"], load_checkpoint(b.checkpoint)["model"])
