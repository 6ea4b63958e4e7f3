"""MATLAB-compatible bicubic ``imresize`` as two cached dense matrices (one per axis).

MATLAB's ``imresize(I, s, 'bicubic')`` (the convention of the SR literature and of the reference's
stored low-resolution test files; its training data is PyTorch bicubic, see ``_reference.py``):
cubic kernel with a = -0.5; when shrinking, the kernel is stretched by 1/s (antialiasing); borders are
half-sample symmetric (``aux = [1:n, n:-1:1]``). Every output pixel is a weighted sum of input pixels,
so one axis is a matrix ``(out, in)`` and a resize is ``Wh @ X @ Ww^T`` -- batched, device-agnostic,
and exact up to float rounding.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@functools.lru_cache(maxsize=128)
def resize_matrix_np(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """Dense ``(out_len, in_len)`` float64 matrix of MATLAB's bicubic imresize along one axis."""
    width = 4.0
    stretch = scale < 1 and antialias
    if stretch:
        width = width / scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input coordinate of each output centre
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if stretch else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # half-sample symmetric borders: 0-based j < 0 -> -j-1, j >= n -> 2n-1-j (repeated for tiny inputs)
    j = (idx - 1).astype(np.int64)
    period = 2 * in_len
    j = np.mod(j, period)
    j = np.where(j >= in_len, period - 1 - j, j)
    m = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(m, (rows, j.ravel()), w.ravel())
    return m


_DEVICE_CACHE: dict[tuple, torch.Tensor] = {}


def resize_matrix(in_len: int, out_len: int, scale: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (in_len, out_len, float(scale), str(device), dtype)
    m = _DEVICE_CACHE.get(key)
    if m is None:
        if len(_DEVICE_CACHE) > 256:
            _DEVICE_CACHE.clear()
        m = torch.from_numpy(resize_matrix_np(in_len, out_len, float(scale))).to(device=device, dtype=dtype)
        _DEVICE_CACHE[key] = m
    return m


def imresize_tensor(x: torch.Tensor, out_h: int, out_w: int, scale_h: float, scale_w: float) -> torch.Tensor:
    """Resize the last two dims of ``x`` to ``(out_h, out_w)`` with MATLAB bicubic weights (no rounding)."""
    h, w = x.shape[-2:]
    mh = resize_matrix(h, out_h, scale_h, x.device, x.dtype)
    mw = resize_matrix(w, out_w, scale_w, x.device, x.dtype)
    return torch.matmul(torch.matmul(mh, x), mw.transpose(0, 1))
