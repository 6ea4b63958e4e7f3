"""Depth maps for haze: loading the reference's files, a default heuristic estimate, validation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F

DepthLike = Union[torch.Tensor, np.ndarray, str, os.PathLike]

__all__ = ["load_depth", "estimate_depth"]


def _read_mat(path: Path) -> np.ndarray:
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover - scipy ships with the test extra
        raise ImportError(f"reading {path} needs scipy: `pip install scipy`") from exc
    try:
        data = loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise ValueError(f"cannot read depth map {path}: {exc}") from exc
    arrays = {k: v for k, v in data.items() if not k.startswith("__") and isinstance(v, np.ndarray) and v.ndim == 2}
    if "depth" in arrays:
        return arrays["depth"]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise ValueError(
        f"depth map {path} holds {sorted(arrays) or 'no'} 2-D arrays; expected exactly one (or one named 'depth')"
    )


def load_depth(path: str | os.PathLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Load a depth map as a float32 ``(1, 1, H, W)`` tensor.

    * ``.mat`` (the reference's files): the single 2-D array (or the one named ``depth``), stored at 1/4
      resolution, is upsampled x4 (bilinear) and divided by its maximum -- the reference's convention.
    * ``.npy``: the array as stored (2-D, or ``(1, H, W)``), no rescaling.
    * ``.png`` / other images: 8-bit values divided by 255, 16-bit values by 65535 (first channel if RGB).

    Args:
        path: file to read.
        size: optional ``(H, W)``; the map is then resized bilinearly to it (after the x4 of ``.mat``).

    Returns:
        ``(1, 1, H, W)`` float32 tensor.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, wrong dimensionality, NaN/inf values, or a bad ``size``.

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "d.npy"); np.save(p, np.ones((8, 8)))
        >>> load_depth(p, size=(16, 16)).shape
        torch.Size([1, 1, 16, 16])
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"depth map {p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".mat":
        arr = np.asarray(_read_mat(p), dtype=np.float64)
    elif suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise ValueError(f"cannot read depth map {p}: {exc}") from exc
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
    else:
        from PIL import Image

        try:
            with Image.open(p) as im:
                im.load()
                raw = np.asarray(im)
        except Exception as exc:
            raise ValueError(f"cannot read depth map {p}: {exc}") from exc
        if raw.ndim == 3:
            raw = raw[..., 0]
        if raw.dtype == np.uint8:
            arr = raw.astype(np.float64) / 255.0
        elif raw.dtype in (np.uint16, np.int32) or raw.dtype == np.dtype(">u2"):
            arr = raw.astype(np.float64) / 65535.0
        else:
            arr = raw.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"depth map {p} must be 2-D (H, W), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"depth map {p} contains NaN or inf values; fill or clip them first")
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)[None, None]
    if suffix == ".mat":
        t = F.interpolate(t, scale_factor=4, mode="bilinear", align_corners=False)
        m = float(t.max())
        if m > 0:
            t = t / m
    if size is not None:
        try:
            h, w = (int(size[0]), int(size[1]))
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"size must be (H, W), got {size!r}") from None
        if h <= 0 or w <= 0:
            raise ValueError(f"size must be positive (H, W), got {size!r}")
        if (h, w) != tuple(t.shape[-2:]):
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
    return t


def estimate_depth(images: torch.Tensor) -> torch.Tensor:
    """Default relative depth for haze when none is given: a cheap, deterministic heuristic in (0, 1].

    NOT the reference's maps (those come from a monocular depth network, Liu et al. 2015, and were never
    published with the code). The heuristic encodes two outdoor-scene priors: farther towards the top of
    the frame, and farther where the image is bright (sky, distant haze), taken from an 8x8 block-mean
    luminance upsampled bilinearly::

        d = 0.1 + 0.9 * (0.6 * (1 - row / (H - 1)) + 0.4 * smooth_luminance),   then d / max(d)

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].

    Returns:
        ``(B, 1, H, W)`` tensor of the images' dtype and device, each map's maximum equal to 1.

    Example:
        >>> d = estimate_depth(torch.full((2, 3, 16, 16), 0.5))
        >>> d.shape, bool(d[0, 0, 0, 0] > d[0, 0, -1, 0])
        (torch.Size([2, 1, 16, 16]), True)
    """
    _, _, h, w = images.shape
    x = images if images.dtype in (torch.float32, torch.float64) else images.float()
    lum = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).clamp(0, 1)
    coarse = F.adaptive_avg_pool2d(lum, (min(h, 8), min(w, 8)))
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    rows = torch.linspace(1.0, 0.0, h, device=x.device, dtype=x.dtype)
    if h == 1:
        rows = torch.ones(1, device=x.device, dtype=x.dtype)
    d = 0.1 + 0.9 * (0.6 * rows.reshape(1, 1, h, 1) + 0.4 * smooth)
    d = d / d.amax(dim=(2, 3), keepdim=True)
    return d.to(images.dtype)


def check_depth(depth: Any, images: torch.Tensor) -> torch.Tensor:
    """Depth as a ``(B, 1, H, W)`` tensor on the images' device; validate its size and values."""
    b, _, h, w = images.shape
    if isinstance(depth, (str, os.PathLike)):
        depth = load_depth(depth)
    if isinstance(depth, np.ndarray):
        depth = torch.from_numpy(np.ascontiguousarray(depth))
    if not isinstance(depth, torch.Tensor):
        raise TypeError(
            f"depth must be a tensor, a numpy array or a path (.npy, .png, .mat), got {type(depth).__name__}"
        )
    if depth.dtype == torch.bool or depth.is_complex():
        raise TypeError(f"depth must hold real numbers, got dtype {depth.dtype}")
    shape = tuple(depth.shape)
    if depth.ndim == 2:
        d = depth[None, None]
    elif depth.ndim == 3 and shape[0] == 1:
        d = depth[None]
    elif depth.ndim == 4 and shape[1] == 1 and shape[0] in (1, b):
        d = depth
    else:
        raise ValueError(
            f"depth must have shape (H, W), (1, H, W), (1, 1, H, W) or (B, 1, H, W) = ({b}, 1, {h}, {w}), got {shape}"
        )
    if tuple(d.shape[-2:]) != (h, w):
        raise ValueError(
            f"depth map of shape {shape} does not match the images' size (H, W) = ({h}, {w}) (images shape "
            f"{tuple(images.shape)}); resize it, e.g. load_depth(path, size=({h}, {w}))"
        )
    d = d.to(device=images.device, dtype=torch.float64 if images.dtype == torch.float64 else torch.float32)
    if not bool(torch.isfinite(d).all()):
        raise ValueError("depth map contains NaN or inf values; fill or clip them first")
    if bool((d < 0).any()):
        raise ValueError(f"depth map has negative values (min {float(d.min()):.4g}); depth must be >= 0")
    return d.expand(b, 1, h, w)
