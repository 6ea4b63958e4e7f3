"""The Philox stream's rain streak layer in torch on the images' device: equal to the NumPy layer,
batch-invariant, and the torch stream's layer unchanged."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from mio_strategies.degradations import _functional as fn
from mio_strategies.degradations import _rain_torch as rt
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


def test_ordered_scatter_adds_as_the_cpus_index_add():
    # the GPU's scatter (each pixel's additions one rank at a time), run on the CPU: the same sums bit for bit
    for seed, ranges, size in [(0, None, 48), (1, {"amount": (2000, 4000)}, 24)]:
        p = sample_params("rain", 6, generator=torch.Generator().manual_seed(seed), stream="philox", ranges=ranges)
        u = rt._streak_seeds_torch(p["seed"], p["amount"], size, size, torch.device("cpu"))
        k, a = streak_kernels_torch(p["length"], p["angle"], p["width"])
        k2 = rt._cross_correlated_torch(k)
        upad = u[:, reflect_index(size, a + 1)][:, :, reflect_index(size, a + 1)]
        in_order = rt._scatter(upad, k2, size, size, ordered=True)
        assert torch.equal(in_order, rt._scatter(upad, k2, size, size, ordered=False))
        assert float(in_order.max()) > 0


@needs_cuda
def test_torch_rain_layer_is_the_same_on_cuda():
    p = _rain_params(16, 7)
    cpu = rain_layer_torch(*(p[k] for k in RAIN_KEYS), 64, 64, "cpu", torch.float32)
    gpu = rain_layer_torch(*(p[k] for k in RAIN_KEYS), 64, 64, "cuda", torch.float32)
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
