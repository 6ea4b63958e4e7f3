"""Image reading and writing: RGB float tensors in [0, 1], atomic PNG writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Union

import numpy as np
import torch

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""The file suffixes read as images when a folder is listed (compared case-insensitively)."""


class ImageReadError(ValueError):
    """An image file that cannot be read (missing, truncated, not an image). The message names it."""


def _pil():
    from PIL import Image

    return Image


def image_size(path: PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only.

    Raises:
        ImageReadError: the file is missing or not a readable image.
    """
    Image = _pil()
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {str(path)!r}: {exc}") from exc
    return h, w


def _to_rgb_array(im) -> np.ndarray:
    """Convert any PIL mode to an (H, W, 3) float32 array in [0, 1] (see ``read_image``)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / scale, 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)
    if mode == "F":
        arr = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode != "RGB":
        # L, LA, P, PA, RGBA, CMYK, YCbCr, 1: alpha is dropped, grey is replicated to three channels
        im = im.convert("RGBA" if mode in ("P", "PA") else im.mode).convert("RGB")
    return np.asarray(im, dtype=np.float32) / 255.0


def read_image(path: PathLike) -> torch.Tensor:
    """Read an image file as a ``(3, H, W)`` float32 tensor in [0, 1].

    Conversions: grayscale is replicated to three channels; alpha (RGBA, LA, palette with
    transparency) is dropped, not composited; 16-bit grayscale PNG is scaled by 1/65535 (its full
    precision kept). 16-bit RGB files are read at the 8-bit precision Pillow decodes them to.

    Raises:
        ImageReadError: the file is missing, truncated or not an image (the message names it).

    Example:
        >>> from mio_strategies.data import embedded_image_paths, read_image
        >>> read_image(embedded_image_paths()[0]).shape
        torch.Size([3, 256, 256])
    """
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.load()
            arr = _to_rgb_array(im)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {str(path)!r}: {exc}") from exc
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A ``(3, H, W)`` tensor in [0, 1] as an ``(H, W, 3)`` uint8 array (rounded)."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(image.shape)}")
    arr = image.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.permute(1, 2, 0).contiguous().numpy()


def write_png(image: torch.Tensor, path: PathLike) -> Path:
    """Write a ``(3, H, W)`` tensor in [0, 1] as an 8-bit RGB PNG, atomically.

    The file is written beside its destination under a temporary name and renamed into place, so
    an interrupted write never leaves a half file.
    """
    Image = _pil()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = to_uint8(image)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(arr, mode="RGB").save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(text: str, path: PathLike) -> Path:
    """Write a text file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def list_images(source: PathLike | Iterable[PathLike]) -> list[Path]:
    """Image files of a folder (sorted, by suffix) or of an explicit list of paths.

    Raises:
        FileNotFoundError: the folder or a listed file does not exist.
        ValueError: the folder holds no image file.
    """
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.exists():
            raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
        if root.is_file():
            return [root]
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in folder {str(root)!r}")
        return files
    files = [Path(p) for p in source]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"image files do not exist: {missing}")
    if not files:
        raise ValueError("empty list of images: give at least one image path")
    return files


_EMBEDDED_DIR = Path(__file__).resolve().parent / "images"


def embedded_image_paths() -> list[Path]:
    """Paths of the photographs shipped with the package (public domain / CC0, see their LICENSE.md).

    Six colour photographs from scikit-image's data, downscaled to a short side of 256 px; used by
    the tests, the examples and the demo so that nothing is downloaded at run time.
    """
    return sorted(_EMBEDDED_DIR.glob("*.png"))


def load_embedded_images() -> dict[str, torch.Tensor]:
    """The embedded photographs as ``{name: (3, H, W) tensor in [0, 1]}``."""
    return {p.stem: read_image(p) for p in embedded_image_paths()}
