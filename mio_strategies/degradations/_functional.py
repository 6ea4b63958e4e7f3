"""The seven degradations as explicit-parameter functions, batched, device-agnostic.

Every function takes a ``(B, 3, H, W)`` float tensor in [0, 1] and per-sample parameters (a number for
the whole batch, or one value per image), and returns a tensor of the same shape, dtype and device,
clipped to [0, 1] and, unless ``quantize=False``, rounded to 8-bit levels (``round(x * 255) / 255``),
as the reference rounds after each degradation.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch

from ._depth import DepthLike, check_depth, estimate_depth
from ._kernels import gaussian_kernels_1d, separable_filter
from ._philox import DOMAIN_NOISE, philox_normal
from ._rain import rain_layer
from ._rain_torch import rain_layer_torch
from ._resize import imresize_tensor
from ._specs import check_stream
from ._validation import as_param, check_images, compute_dtype

Param = Any  # a number, or a (B,) tensor / sequence of per-sample values

__all__ = [
    "quantize_8bit",
    "bicubic_sr",
    "imresize",
    "gaussian_blur",
    "gaussian_noise",
    "jpeg_compress",
    "add_rain",
    "add_haze",
    "lowlight",
]


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to the 256 levels of an 8-bit image: ``round(clip(x) * 255) / 255``.

    Args:
        x: float tensor of any shape.

    Returns:
        Tensor of the same shape and dtype.

    Raises:
        TypeError: ``x`` is not a float tensor.

    Example:
        >>> quantize_8bit(torch.tensor([0.5, 1.2, -0.1]))
        tensor([0.5020, 1.0000, 0.0000])
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"quantize_8bit expects a float tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def _prepare(images: torch.Tensor) -> torch.Tensor:
    return images.to(compute_dtype(images.dtype))


def _finish(y: torch.Tensor, like: torch.Tensor, quantize: bool) -> torch.Tensor:
    # in place on a result the degradation made (the same values as quantize_8bit, without its three
    # temporary copies of the image); never on the caller's tensor
    if y.data_ptr() == like.data_ptr() or y._base is not None or not y.is_contiguous():
        y = y.clone()
    y.clamp_(0.0, 1.0)
    if quantize:
        y.mul_(255.0).round_().div_(255.0)
    return y.to(like.dtype)


def _col(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)


# --------------------------------------------------------------------------------------------- sr
def imresize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """MATLAB-compatible bicubic resize (``imresize(I, [H W], 'bicubic')``, antialiased when shrinking).

    No clipping or rounding: bicubic overshoot is kept (the caller quantises).

    Args:
        images: ``(B, C, H, W)`` float tensor.
        size: output ``(H', W')``.

    Returns:
        ``(B, C, H', W')`` tensor.

    Example:
        >>> imresize(torch.rand(1, 3, 32, 32), (8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.ndim < 2:
        raise TypeError("imresize expects a float tensor (..., H, W)")
    oh, ow = int(size[0]), int(size[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    h, w = images.shape[-2:]
    x = _prepare(images)
    return imresize_tensor(x, oh, ow, oh / h, ow / w).to(images.dtype)


def _sr_one_scale(x: torch.Tensor, s: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if s == 1:
        return x
    lh, lw = math.ceil(h / s), math.ceil(w / s)
    low = quantize_8bit(imresize_tensor(x, lh, lw, 1.0 / s, 1.0 / s))  # the LR image, stored as 8-bit
    return imresize_tensor(low, h, w, h / lh, w / lw)


def bicubic_sr(images: torch.Tensor, scale: Param, *, quantize: bool = True) -> torch.Tensor:
    """Super-resolution degradation: bicubic down by ``scale``, round to 8 bits, bicubic up to the input size.

    MATLAB ``imresize`` convention (cubic a = -0.5, antialiased downscaling, symmetric borders), the
    convention of SR benchmarks and of the reference's stored test inputs (its *training* data uses
    PyTorch bicubic instead: :func:`bicubic_sr_torch`); matches ``basicsr.utils.matlab_functions.imresize``
    to float rounding. The low-resolution image is ``ceil(H / scale) x ceil(W / scale)``.

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        scale: integer factor(s) in [1, 16], one for the batch or one per image.
        quantize: round the output to 8-bit levels.

    Returns:
        Tensor like ``images``.

    Raises:
        ValueError: ``scale`` out of bounds or larger than H or W.

    Example:
        >>> bicubic_sr(torch.rand(2, 3, 32, 32), 4).shape
        torch.Size([2, 3, 32, 32])
    """
    check_images(images)
    return _sr_impl(images, as_param(scale, "sr", "scale", images.shape[0]), quantize)


def _sr_impl(images: torch.Tensor, sc: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    h, w = images.shape[-2:]
    big = int(sc.max())
    if big > min(h, w):
        raise ValueError(
            f"sr.scale {big} is larger than the image size (H, W) = ({h}, {w}); images must be at least scale "
            f"pixels on each side"
        )
    x = _prepare(images)
    uniq = torch.unique(sc).tolist()
    if len(uniq) == 1:
        y = _sr_one_scale(x, int(uniq[0]))
    else:
        y = torch.empty_like(x)
        for s in uniq:
            sel = (sc == s).nonzero().flatten().to(x.device)
            y[sel] = _sr_one_scale(x[sel], int(s))
    return _finish(y, images, quantize)


# --------------------------------------------------------------------------------------------- blur
def gaussian_blur(images: torch.Tensor, sigma: Param, kernel_size: Param, *, quantize: bool = True) -> torch.Tensor:
    """Blur degradation: correlate with an isotropic, normalised ``kernel_size`` x ``kernel_size`` Gaussian.

    Borders are reflect-101 (OpenCV's default, basicsr's ``filter2D``). Kernels differ per image; the batch
    is filtered at once (separable, grouped convolution).

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        sigma: standard deviation(s) in pixels, in [0.1, 25].
        kernel_size: odd size(s) in [1, 63].
        quantize: round the output to 8-bit levels.

    Returns:
        Tensor like ``images``.

    Example:
        >>> gaussian_blur(torch.rand(2, 3, 32, 32), sigma=[1.0, 2.5], kernel_size=[7, 15]).shape
        torch.Size([2, 3, 32, 32])
    """
    check_images(images)
    b = images.shape[0]
    sg = as_param(sigma, "blur", "sigma", b)
    return _blur_impl(images, sg, as_param(kernel_size, "blur", "kernel_size", b), quantize)


def _blur_impl(images: torch.Tensor, sg: torch.Tensor, ks: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    x = _prepare(images)
    y = separable_filter(x, gaussian_kernels_1d(sg, ks))
    return _finish(y, images, quantize)


# --------------------------------------------------------------------------------------------- noise
def _noise_field(seed: torch.Tensor, shape: tuple[int, int, int], stream: str = "torch",
                 device: torch.device | None = None) -> torch.Tensor:
    """``(B, *shape)`` standard normal float32 field, one per seed (on the CPU for the torch stream, on
    ``device`` for the Philox stream)."""
    if stream == "philox":
        return philox_normal(seed, math.prod(shape), domain=DOMAIN_NOISE, device=device).view(seed.shape[0], *shape)
    out = torch.empty((seed.shape[0], *shape), dtype=torch.float32)
    for i, s in enumerate(seed.tolist()):
        torch.randn(shape, generator=torch.Generator().manual_seed(int(s)), out=out[i])
    return out


def gaussian_noise(images: torch.Tensor, sigma: Param, seed: Param, *, quantize: bool = True,
                   stream: str = "torch") -> torch.Tensor:
    """Noise degradation: add white Gaussian colour noise of std ``sigma / 255``, clip.

    Each image's noise depends only on its seed, not on the batch or the device. With the ``"torch"``
    stream it is drawn (float32, on the CPU) from ``torch.Generator().manual_seed(seed)``:
    ``torch.randn((3, H, W))``; with ``"philox"`` the whole batch's noise is drawn at once on the images'
    device from Philox4x32-10 keyed by each seed (Box-Muller normals, the same on every device).

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        sigma: noise std(s) on the 0-255 scale, in [0, 255].
        seed: integer seed(s) in [0, 2**63 - 1].
        quantize: round the output to 8-bit levels.
        stream: ``"torch"`` or ``"philox"``.

    Returns:
        Tensor like ``images``.

    Example:
        >>> gaussian_noise(torch.full((1, 3, 8, 8), 0.5), sigma=25.0, seed=0).std().item() > 0.05
        True
    """
    check_images(images)
    b = images.shape[0]
    stream = check_stream(stream)
    sg, sd = as_param(sigma, "noise", "sigma", b), as_param(seed, "noise", "seed", b)
    return _noise_impl(images, sg, sd, quantize, stream=stream)


def _noise_impl(images: torch.Tensor, sg: torch.Tensor, sd: torch.Tensor, quantize: bool = True,
                stream: str = "torch") -> torch.Tensor:
    _, c, h, w = images.shape
    x = _prepare(images)
    n = _noise_field(sd, (c, h, w), stream, x.device).to(device=x.device, dtype=x.dtype)
    y = x + n * _col(sg / 255.0, x)
    return _finish(y, images, quantize)


# --------------------------------------------------------------------------------------------- jpeg
def jpeg_compress(images: torch.Tensor, quality: Param, *, quantize: bool = True) -> torch.Tensor:
    """JPEG degradation with a real codec: Pillow's libjpeg, baseline, 4:2:0 chroma subsampling.

    Each image is rounded to 8 bits, encoded at its ``quality`` (IJG quality scaling of the standard
    tables) and decoded on the CPU; the result returns to the images' device. The output is always on
    8-bit levels (``quantize`` is accepted for symmetry).

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        quality: integer quality(ies) in [1, 100].
        quantize: accepted for a uniform signature; JPEG output is 8-bit by nature.

    Returns:
        Tensor like ``images``.

    Example:
        >>> jpeg_compress(torch.rand(1, 3, 16, 16), quality=30).shape
        torch.Size([1, 3, 16, 16])
    """
    check_images(images)
    return _jpeg_impl(images, as_param(quality, "jpeg", "quality", images.shape[0]))


def _jpeg_impl(images: torch.Tensor, quality: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    from PIL import Image

    b = images.shape[0]
    q = quality.tolist()
    u8 = torch.round(images.detach().to("cpu", torch.float32) * 255.0).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.empty_like(u8)
    for i in range(b):
        buf = io.BytesIO()
        Image.fromarray(u8[i]).save(buf, format="JPEG", quality=int(q[i]), subsampling=2)
        buf.seek(0)
        with Image.open(buf) as im:
            out[i] = np.asarray(im.convert("RGB"))
    y = torch.from_numpy(out).permute(0, 3, 1, 2).to(device=images.device, dtype=compute_dtype(images.dtype))
    return (y / 255.0).to(images.dtype)


# --------------------------------------------------------------------------------------------- rain
def add_rain(
    images: torch.Tensor,
    amount: Param,
    length: Param,
    angle: Param,
    width: Param,
    seed: Param,
    *,
    quantize: bool = True,
    stream: str = "torch",
) -> torch.Tensor:
    """Rain degradation: add the reference's synthetic streak layer (0..255, min-max normalised), clip.

    Streak seeds: uniform levels in [0, 256) per pixel, keeping the top ``amount * 0.01``; a small cross
    blur; correlation with a line kernel (the ``length`` diagonal rotated by ``angle - 45`` degrees, scaled
    by ``1 - length/100``, widened by a ``width`` Gaussian); min-max normalisation to 0..255, truncation to
    integers; the same layer is added to the three channels. With the ``"torch"`` stream the seeds come
    from ``torch.Generator().manual_seed(seed)``: ``torch.rand((H, W))`` on the CPU, per image; with
    ``"philox"`` the batch's uniform levels are drawn at once on the images' device from Philox4x32-10
    keyed by each seed (the same on every device), and the streak layer is built there too, in torch
    (with the torch stream it is built on the CPU, with NumPy).

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        amount: integer density in [0, 25600] (preset "in": 50..100).
        length: integer streak-kernel size in [1, 99] (20..40).
        angle: integer degrees in [-180, 180], 0 = vertical (-45..44).
        width: odd Gaussian size in [1, 31] (3..11).
        seed: integer seed(s) in [0, 2**63 - 1].
        quantize: round the output to 8-bit levels.
        stream: ``"torch"`` or ``"philox"``.

    Returns:
        Tensor like ``images``.

    Example:
        >>> add_rain(torch.zeros(1, 3, 64, 64), 80, 30, 10, 5, seed=0).amax().item() == 1.0
        True
    """
    check_images(images)
    b = images.shape[0]
    stream = check_stream(stream)
    return _rain_impl(
        images,
        as_param(amount, "rain", "amount", b),
        as_param(length, "rain", "length", b),
        as_param(angle, "rain", "angle", b),
        as_param(width, "rain", "width", b),
        as_param(seed, "rain", "seed", b),
        quantize,
        stream=stream,
    )


def _rain_impl(
    images: torch.Tensor,
    am: torch.Tensor,
    ln: torch.Tensor,
    an: torch.Tensor,
    wd: torch.Tensor,
    sd: torch.Tensor,
    quantize: bool = True,
    stream: str = "torch",
) -> torch.Tensor:
    _, _, h, w = images.shape
    x = _prepare(images)
    if stream == "philox":  # the Philox seeds and the streak layer, both on the images' device
        layer = rain_layer_torch(sd, am, ln, an, wd, h, w, x.device, x.dtype)
    else:  # the per-image CPU generators and the NumPy layer (every params dict without a stream)
        layer = rain_layer(sd, am, ln, an, wd, h, w, x.device, x.dtype, stream=stream)
    y = (x * 255.0 + layer).clamp(0.0, 255.0) / 255.0
    return _finish(y, images, quantize)


# --------------------------------------------------------------------------------------------- haze
def add_haze(
    images: torch.Tensor,
    depth: DepthLike | None,
    airlight: Param,
    beta: Param,
    *,
    quantize: bool = True,
) -> torch.Tensor:
    """Haze degradation (atmospheric scattering): ``I * t + A * (1 - t)`` with ``t = exp(-beta * depth)``.

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        depth: relative depth, ``(B, 1, H, W)`` or one ``(H, W)`` / ``(1, H, W)`` map for the batch, a numpy
            array, or a path (``.npy``, ``.png``, the reference's ``.mat``; see :func:`load_depth`). ``None``
            uses :func:`estimate_depth`, a heuristic that is NOT the reference's monocular-depth maps.
        airlight: atmospheric light(s) A in [0, 1].
        beta: scattering coefficient(s) in [0, 20].
        quantize: round the output to 8-bit levels.

    Returns:
        Tensor like ``images``.

    Raises:
        ValueError: depth of another size than the images, with NaN/inf or negative values.

    Example:
        >>> add_haze(torch.zeros(1, 3, 8, 8), torch.ones(8, 8), airlight=1.0, beta=1.0)[0, 0, 0, 0].item()
        0.6313725709915161
    """
    check_images(images)
    b = images.shape[0]
    a = as_param(airlight, "haze", "airlight", b)
    return _haze_impl(images, depth, a, as_param(beta, "haze", "beta", b), quantize)


def _haze_impl(
    images: torch.Tensor, depth: DepthLike | None, a: torch.Tensor, bt: torch.Tensor, quantize: bool = True
) -> torch.Tensor:
    x = _prepare(images)
    d = estimate_depth(x) if depth is None else check_depth(depth, x)
    t = torch.exp(-_col(bt, x) * d.to(x.dtype))
    y = x * t + _col(a, x) * (1.0 - t)
    return _finish(y, images, quantize)


# --------------------------------------------------------------------------------------------- lowlight
def lowlight(images: torch.Tensor, gamma: Param, *, quantize: bool = True) -> torch.Tensor:
    """Low-light degradation: the gamma curve ``I ** gamma`` (gamma > 1 darkens).

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        gamma: exponent(s) in [0.05, 20].
        quantize: round the output to 8-bit levels.

    Returns:
        Tensor like ``images``.

    Example:
        >>> lowlight(torch.full((1, 3, 2, 2), 0.5), gamma=2.0)[0, 0, 0, 0].item()
        0.250980406999588
    """
    check_images(images)
    return _lowlight_impl(images, as_param(gamma, "lowlight", "gamma", images.shape[0]), quantize)


def _lowlight_impl(images: torch.Tensor, g: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    x = _prepare(images)
    y = torch.pow(x, _col(g, x))
    return _finish(y, images, quantize)
