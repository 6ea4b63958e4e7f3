"""PSNR and SSIM under the conventions published benchmark rows used: RGB or Y, float or 8-bit, SSIM window.

The all-in-one papers score differently from the seed paper's basicsr code: PromptIR, AdaIR and MoCE-IR
compute PSNR on the clamped float RGB output with scikit-image (data range 1, no border crop), SSIM
with scikit-image's default 7x7 box window (PromptIR, AdaIR) or its Gaussian option (MoCE-IR);
OneRestore scores 8-bit PNGs. These functions reproduce each convention in torch, on batches; the Y
channel is ITU-R BT.601 luma as basicsr and MATLAB compute it (16..235 on the 8-bit scale).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mio_strategies.utils.validation import non_negative_int

__all__ = ["SSIM_WINDOWS", "convention_psnr", "convention_ssim", "rgb_to_y"]

SSIM_WINDOWS: tuple[str, ...] = ("uniform7", "gaussian11", "basicsr")
"""The SSIM windows :func:`convention_ssim` knows: scikit-image's default box, its Gaussian option, basicsr's."""


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, 1, H, W)`` BT.601 luma on the same scale (16/255 .. 235/255).

    Example:
        >>> round(float(rgb_to_y(torch.ones(1, 3, 1, 1))), 4)
        0.9216
    """
    w = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x * w).sum(dim=1, keepdim=True) + 16.0) / 255.0


def _prepare(output: torch.Tensor, target: torch.Tensor, *, color: str, border: int,
             quantize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if output.shape != target.shape or output.ndim != 4 or output.shape[1] != 3:
        raise ValueError(f"expected two (B, 3, H, W) tensors of one shape, got {tuple(output.shape)} and "
                         f"{tuple(target.shape)}")
    if color not in ("rgb", "y"):
        raise ValueError(f"color must be 'rgb' or 'y', got {color!r}")
    non_negative_int("border", border)
    a = output.detach().to(torch.float64).clamp(0, 1)
    b = target.detach().to(torch.float64).clamp(0, 1)
    if quantize:
        a = torch.round(a * 255.0) / 255.0
    if border:
        h, w = a.shape[-2:]
        if h <= 2 * border or w <= 2 * border:
            raise ValueError(f"images of {h}x{w} are too small for border={border}")
        a = a[..., border:-border, border:-border]
        b = b[..., border:-border, border:-border]
    if color == "y":
        a, b = rgb_to_y(a), rgb_to_y(b)
    return a, b


def convention_psnr(output: torch.Tensor, target: torch.Tensor, *, color: str = "rgb", border: int = 0,
                    quantize: bool = False) -> torch.Tensor:
    """Per-image PSNR (dB, data range 1) under one convention; ``inf`` for identical images.

    Args:
        output: ``(B, 3, H, W)`` in [0, 1] (clamped).
        target: ``(B, 3, H, W)`` in [0, 1].
        color: ``"rgb"`` (all three channels) or ``"y"`` (BT.601 luma).
        border: pixels cropped at each side.
        quantize: round the output to 8-bit levels first (scores a saved PNG).

    Returns:
        ``(B,)`` float64.

    Example:
        >>> x = torch.zeros(1, 3, 8, 8); y = x.clone(); y[..., 0, 0] = 1.0
        >>> round(float(convention_psnr(x, y)), 2)
        18.06
    """
    a, b = _prepare(output, target, color=color, border=border, quantize=quantize)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    out = 10.0 * torch.log10(1.0 / mse)
    return torch.where(mse == 0, torch.full_like(mse, math.inf), out)


def _window(kind: str, device: torch.device) -> tuple[torch.Tensor, float]:
    """The separable 1-D window and the covariance normalisation of an SSIM convention."""
    if kind == "uniform7":  # scikit-image's default: 7x7 box, sample covariance
        return torch.full((7,), 1.0 / 7.0, dtype=torch.float64, device=device), 49.0 / 48.0
    coords = torch.arange(11, dtype=torch.float64, device=device) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    if kind == "gaussian11":  # scikit-image gaussian_weights=True (sigma 1.5, truncate 3.5), sample covariance
        return g, 121.0 / 120.0
    if kind == "basicsr":  # Wang et al. / basicsr: 11x11 Gaussian, population covariance
        return g, 1.0
    raise ValueError(f"ssim window must be one of {SSIM_WINDOWS}, got {kind!r}")


def convention_ssim(output: torch.Tensor, target: torch.Tensor, *, color: str = "rgb", border: int = 0,
                    quantize: bool = False, window: str = "uniform7") -> torch.Tensor:
    """Per-image SSIM (data range 1, channels averaged, 'valid' windows) under one convention.

    Args:
        output: ``(B, 3, H, W)`` in [0, 1] (clamped).
        target: ``(B, 3, H, W)`` in [0, 1].
        color: ``"rgb"`` or ``"y"``, as :func:`convention_psnr`.
        border: pixels cropped at each side.
        quantize: round the output to 8-bit levels first.
        window: ``"uniform7"`` (scikit-image's default), ``"gaussian11"`` (scikit-image with
            ``gaussian_weights=True``) or ``"basicsr"`` (basicsr's ``calculate_ssim``).

    Returns:
        ``(B,)`` float64.

    Example:
        >>> x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> float(convention_ssim(x, x))
        1.0
    """
    a, b = _prepare(output, target, color=color, border=border, quantize=quantize)
    g, cov_norm = _window(window, a.device)
    k = g.numel()
    if min(a.shape[-2:]) < k:
        raise ValueError(f"SSIM with window {window!r} needs at least {k}x{k} pixels, got {tuple(a.shape[-2:])}")
    c = a.shape[1]
    rows, cols = g.view(1, 1, k, 1).expand(c, 1, k, 1), g.view(1, 1, 1, k).expand(c, 1, 1, k)

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, rows, groups=c), cols, groups=c)

    c1, c2 = 0.01**2, 0.03**2
    ux, uy = filt(a), filt(b)
    vx = cov_norm * (filt(a * a) - ux * ux)
    vy = cov_norm * (filt(b * b) - uy * uy)
    vxy = cov_norm * (filt(a * b) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3)).mean(dim=1)
