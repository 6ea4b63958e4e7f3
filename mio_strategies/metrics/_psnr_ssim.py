"""PSNR and SSIM as the reference computes them (basicsr's ``calculate_psnr`` / ``calculate_ssim``), in torch.

The reference evaluates 8-bit RGB images: the network output is clamped to [0, 1], scaled to 0..255
and rounded (basicsr's ``tensor2img``), a 4-pixel border is cropped, and PSNR/SSIM are computed on
RGB in float64 (SSIM: 11x11 Gaussian window of sigma 1.5, 'valid' filtering, averaged over channels).
These functions do the same on batches of tensors; a test checks them against basicsr.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mio_strategies.utils.validation import non_negative_int

__all__ = ["psnr", "ssim", "to_uint8_levels"]


def to_uint8_levels(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] -> float64 on the 0..255 integer levels (clamp, scale, round)."""
    return (x.detach().to(torch.float64).clamp(0, 1) * 255.0).round()


def _validate(a: torch.Tensor, b: torch.Tensor, crop_border: int) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) tensors, got {a.ndim}D")
    non_negative_int("crop_border", crop_border)
    h, w = a.shape[-2:]
    if h <= 2 * crop_border or w <= 2 * crop_border:
        raise ValueError(f"images of {h}x{w} are too small for crop_border={crop_border}")


#: pixels of one band of rows the metrics work on at a time: their float64 maps then take memory in proportion
#: to the band, not the image (a 4K pair: tens of MiB instead of GiB); an image of fewer pixels is one band
_BAND_PIXELS = 2**20


def _bands(a: torch.Tensor, b: torch.Tensor, crop_border: int, halo: int):  # noqa: ANN202
    """``(a_band, b_band, rows)`` on 8-bit levels, cropped, in bands of rows; consecutive bands overlap by
    ``halo`` rows (a 'valid' filter of ``halo + 1`` rows then covers every output row once); ``rows`` is the
    number of output rows a band contributes."""
    h, w = a.shape[-2:]
    top, bottom = crop_border, h - crop_border
    left, right = crop_border, w - crop_border
    step = max(64, _BAND_PIXELS // max(1, right - left))
    start = top
    while start < bottom - halo:
        stop = min(bottom, start + step + halo)
        yield (to_uint8_levels(a[..., start:stop, left:right]), to_uint8_levels(b[..., start:stop, left:right]),
               stop - start - halo)
        start = stop - halo


def psnr(output: torch.Tensor, target: torch.Tensor, crop_border: int = 4) -> torch.Tensor:
    """Per-image PSNR in dB on 8-bit RGB levels with a border crop; ``inf`` for identical images.

    Args:
        output: a ``(B, C, H, W)`` float tensor in [0, 1].
        target: a ``(B, C, H, W)`` float tensor in [0, 1].
        crop_border: pixels removed at each side (the reference uses 4).

    Returns:
        ``(B,)`` float64 tensor.

    Example:
        >>> x = torch.zeros(1, 3, 16, 16); y = x.clone(); y[..., 8, 8] = 1.0
        >>> round(float(psnr(x, y)), 2)
        24.08
    """
    _validate(output, target, crop_border)
    sq = torch.zeros(output.shape[0], dtype=torch.float64, device=output.device)
    n = 0
    for a, b, _rows in _bands(output, target, crop_border, 0):
        sq += ((a - b) ** 2).sum(dim=(1, 2, 3))
        n += a[0].numel()
    mse = sq / n
    out = 10.0 * torch.log10((255.0**2) / mse)
    return torch.where(mse == 0, torch.full_like(mse, math.inf), out)


def _gaussian_1d(device: torch.device) -> torch.Tensor:
    coords = torch.arange(11, dtype=torch.float64, device=device) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    return g / g.sum()


def ssim(output: torch.Tensor, target: torch.Tensor, crop_border: int = 4) -> torch.Tensor:
    """Per-image SSIM on 8-bit RGB levels with a border crop (basicsr's formula, channels averaged).

    Returns:
        ``(B,)`` float64 tensor.

    Example:
        >>> x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> float(ssim(x, x))
        1.0
    """
    _validate(output, target, crop_border)
    hh, ww = (n - 2 * crop_border for n in output.shape[-2:])
    if min(hh, ww) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after the crop, got {(hh, ww)}")
    c = output.shape[1]
    g = _gaussian_1d(output.device)
    rows, cols = g.view(1, 1, 11, 1).expand(c, 1, 11, 1), g.view(1, 1, 1, 11).expand(c, 1, 1, 11)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(x: torch.Tensor) -> torch.Tensor:
        # the 11x11 Gaussian window is the outer product of a 1-D one: filter rows, then columns
        return F.conv2d(F.conv2d(x, rows, groups=c), cols, groups=c)

    # in bands of rows overlapping by the window's 10 rows: the same 'valid' SSIM map, a band at a time
    total = torch.zeros(output.shape[0], c, dtype=torch.float64, device=output.device)
    for a, b, _ in _bands(output, target, crop_border, 10):
        mu1, mu2 = filt(a), filt(b)
        s11 = filt(a * a) - mu1**2
        s22 = filt(b * b) - mu2**2
        s12 = filt(a * b) - mu1 * mu2
        ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
        total += ssim_map.sum(dim=(2, 3))
    return (total / ((hh - 10) * (ww - 10))).mean(dim=1)
