"""The reference's data path where it differs from the library's: ``implementation="reference"``.

The authors' public code makes its training data offline with PyTorch operators, and its test inputs from
stored low-resolution files. Where that differs from the library's choices, this module reproduces it:

- **SR, training**: ``F.interpolate(x, scale_factor=1/s, mode="bicubic")`` down, then
  ``F.interpolate(..., size=(H, W), mode="bicubic")`` back up (cubic a = -0.75, ``align_corners=False``,
  no antialiasing), the low-resolution image NOT rounded; one rounding at the end
  (:func:`bicubic_sr_torch`).
- **SR, test**: the low-resolution file is MATLAB-style ``imresize`` (antialiased, a = -0.5) stored as
  8-bit, then upsampled by the same PyTorch bicubic to ``s`` times its size (:func:`bicubic_sr_stored_lr`).
- **JPEG**: basicsr's differentiable JPEG model with hard rounding (``DiffJPEG(differentiable=False)``) on
  the clamped image, rounded once at the end (:func:`jpeg_diffjpeg`), batched on any device.
- **Rain, haze**: the image is first cropped (top-left) to a multiple of 4 on each side.

Blur, noise and low-light are the library's (they already agree with the reference to one 8-bit level;
noise and rain draw their random fields from other streams than the reference's, as any reimplementation).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..utils.validation import positive_int
from ._diffjpeg import diff_jpeg
from ._functional import _finish, _prepare, quantize_8bit
from ._resize import imresize_tensor
from ._validation import as_param, check_images

__all__ = [
    "IMPLEMENTATIONS",
    "REFERENCE_CROP_MULTIPLE",
    "bicubic_sr_stored_lr",
    "bicubic_sr_torch",
    "check_implementation",
    "crop_to_multiple",
    "jpeg_diffjpeg",
]

IMPLEMENTATIONS = ("library", "reference")
"""The two data paths: the library's own choices (``"library"``), and the reference code's (``"reference"``)."""

#: the reference crops rain and haze images (top-left) to a multiple of this on each side
REFERENCE_CROP_MULTIPLE = 4

#: tasks whose reference implementation crops the images to a multiple of ``REFERENCE_CROP_MULTIPLE``
CROPPING_TASKS = ("rain", "haze")


def check_implementation(value: Any) -> str:
    """Return ``value`` if it names an implementation, else raise ``ValueError`` listing the valid ones.

    Example:
        >>> check_implementation("reference")
        'reference'
    """
    if not isinstance(value, str) or value not in IMPLEMENTATIONS:
        raise ValueError(
            f"unknown implementation {value!r}: valid implementations are {list(IMPLEMENTATIONS)} ('library': the "
            "library's degradations; 'reference': the official code's data path)"
        )
    return value


def crop_to_multiple(images: torch.Tensor, multiple: int = REFERENCE_CROP_MULTIPLE) -> torch.Tensor:
    """Crop the last two dims (top-left) to a multiple of ``multiple``, as the reference's rain and haze do.

    Args:
        images: a ``(..., H, W)`` tensor with ``H, W >= multiple``.
        multiple: a positive integer.

    Returns:
        A view ``images[..., :H - H % multiple, :W - W % multiple]``.

    Raises:
        ValueError: ``multiple`` not a positive integer, or an image smaller than it.

    Example:
        >>> crop_to_multiple(torch.zeros(1, 3, 30, 41)).shape
        torch.Size([1, 3, 28, 40])
    """
    positive_int("multiple", multiple)
    h, w = images.shape[-2:]
    if h < multiple or w < multiple:
        raise ValueError(f"images of size (H, W) = ({h}, {w}) are smaller than the crop multiple {multiple}")
    return images[..., : h - h % multiple, : w - w % multiple]


def crop_depth(depth: Any, full: tuple[int, int], cropped: tuple[int, int]) -> Any:
    """Crop a depth tensor/array given at the full image size to the cropped size; anything else passes."""
    if cropped == full or not hasattr(depth, "shape") or tuple(depth.shape[-2:]) != full:
        return depth
    return depth[..., : cropped[0], : cropped[1]]


# --------------------------------------------------------------------------------------------- sr
def _torch_bicubic_one_scale(x: torch.Tensor, s: int) -> torch.Tensor:
    if s == 1:
        return x
    h, w = x.shape[-2:]
    low = F.interpolate(x, scale_factor=1.0 / s, mode="bicubic")  # as the reference calls it: no rounding
    return F.interpolate(low, size=(h, w), mode="bicubic")


def _check_sr_size(h: int, w: int, big: int) -> None:
    if h // big < 1 or w // big < 1:
        raise ValueError(
            f"sr.scale {big} is larger than the image size (H, W) = ({h}, {w}); images must be at least scale "
            f"pixels on each side"
        )


def _sr_torch_impl(images: torch.Tensor, sc: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    h, w = images.shape[-2:]
    _check_sr_size(h, w, int(sc.max()))
    x = _prepare(images)
    uniq = torch.unique(sc).tolist()
    if len(uniq) == 1:
        y = _torch_bicubic_one_scale(x, int(uniq[0]))
    else:
        y = torch.empty_like(x)
        for s in uniq:
            sel = (sc == s).nonzero().flatten().to(x.device)
            y[sel] = _torch_bicubic_one_scale(x[sel], int(s))
    return _finish(y, images, quantize)


def bicubic_sr_torch(images: torch.Tensor, scale: Any, *, quantize: bool = True) -> torch.Tensor:
    """SR degradation of the reference's training data: PyTorch bicubic down by ``scale``, then back up.

    ``F.interpolate(x, scale_factor=1/scale, mode="bicubic")`` (low-resolution size ``floor(H/scale)``,
    kept in float), then ``F.interpolate(low, size=(H, W), mode="bicubic")``, then one rounding to 8 bits.

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        scale: integer factor(s) in [1, 16], one for the batch or one per image.
        quantize: round the output to 8-bit levels.

    Returns:
        Tensor like ``images``.

    Raises:
        ValueError: ``scale`` out of bounds or larger than H or W.

    Example:
        >>> bicubic_sr_torch(torch.rand(2, 3, 32, 32), 4).shape
        torch.Size([2, 3, 32, 32])
    """
    check_images(images)
    return _sr_torch_impl(images, as_param(scale, "sr", "scale", images.shape[0]), quantize)


def bicubic_sr_stored_lr(images: torch.Tensor, scale: Any, *, quantize: bool = True) -> torch.Tensor:
    """SR input of the reference's test sets: a MATLAB-style 8-bit low-resolution image, PyTorch bicubic up.

    The low-resolution image is ``imresize(GT, 1/scale)`` (MATLAB convention, antialiased, a = -0.5),
    rounded to 8 bits as a stored file is; it is upsampled with ``F.interpolate(size=(h * scale, w *
    scale), mode="bicubic")`` and rounded. H and W must be multiples of ``scale`` (crop the GT first, as SR
    test sets do), so that the output has the GT's size.

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1], H and W multiples of every ``scale``.
        scale: integer factor(s) in [1, 16].
        quantize: round the output to 8-bit levels.

    Returns:
        Tensor like ``images``.

    Raises:
        ValueError: H or W not a multiple of a scale (the message gives the crop).

    Example:
        >>> bicubic_sr_stored_lr(torch.rand(1, 3, 32, 48), 4).shape
        torch.Size([1, 3, 32, 48])
    """
    check_images(images)
    sc = as_param(scale, "sr", "scale", images.shape[0])
    h, w = images.shape[-2:]
    x = _prepare(images)
    y = torch.empty_like(x)
    for s in torch.unique(sc).tolist():
        s = int(s)
        if h % s or w % s:
            raise ValueError(
                f"the stored-LR SR path needs H and W multiples of the scale {s}, got (H, W) = ({h}, {w}); crop the "
                f"images first, e.g. crop_to_multiple(images, {s})"
            )
        sel = (sc == s).nonzero().flatten().to(x.device)
        if s == 1:
            y[sel] = x[sel]
            continue
        low = quantize_8bit(imresize_tensor(x[sel], h // s, w // s, 1.0 / s, 1.0 / s))
        y[sel] = F.interpolate(low, size=(h, w), mode="bicubic")
    return _finish(y, images, quantize)


# --------------------------------------------------------------------------------------------- jpeg
def _jpeg_diffjpeg_impl(images: torch.Tensor, quality: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    if bool((quality >= 100).any()):
        raise ValueError(
            "jpeg.quality 100 is outside the reference JPEG's range: basicsr's DiffJPEG scales its tables by "
            "(200 - 2 * quality) / 100 = 0 there and divides by zero; use a quality in [1, 99]"
        )
    y = diff_jpeg(images, quality)
    return _finish(y.to(_prepare(images).dtype), images, quantize)


def jpeg_diffjpeg(images: torch.Tensor, quality: Any, *, quantize: bool = True) -> torch.Tensor:
    """JPEG degradation of the reference: basicsr's ``DiffJPEG(differentiable=False)`` model, then one rounding.

    A torch implementation (batched, any device, a quality per image) equal to basicsr's module to float32
    rounding; see :mod:`mio_strategies.degradations._diffjpeg` for what the model does and how it differs
    from a real codec (:func:`jpeg_compress`).

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        quality: integer quality(ies) in [1, 99] (at 100 basicsr's model divides by zero).
        quantize: round the output to 8-bit levels (the reference does).

    Returns:
        Tensor like ``images``.

    Raises:
        ValueError: a quality out of [1, 99].

    Example:
        >>> jpeg_diffjpeg(torch.rand(2, 3, 24, 24), quality=[30, 70]).shape
        torch.Size([2, 3, 24, 24])
    """
    check_images(images)
    return _jpeg_diffjpeg_impl(images, as_param(quality, "jpeg", "quality", images.shape[0]), quantize)

