"""Image reading and writing: RGB float tensors in [0, 1], atomic PNG writes."""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from mio_strategies.utils.outputs import atomic_file, flag
from mio_strategies.utils.validation import non_negative_int

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""The file suffixes read as images when a folder is listed (compared case-insensitively)."""


class ImageReadError(ValueError):
    """An image file that cannot be read (missing, truncated, not an image). The message names it."""


class ImageTooLargeError(ImageReadError):
    """An image with more pixels than the decoding limit (``max_pixels``), or one Pillow refuses as a
    decompression bomb. Refused from its header, before anything is decoded."""


DEFAULT_MAX_PIXELS = 64 * 2**20
"""The default limit on the pixels of an image the library decodes: 64 megapixels (8192 x 8192; an 8K frame,
7680 x 4320, is 33). Decoded as float32 RGB an image takes 12 bytes per pixel (768 MiB at the limit), and
processing it takes a few such copies. ``max_pixels=None`` or ``0`` lifts it."""


_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("mio_strategies_max_pixels", default=DEFAULT_MAX_PIXELS)


class _Default:
    def __repr__(self) -> str:
        return "the current limit (pixel_limit(), default DEFAULT_MAX_PIXELS)"


CURRENT_LIMIT: Any = _Default()
"""The ``max_pixels`` default of every reader: the limit :func:`pixel_limit` sets, else :data:`DEFAULT_MAX_PIXELS`."""


@contextlib.contextmanager
def pixel_limit(max_pixels: Any) -> Iterator[None]:
    """Within the block, every image the library reads without an explicit ``max_pixels`` (datasets, test
    sets, evaluation) uses this limit (``None`` or ``0``: none). The command line's ``--max-pixels`` sets it.

    Example:
        >>> from mio_strategies.data import embedded_image_paths, read_image
        >>> with pixel_limit(1000):
        ...     read_image(embedded_image_paths()[0])
        Traceback (most recent call last):
        ...
        mio_strategies.data._io.ImageTooLargeError: image ... above the limit of 0.0 megapixels ...
    """
    token = _LIMIT.set(check_max_pixels(max_pixels))
    try:
        yield
    finally:
        _LIMIT.reset(token)


def max_pixels_arg(text: str) -> int:
    """``--max-pixels`` on the command line: a whole number of pixels (``64000000`` or ``64e6``), 0 for none.

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value == int(value) if value == value and value != float("inf") else False):
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels (e.g. 64e6), or 0 for no limit, got {text!r}")
    return int(value)


#: The ``--max-pixels`` help text every command that reads images shows.
MAX_PIXELS_HELP = ("refuse images of more pixels than N, from their header, before decoding them (default "
                   f"{DEFAULT_MAX_PIXELS:,}, 64 megapixels; 0: no limit)")


def resolve_max_pixels(max_pixels: Any) -> int | None:
    """``max_pixels`` validated, :data:`CURRENT_LIMIT` replaced by the limit in force."""
    return _LIMIT.get() if max_pixels is CURRENT_LIMIT else check_max_pixels(max_pixels)


def _pil() -> Any:
    from PIL import Image

    return Image


def check_max_pixels(max_pixels: Any) -> int | None:
    """Validate a ``max_pixels`` argument: a positive integer, or ``None`` / ``0`` (no limit).

    Returns:
        The limit, or None for no limit.

    Raises:
        TypeError / ValueError: naming the bad value.
    """
    if max_pixels is None:
        return None
    limit = non_negative_int(
        "max_pixels", max_pixels, note=" (a whole number of pixels; 0 or None: no limit)", type_error=True, numpy=True
    )
    return limit or None


def _too_large(path: PathLike, w: int, h: int, limit: int) -> ImageTooLargeError:
    gib = w * h * 12 / 2**30
    return ImageTooLargeError(
        f"image {str(path)!r} is {w} x {h} = {w * h / 1e6:.1f} megapixels, above the limit of {limit / 1e6:.1f} "
        f"megapixels on decoded images (decoded as float32 RGB it alone takes {gib:.1f} GiB): if it is meant, "
        f"raise the limit ({flag('max_pixels', w * h)}, or {flag('max_pixels', 0)} for none)"
    )


@contextlib.contextmanager
def _open(path: PathLike, max_pixels: Any) -> Iterator[Any]:
    """``Image.open`` (lazy: only the header is read) with the size checked against ``max_pixels`` and
    Pillow's decompression-bomb check turned into :class:`ImageTooLargeError`."""
    Image = _pil()
    limit = resolve_max_pixels(max_pixels)
    try:
        with warnings.catch_warnings():
            # the library's own limit decides; Pillow's warning (past PIL.Image.MAX_IMAGE_PIXELS) is not raised
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"image {str(path)!r} is refused by Pillow as a possible decompression bomb ({exc}); if it is meant, "
            "raise PIL.Image.MAX_IMAGE_PIXELS as well as the library's limit "
            f"({flag('max_pixels', 0)} lifts the library's)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {str(path)!r}: {exc}") from exc
    with im:
        w, h = im.size
        if limit is not None and w * h > limit:
            raise _too_large(path, w, h, limit)
        yield im


def image_size(path: PathLike, *, max_pixels: Any = CURRENT_LIMIT) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only.

    Raises:
        ImageTooLargeError: more than ``max_pixels`` pixels (see :func:`read_image`).
        ImageReadError: the file is missing or not a readable image.
    """
    with _open(path, max_pixels) as im:
        w, h = im.size
    return h, w


def _png_rgb16(path: PathLike) -> np.ndarray | None:
    """The ``(H, W, 3)`` uint16 pixels of a 16-bit RGB or RGBA PNG (non-interlaced), at full precision;
    None for any other file.

    Pillow decodes such files to 8 bits (dropping the low byte). Here the PNG stream is inflated and its
    filtered bytes split into one 8-bit greyscale PNG per byte position of a pixel: the PNG filters work on
    each byte position as an independent chain (a byte's "left" neighbour is the byte one pixel earlier,
    at the same position), so each of these PNGs, decoded by Pillow, gives exactly that byte of every pixel.
    """
    import struct
    import zlib

    with open(path, "rb") as fh:
        data = fh.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 16 or colour not in (2, 6) or interlace != 0:
        return None
    bpp = 6 if colour == 2 else 8
    idat, pos = [], 8
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + n])
        if kind == b"IEND":
            break
        pos += 12 + n
    del data
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    if raw.size != h * (1 + w * bpp):
        raise ValueError(f"truncated PNG data ({raw.size} bytes, {h * (1 + w * bpp)} expected)")
    raw = raw.reshape(h, 1 + w * bpp)
    filters, body = raw[:, :1], raw[:, 1:].reshape(h, w, bpp)
    Image = _pil()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    out = np.empty((h, w, 3), np.uint16)
    for k in range(6):  # R hi, R lo, G hi, G lo, B hi, B lo (alpha dropped)
        stream = np.concatenate([filters, body[:, :, k]], axis=1).tobytes()
        png = header + chunk(b"IDAT", zlib.compress(stream, 1)) + chunk(b"IEND", b"")
        with Image.open(io.BytesIO(png)) as plane:
            byte = np.asarray(plane, dtype=np.uint16)
        if k % 2 == 0:
            out[:, :, k // 2] = byte << 8
        else:
            out[:, :, k // 2] |= byte
    return out


def _to_rgb_tensor(im: Any, path: PathLike) -> torch.Tensor:
    """Any PIL image as a ``(3, H, W)`` float32 tensor in [0, 1] (see ``read_image``), with at most one
    float copy of the image in memory."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im)
        scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = torch.from_numpy(arr.astype(np.float32)).div_(scale).clamp_(0.0, 1.0)
        return grey.unsqueeze(0).expand(3, -1, -1).contiguous()
    if mode == "F":
        grey = torch.from_numpy(np.array(im, dtype=np.float32)).clamp_(0.0, 1.0)
        return grey.unsqueeze(0).expand(3, -1, -1).contiguous()
    if mode != "RGB":
        # L, LA, P, PA, RGBA, CMYK, YCbCr, 1: alpha is dropped, grey is replicated to three channels
        im = im.convert("RGBA" if mode in ("P", "PA") else im.mode).convert("RGB")
    return _hwc_to_chw_float(np.asarray(im), 255.0)  # uint8 (H, W, 3)


def _hwc_to_chw_float(arr: np.ndarray, scale: float) -> torch.Tensor:
    """An ``(H, W, 3)`` integer array as a ``(3, H, W)`` float32 tensor divided by ``scale``, converted in one
    pass (no float copy in the array's layout)."""
    if arr.dtype == np.uint16:
        arr = arr.astype(np.int32)  # torch has no uint16 arithmetic on every version
    with warnings.catch_warnings():  # a read-only view of Pillow's buffer: only read here
        warnings.simplefilter("ignore", UserWarning)
        src = torch.from_numpy(arr)
    out = torch.empty((3, arr.shape[0], arr.shape[1]), dtype=torch.float32)
    out.copy_(src.permute(2, 0, 1))
    return out.div_(scale)


def _is_png16(im: Any) -> bool:
    """A 16-bit-per-channel PNG (Pillow's raw mode says so)."""
    tile = getattr(im, "tile", None) or []
    modes = [t[-1][0] if isinstance(t[-1], tuple) else t[-1] for t in tile]
    return any(str(m).startswith(("RGB;16", "RGBA;16")) for m in modes)


def read_image(path: PathLike, *, max_pixels: Any = CURRENT_LIMIT) -> torch.Tensor:
    """Read an image file as a ``(3, H, W)`` float32 tensor in [0, 1].

    Conversions: grayscale is replicated to three channels; alpha (RGBA, LA, palette with
    transparency) is dropped, not composited; 16-bit PNGs (grayscale, RGB and RGBA) are scaled by
    1/65535 with their full precision kept (other 16-bit RGB formats, such as TIFF, are read at the 8 bits
    Pillow decodes them to).

    The image's size is read from its header first: an image of more than ``max_pixels`` pixels is refused
    before it is decoded (decompression bombs, and images that would exhaust the memory).

    Args:
        path: the image file.
        max_pixels: the largest image decoded (default: the limit :func:`pixel_limit` sets, else
            :data:`DEFAULT_MAX_PIXELS`, 64 megapixels); ``None`` or ``0``: no limit of the library's (Pillow's own
            ``PIL.Image.MAX_IMAGE_PIXELS`` still
            applies).

    Raises:
        ImageTooLargeError: more pixels than ``max_pixels``, or a file Pillow refuses as a bomb (the message
            names the image, its size and how to raise the limit).
        ImageReadError: the file is missing, truncated or not an image (the message names it).

    Example:
        >>> from mio_strategies.data import embedded_image_paths, read_image
        >>> read_image(embedded_image_paths()[0]).shape
        torch.Size([3, 256, 256])
    """
    with _open(path, max_pixels) as im:
        try:
            if im.format == "PNG" and _is_png16(im):  # checked before loading (which clears the tile list)
                deep = _png_rgb16(path)
                if deep is not None:  # full precision (Pillow would keep only the high byte)
                    return _hwc_to_chw_float(deep, 65535.0)
            im.load()
            return _to_rgb_tensor(im, path)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageReadError(f"cannot read image {str(path)!r}: {exc}") from exc


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
    with atomic_file(path, "wb") as f:
        Image.fromarray(arr, mode="RGB").save(f, format="PNG")
    return path


def write_text_atomic(text: str, path: PathLike) -> Path:
    """Write a text file atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_file(path, "w") as f:
        f.write(text)
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
