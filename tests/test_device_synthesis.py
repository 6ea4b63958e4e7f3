"""Synthesis on the training device: the torch rain streak layer of the Philox stream (equal to the NumPy
layer, batch-invariant) and the training loop's device synthesis (same batches as the loader's)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from mio_strategies.degradations import _functional as fn
from mio_strategies.degradations import degrade, sample_params
from mio_strategies.degradations._rain import (
    _SCATTER_CHUNK,
    _cross_correlated,
    rain_layer,
    streak_kernels_np,
    streak_seeds,
)
from mio_strategies.degradations._rain_torch import rain_layer_torch, reflect_index, streak_kernels_torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

RAIN_KEYS = ("seed", "amount", "length", "angle", "width")


def _rain_params(n: int, seed: int, **ranges: tuple[int, int]) -> dict:
    return sample_params(
        "rain", n, generator=torch.Generator().manual_seed(seed), stream="philox", ranges=ranges or None
    )


def _layers(p: dict, h: int, w: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    args = [p[k] for k in RAIN_KEYS]
    numpy_layer = rain_layer(*args, h, w, torch.device("cpu"), dtype, stream="philox")
    torch_layer = rain_layer_torch(*args, h, w, "cpu", dtype)
    return numpy_layer, torch_layer


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_reflect_index_is_numpy_reflect_padding_also_beyond_the_axis(n):
    for pad in (0, 1, 2, 5, 13):
        expect = np.pad(np.arange(n), (pad, pad), mode="reflect").tolist()
        assert reflect_index(n, pad).tolist() == expect, (n, pad)


def test_torch_streak_kernels_equal_the_numpy_kernels_to_the_last_bits():
    p = _rain_params(24, 0, length=(1, 99), angle=(-180, 180), width=(1, 31))
    k_np, a_np = streak_kernels_np(p["length"].numpy(), p["angle"].numpy(), p["width"].numpy())
    k_t, a_t = streak_kernels_torch(p["length"], p["angle"], p["width"])
    assert a_t == a_np and k_t.dtype == torch.float64 and k_t.shape == k_np.shape
    # same operations except the order of the Gaussian's sums (NumPy's einsum): float64 rounding only
    np.testing.assert_allclose(k_t.numpy(), k_np, rtol=0, atol=1e-15)
    assert float(np.abs(k_np).max()) > 0.01  # real kernels, not zeros


@pytest.mark.parametrize("preset", ["in", "out"])
@pytest.mark.parametrize("seed,size", [(0, (64, 64)), (1, (37, 90)), (2, (12, 9))])
def test_torch_rain_layer_equals_the_numpy_layer_exactly(preset, seed, size):
    g = torch.Generator().manual_seed(seed)
    p = sample_params("rain", 12, preset=preset, generator=g, stream="philox")
    numpy_layer, torch_layer = _layers(p, *size)
    assert torch_layer.shape == (12, 1, *size)
    assert torch.equal(torch_layer, numpy_layer)
    assert float(numpy_layer.max()) == 255.0  # streaks present in every case drawn


def test_torch_rain_layer_equals_the_numpy_layer_at_extreme_parameters_and_several_chunks():
    # dense seeds and long, wide kernels (from a length of about 95 the recipe's kernel is empty): the NumPy layer scatters each image in several bincount chunks,
    # whose partial sums the torch layer adds in the same order
    p = _rain_params(2, 3, amount=(15000, 25600), length=(60, 80), width=(25, 31))
    h, w = 24, 30
    numpy_layer, torch_layer = _layers(p, h, w)
    k, a = streak_kernels_np(p["length"].numpy(), p["angle"].numpy(), p["width"].numpy())
    taps = int((_cross_correlated(k)[0] != 0).sum())
    u = streak_seeds(p["seed"], p["amount"], h, w, "philox")
    seeds = int(np.count_nonzero(np.pad(u[0], a + 1, mode="reflect")))
    assert seeds > 2 * max(1, _SCATTER_CHUNK // taps)  # three chunks or more
    assert torch.equal(torch_layer, numpy_layer)
    # the other extreme: no seeds at all (amount 0) gives an empty layer in both
    p0 = _rain_params(2, 4, amount=(0, 0))
    numpy_layer, torch_layer = _layers(p0, 16, 16)
    assert torch.equal(torch_layer, numpy_layer) and float(torch_layer.abs().max()) == 0.0


def test_torch_rain_layer_of_an_image_does_not_depend_on_its_batch():
    p = _rain_params(10, 5, length=(1, 99), width=(1, 31))
    full = rain_layer_torch(*(p[k] for k in RAIN_KEYS), 40, 40, "cpu", torch.float32)
    for i in range(10):
        alone = rain_layer_torch(*(p[k][i : i + 1] for k in RAIN_KEYS), 40, 40, "cpu", torch.float32)
        assert torch.equal(alone[0], full[i]), i
    # and in another batch order
    perm = torch.tensor([9, 3, 0, 7, 1, 8, 2, 6, 5, 4])
    shuffled = rain_layer_torch(*(p[k][perm] for k in RAIN_KEYS), 40, 40, "cpu", torch.float32)
    assert torch.equal(shuffled, full[perm])


def test_philox_rain_uses_the_torch_layer_which_equals_the_numpy_layer(monkeypatch):
    x = torch.rand(5, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    y, params = degrade(x, "rain", generator=torch.Generator().manual_seed(2), stream="philox")
    calls = []

    def numpy_instead(*args, **kwargs):
        calls.append(1)
        return rain_layer(*args, **kwargs, stream="philox")

    monkeypatch.setattr(fn, "rain_layer_torch", numpy_instead)
    y_numpy, _ = degrade(x, "rain", params=params)
    assert calls and torch.equal(y, y_numpy)


def test_torch_stream_rain_never_uses_the_torch_layer_and_replays_as_recorded(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the torch stream must keep the NumPy streak layer")

    monkeypatch.setattr(fn, "rain_layer_torch", refuse)
    x = torch.rand(4, 3, 48, 64, generator=torch.Generator().manual_seed(5))
    y, params = degrade(x, "rain", generator=torch.Generator().manual_seed(11))
    assert "stream" not in params
    # the digest of these images as the library made them before the torch layer existed
    digest = hashlib.sha256((y * 255).round().to(torch.uint8).numpy().tobytes()).hexdigest()
    assert digest == "99fcb9d1ceb41b37e732c96a6ea6f42436dcb7c5f7150765ad09c62f8cbeac26"
    monkeypatch.undo()
    y, _ = degrade(x, "rain", generator=torch.Generator().manual_seed(11), stream="philox")
    digest = hashlib.sha256((y * 255).round().to(torch.uint8).numpy().tobytes()).hexdigest()
    assert digest == "71ebcf8b18935e6509f415257bdae09237f1d8a4624a84a44faca5a61ef0fdf4"  # as with the NumPy layer


@needs_cuda
def test_torch_rain_layer_is_the_same_on_cuda():
    p = _rain_params(16, 7)
    cpu = rain_layer_torch(*(p[k] for k in RAIN_KEYS), 64, 64, "cpu", torch.float32)
    gpu = rain_layer_torch(*(p[k] for k in RAIN_KEYS), 64, 64, "cuda", torch.float32)
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)


# -- synthesis on the training device: the dataset, the batches, the training loop ----------------------
def _loaders(stream: str, tasks: str = "SBNJRHL", batch: int = 14, **kw):
    from torch.utils.data import DataLoader

    from mio_strategies.data import MiODataset, mio_collate

    imgs = _images(3, 40)
    common = dict(tasks=tasks, patch_size=32, seed=3, stream=stream, repeat=2, **kw)
    out = []
    for synthesis in ("loader", "device"):
        ds = MiODataset(imgs, synthesis=synthesis, **common)
        out.append(DataLoader(ds, batch_size=batch, collate_fn=mio_collate))
    return out


def _images(n: int, size: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, size, size, generator=g) for _ in range(n)]


EXACT_TASKS = (2, 4, 6)  # noise, rain, low light: elementwise or per-image arithmetic, equal bit for bit on the CPU


@pytest.mark.parametrize("stream", ["philox", "torch"])
def test_device_synthesis_gives_the_loaders_batches(stream):
    from mio_strategies.data import degrade_deferred

    loader, device = _loaders(stream)
    seen = set()
    for k, (a, b) in enumerate(zip(loader, device)):
        if k == 3:
            break
        assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["task"], b["task"])
        # the same parameters were drawn; deferred items still hold the GT, JPEG items their Pillow image
        assert [sorted(p) for p in a["params"]] == [sorted(p) for p in b["params"]]
        assert all(
            torch.equal(pa[k2], pb[k2])
            for pa, pb in zip(a["params"], b["params"])
            for k2 in pa
            if isinstance(pa[k2], torch.Tensor)
        )
        assert b["deferred"] == [t != 3 for t in b["task"].tolist()]
        assert torch.equal(b["lq"][b["task"] != 3], b["gt"][b["task"] != 3])
        lq = degrade_deferred(b, "cpu")
        for t in b["task"].unique().tolist():
            m = a["task"] == t
            diff = (lq[m] - a["lq"][m]).abs()
            # stated tolerance: one 8-bit level on at most 0.1 % of the values; exact for the per-image tasks
            assert float(diff.max()) <= 1 / 255 + 1e-6, t
            assert float((diff > 0).float().mean()) <= 1e-3, t
            if t in EXACT_TASKS or t == 3:
                assert torch.equal(lq[m], a["lq"][m]), t
            seen.add(t)
        assert not torch.equal(b["lq"], lq)  # degrade_deferred did not write into the batch
    assert seen == set(range(7))


def test_device_synthesis_keeps_haze_with_depth_maps_and_jpeg_in_the_loader(tmp_path):
    from mio_strategies.data import MiODataset

    np.save(tmp_path / "image0000.npy", np.linspace(0.1, 1, 40 * 40).reshape(40, 40))
    img = tmp_path / "image0000.png"
    from mio_strategies.data import write_png

    write_png(_images(1, 40)[0], img)
    depth_dir = tmp_path / "depth"
    depth_dir.mkdir()
    (tmp_path / "image0000.npy").rename(depth_dir / "image0000.npy")
    ds = MiODataset([img], tasks="JHL", patch_size=32, seed=1, synthesis="device", depth_dir=depth_dir)
    ref = MiODataset([img], tasks="JHL", patch_size=32, seed=1, depth_dir=depth_dir)
    flags = [ds[i]["deferred"] for i in range(3)]
    assert flags == [False, False, True]
    for i in range(2):  # JPEG and haze with a depth map: degraded in the loader, as before
        assert torch.equal(ds[i]["lq"], ref[i]["lq"])
    assert "deferred" not in ref[0]  # the loader's items are unchanged


def test_synthesis_values_are_validated_naming_the_fix():
    from mio_strategies.data import MiODataset, degrade_deferred
    from mio_strategies.harness import load_config

    with pytest.raises(ValueError, match=r"unknown synthesis 'gpu': valid values are \['loader', 'device'\]"):
        MiODataset(_images(1, 40), synthesis="gpu")
    with pytest.raises(ValueError, match="synthesis='device' needs implementation='library'.*synthesis='loader'"):
        MiODataset(_images(1, 40), synthesis="device", implementation="reference")
    with pytest.raises(ValueError, match=r"synthesis must be one of \['loader', 'device'\], got 'gpu'"):
        load_config("cpu_demo", ["synthesis=gpu"])
    with pytest.raises(ValueError, match="data_implementation 'reference' .*use synthesis 'loader'"):
        load_config("cpu_demo", ["synthesis=device", "data_implementation=reference"])
    with pytest.raises(ValueError, match="protocol 'three-task' reads its degraded images from disk"):
        load_config("cpu_demo", ["synthesis=device", "protocol=three-task", "protocol_root=/nonexistent"])
    assert load_config("cpu_demo").synthesis == "loader"
    batch = {"lq": torch.zeros(2, 3, 8, 8), "task": torch.tensor([2, 2]), "params": [{}], "deferred": [True, True]}
    with pytest.raises(ValueError, match="one 'deferred' flag and one params dict per image, got 2 and 1"):
        degrade_deferred(batch)
    plain = {"lq": torch.rand(2, 3, 8, 8)}
    assert degrade_deferred(plain) is plain["lq"]  # nothing deferred: lq as it is


# a tiny run that learns within 8 steps, on noise, rain and low light (the Philox stream)
DEVICE_RUN = ["strategy=M", "order=NRL", "periods=2", "period_iters=4", "lr=5e-3", "lr_min=5e-3",
              "stream=philox", "checkpoint_every=2"]  # fmt: skip


def _tiny_cfg(*extra: str):
    from mio_strategies.harness import load_config
    from tests.tiny_runs import TINY

    return load_config("cpu_demo", [*TINY, *DEVICE_RUN, *extra])


def _tiny_train(cfg, out, **kw):
    from mio_strategies.harness import train
    from tests.tiny_runs import tiny_val

    return train(cfg, out, val_dataset=tiny_val(cfg), progress=False, **kw)  # the default (embedded) dataset


def test_device_synthesis_trains_the_loaders_run_and_resumes_exactly(tmp_path):
    from mio_strategies.harness import load_checkpoint
    from tests.tiny_runs import same_state

    loader = _tiny_train(_tiny_cfg(), tmp_path / "loader")
    cfg = _tiny_cfg("synthesis=device")
    full = _tiny_train(cfg, tmp_path / "full")
    # the same batches as the loader's (bit for bit on the CPU for these tasks), so the same run
    assert [h["loss"] for h in full.history] == [h["loss"] for h in loader.history]
    a, ref = load_checkpoint(full.checkpoint), load_checkpoint(loader.checkpoint)
    assert same_state(a["model"], ref["model"]) and a["config"]["synthesis"] == "device"
    # training moved the loss
    losses = [h["loss"] for h in full.history]
    assert sum(losses[-2:]) < 0.8 * sum(losses[:2])
    # resume equals the uninterrupted run, bit for bit
    _tiny_train(cfg, tmp_path / "part", stop_after=4)
    torch.manual_seed(5)
    done = _tiny_train(cfg, tmp_path / "part", resume=True)
    b = load_checkpoint(done.checkpoint)
    assert same_state(a["model"], b["model"]) and same_state(a["optimizer"], b["optimizer"])
    assert [h["loss"] for h in full.history] == [h["loss"] for h in done.history]


def test_synthesis_is_run_defining_and_has_a_train_flag(tmp_path):
    from mio_strategies.checkpoints import CheckpointMismatchError
    from mio_strategies.cli import main
    from mio_strategies.harness import load_checkpoint
    from tests.tiny_runs import TINY

    cfg = _tiny_cfg("synthesis=device")
    _tiny_train(cfg, tmp_path / "run", stop_after=2)
    with pytest.raises(CheckpointMismatchError, match="synthesis: 'device' in the checkpoint, 'loader' requested"):
        _tiny_train(cfg.replace(synthesis="loader"), tmp_path / "run", resume=True)
    out = tmp_path / "cli"
    sets = [a for kv in [*TINY, "order=NL", "periods=2", "period_iters=1"] for a in ("--set", kv)]
    assert main(["train", "--config", "cpu_demo", *sets, "--output", str(out), "--no-progress",
                 "--synthesis", "device"]) == 0  # fmt: skip
    assert load_checkpoint(out / "checkpoint.pt")["config"]["synthesis"] == "device"


def test_packed_runs_degrade_deferred_items_too(tmp_path):
    from mio_strategies.harness._packed import train_packed
    from tests.tiny_runs import tiny_val

    def pack(synthesis: str) -> list:
        cfgs = [_tiny_cfg(f"synthesis={synthesis}", f"seed={k}", "periods=1") for k in (0, 1)]
        outs = [tmp_path / f"{synthesis}{k}" for k in (0, 1)]
        return train_packed(cfgs, outs, val_datasets=[tiny_val(c) for c in cfgs], progress=False)

    loader, device = pack("loader"), pack("device")
    for a, b in zip(loader, device):
        assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
