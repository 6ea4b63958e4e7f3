"""A batched, device-agnostic JPEG round trip in torch, numerically equal to basicsr's ``DiffJPEG``.

The reference's training data goes through ``basicsr.utils.DiffJPEG(differentiable=False)``, not a real
codec. That model of JPEG differs from libjpeg in ways that change the images (0.2-0.44 dB at quality
30-70), so reproducing the reference's data needs the same model, step by step:

- zero padding on the bottom/right to a multiple of 16, cropped away at the end;
- RGB -> YCbCr on the 0..255 scale (JFIF matrix, chroma offset 128), in float32;
- 4:2:0 chroma: 2x2 average pooling, restored by repetition (no smoothing);
- 8x8 block DCT-II of ``level - 128`` with the orthonormal ``alpha(u) alpha(v) / 4`` scale;
- quantisation by the standard luminance / chrominance tables **transposed** (the DCT's first index is
  the block row) and multiplied by the IJG quality factor ``5000 / q / 100`` (q < 50) or
  ``(200 - 2 q) / 100``, without the integer rounding and 1..255 clipping of real encoders;
  ``torch.round`` of the coefficients (half to even);
- the inverse of each step; the result is clipped to 0..255 and divided by 255 (not rounded: the caller
  rounds once, as the reference's data scripts do).

Every step runs in float32 with the same operations, in the same order, as basicsr's module, so the two
agree to float32 rounding; a coefficient lying within that rounding of a half-integer can round the other
way (rare). The quality may differ per image: the batch is compressed at once.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["diff_jpeg", "quality_factor"]

# The standard (ITU T.81, Annex K) quantisation tables, row = vertical frequency.
_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TOP = ((17, 18, 24, 47), (18, 21, 26, 66), (24, 26, 56, 99), (47, 66, 99, 99))

# JFIF colour conversion (rows: output channel), and its inverse
_RGB2YCC = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_YCC2RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def quality_factor(quality: float) -> float:
    """The IJG scaling of the standard tables for a quality in [1, 100], as a float (no integer rounding).

    Example:
        >>> quality_factor(50), round(quality_factor(10), 6)
        (1.0, 5.0)
    """
    q = float(quality)
    return (5000.0 / q if q < 50 else 200.0 - q * 2) / 100.0


@functools.lru_cache(maxsize=1)
def _constants_np() -> dict[str, np.ndarray]:
    luma = np.asarray(_LUMA, dtype=np.float32).T  # transposed, as the reference's module holds it
    chroma = np.full((8, 8), 99.0, dtype=np.float32)
    chroma[:4, :4] = np.asarray(_CHROMA_TOP, dtype=np.float32).T
    k = np.arange(8)
    # cos((2 x + 1) u pi / 16): basis[x, u]; the 2-D basis is the outer product over (x, y) and (u, v)
    basis = np.cos((2 * k[:, None] + 1) * k[None, :] * np.pi / 16)
    dct = np.einsum("xu,yv->xyuv", basis, basis).astype(np.float32).reshape(64, 64)  # (x y) -> (u v)
    idct = np.einsum("ux,vy->xyuv", basis, basis).astype(np.float32).reshape(64, 64)  # (u v) -> (x y)
    alpha = np.array([1.0 / np.sqrt(2)] + [1.0] * 7)
    outer = np.outer(alpha, alpha)
    return {
        "luma": luma,
        "chroma": chroma,
        "dct": dct,
        "idct": idct,
        "dct_scale": (outer * 0.25).astype(np.float32),
        "alpha": outer.astype(np.float32),
        "rgb2ycc": np.asarray(_RGB2YCC, dtype=np.float32).T.copy(),
        "ycc2rgb": np.asarray(_YCC2RGB, dtype=np.float32).T.copy(),
    }


_DEVICE_CONSTANTS: dict[str, dict[str, torch.Tensor]] = {}


def _constants(device: torch.device) -> dict[str, torch.Tensor]:
    key = str(device)
    c = _DEVICE_CONSTANTS.get(key)
    if c is None:
        c = {k: torch.from_numpy(v).to(device) for k, v in _constants_np().items()}
        c["ycc_shift"] = torch.tensor([0.0, 128.0, 128.0], device=device)
        c["rgb_shift"] = torch.tensor([0.0, -128.0, -128.0], device=device)
        _DEVICE_CONSTANTS[key] = c
    return c


def _to_blocks(plane: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` -> ``(B, H/8 * W/8, 8, 8)``, blocks in row-major order."""
    b, h, w = plane.shape
    return plane.view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(b, -1, 8, 8)


def _from_blocks(blocks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b = blocks.shape[0]
    return blocks.view(b, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h, w)


def _code(plane: torch.Tensor, table: torch.Tensor, c: dict[str, torch.Tensor]) -> torch.Tensor:
    """Forward DCT, quantisation by ``table`` ``(B, 1, 8, 8)``, rounding, dequantisation, inverse DCT."""
    b, h, w = plane.shape
    blocks = _to_blocks(plane) - 128
    coef = c["dct_scale"] * torch.matmul(blocks.reshape(-1, 64), c["dct"]).view(b, -1, 8, 8)
    coef = torch.round(coef / table) * table
    coef = coef * c["alpha"]
    pixels = 0.25 * torch.matmul(coef.reshape(-1, 64), c["idct"]).view(b, -1, 8, 8) + 128
    return _from_blocks(pixels, h, w)


def diff_jpeg(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress and decompress a batch as basicsr's ``DiffJPEG(differentiable=False)`` does.

    Args:
        images: ``(B, 3, H, W)`` float tensor, RGB, values in [0, 1] (clamped here, as the reference
            clamps before its call); any device.
        quality: ``(B,)`` qualities in [1, 100] (any numeric dtype, any device).

    Returns:
        ``(B, 3, H, W)`` float32 tensor in [0, 1] on ``images``' device, NOT rounded to 8-bit levels.

    Example:
        >>> diff_jpeg(torch.rand(2, 3, 20, 36), torch.tensor([30, 70])).shape
        torch.Size([2, 3, 20, 36])
    """
    b, _, h, w = images.shape
    dev = images.device
    c = _constants(dev)
    # the factor of each image as the reference computes it for a Python number: float64, then one
    # float32 multiplication with the table
    factors = torch.tensor([quality_factor(q) for q in quality.tolist()], dtype=torch.float32, device=dev)
    x = images.detach().to(torch.float32).clamp(0, 1)
    ph, pw = (16 - h % 16) % 16, (16 - w % 16) % 16
    x = F.pad(x, (0, pw, 0, ph), mode="constant", value=0.0)
    hp, wp = h + ph, w + pw

    ycc = torch.matmul((x * 255).permute(0, 2, 3, 1).reshape(-1, 3), c["rgb2ycc"]).view(b, hp, wp, 3)
    ycc = ycc + c["ycc_shift"]
    y = ycc[..., 0]
    chroma = F.avg_pool2d(ycc[..., 1:].permute(0, 3, 1, 2), kernel_size=2, stride=2)  # (B, 2, H/2, W/2)

    f = factors.view(b, 1, 1, 1)
    y = _code(y, c["luma"].expand(b, 1, 8, 8) * f, c)
    ctab = c["chroma"].expand(b, 1, 8, 8) * f
    cb = _code(chroma[:, 0], ctab, c)
    cr = _code(chroma[:, 1], ctab, c)
    cb = cb.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    cr = cr.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)

    ycc = torch.stack([y, cb, cr], dim=-1) + c["rgb_shift"]
    rgb = torch.matmul(ycc.reshape(-1, 3), c["ycc2rgb"]).view(b, hp, wp, 3).permute(0, 3, 1, 2)
    rgb = rgb.clamp(0.0, 255.0) / 255
    return rgb[:, :, :h, :w]

