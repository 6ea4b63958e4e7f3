"""Batched filtering helpers: reflect-101 padding of any width and per-sample separable Gaussians."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=256)
def _reflect_index_cpu(n: int, before: int, after: int) -> torch.Tensor:
    idx = torch.arange(-before, n + after, dtype=torch.int64)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - idx, idx)


def reflect101_index(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Source indices of a reflect-101 padding (OpenCV's BORDER_REFLECT_101, scipy's ``mirror``) of any width.

    Index ``-1`` maps to ``1``, ``n`` to ``n - 2``; pads wider than the signal reflect again.
    """
    return _reflect_index_cpu(n, before, after).to(device)


def pad_reflect101(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Pad the last two dims of ``x`` by ``ph`` rows and ``pw`` columns on each side, reflect-101."""
    h, w = x.shape[-2:]
    if ph == 0 and pw == 0:
        return x
    if ph < h and pw < w:
        return F.pad(x, (pw, pw, ph, ph), mode="reflect")
    x = x.index_select(-2, reflect101_index(h, ph, ph, x.device))
    return x.index_select(-1, reflect101_index(w, pw, pw, x.device))


def gaussian_kernels_1d(sigma: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Normalised 1-D Gaussians, one per row, zero-padded (centred) to the largest odd ``size``.

    Args:
        sigma: ``(B,)`` standard deviations.
        size: ``(B,)`` odd kernel sizes.

    Returns:
        ``(B, K)`` float64 tensor, ``K = max(size)``; each row sums to 1.
    """
    k = int(size.max())
    r = k // 2
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(x[None, :] ** 2) / (2.0 * sigma.to(torch.float64)[:, None] ** 2))
    g = torch.where(x[None, :].abs() <= (size[:, None] // 2), g, torch.zeros((), dtype=torch.float64))
    return g / g.sum(dim=1, keepdim=True)


def separable_filter(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each image of ``x`` (B, C, H, W) with the outer product of its own 1-D kernel.

    Borders are reflect-101 (as OpenCV's default and basicsr's ``filter2D``).

    Args:
        x: ``(B, C, H, W)`` images.
        kernels: ``(B, K)`` odd-length kernels (same dtype as ``x`` after casting).
    """
    b, c, h, w = x.shape
    k = kernels.shape[1]
    r = k // 2
    wk = kernels.to(device=x.device, dtype=x.dtype)
    if r == 0:
        return x * wk.reshape(b, 1, 1, 1)
    xp = pad_reflect101(x, r, r).reshape(1, b * c, h + 2 * r, w + 2 * r)
    wk = wk.repeat_interleave(c, dim=0)  # (B*C, K)
    y = F.conv2d(xp, wk.reshape(b * c, 1, 1, k), groups=b * c)  # along W
    y = F.conv2d(y, wk.reshape(b * c, 1, k, 1), groups=b * c)  # along H
    return y.reshape(b, c, h, w)
