"""``mio-strategies restore``: restore one's own images with a trained checkpoint.

Inputs are image files or folders of them; each is restored (tiled, for any size) and written as a PNG
of the input's size and bit depth into the output folder, under the input's stem.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mio_strategies.data import ImageReadError, image_size, list_images, read_image
from mio_strategies.harness._loop import resolve_device
from mio_strategies.harness._shipped_classifier import resolve_classifier
from mio_strategies.harness._train import load_restorer
from mio_strategies.tasks import TASKS, get_task
from mio_strategies.utils.outputs import atomic_file, check_output_dir, flag, output_lock, prepare_output_dir
from mio_strategies.utils.validation import positive_int

__all__ = ["RestoreReport", "add_parser", "read_image_depth", "restore_images", "write_image_depth"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- image files with their bit depth ----------------------------------------------------------------
def _png_header(path: Path) -> tuple[int, int] | None:
    """``(bit_depth, colour_type)`` from a PNG's IHDR chunk, or None for a file that is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 comes with the [opencv] (and [basicsr]) extra
        raise ImportError("16-bit colour PNG files need OpenCV: pip install 'mio-strategies[opencv]'") from exc
    return cv2


def read_image_depth(path: str | os.PathLike[str]) -> tuple[torch.Tensor, int, bool]:
    """Read an image as ``(image, bits, grey)``: a ``(3, H, W)`` float32 tensor in [0, 1], its bit depth
    (8 or 16) and whether it is greyscale.

    16-bit PNG files keep their full precision (greyscale through Pillow, colour through OpenCV); every
    other file is read as :func:`~mio_strategies.data.read_image` reads it (8 bits, alpha dropped).

    Raises:
        ImageReadError: the file is missing, truncated or not an image (the message names it).

    Example:
        >>> from mio_strategies.data import embedded_image_paths
        >>> img, bits, grey = read_image_depth(embedded_image_paths()[0])
        >>> img.shape, bits, grey
        (torch.Size([3, 256, 256]), 8, False)
    """
    path = Path(path)
    try:
        png = _png_header(path)
    except OSError as exc:
        raise ImageReadError(f"cannot read image {str(path)!r}: {exc}") from exc
    if png is not None and png[0] == 16 and png[1] != 0:  # 16-bit colour (or grey + alpha): Pillow would drop bits
        image_size(path)  # the pixel cap, from the header, before OpenCV decodes anything
        cv2 = _cv2()
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None or arr.dtype != np.uint16:
            raise ImageReadError(f"cannot read image {str(path)!r}: OpenCV could not decode it as a 16-bit PNG")
        if arr.ndim == 3 and arr.shape[2] >= 3:
            rgb = cv2.cvtColor(arr[..., :3], cv2.COLOR_BGR2RGB)
            grey = False
        else:
            plane = arr if arr.ndim == 2 else arr[..., 0]
            rgb = np.repeat(plane[..., None], 3, axis=2)
            grey = True
        img = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(np.float32) / 65535.0)
        return img, 16, grey
    img = read_image(path)
    from PIL import Image

    with Image.open(path) as im:
        mode = im.mode
    bits = 16 if mode.startswith("I;16") or (png is not None and png[0] == 16) else 8
    return img, bits, mode in ("1", "L", "LA", "I", "F") or mode.startswith("I;16")


def write_image_depth(image: torch.Tensor, path: str | os.PathLike[str], *, bits: int = 8, grey: bool = False) -> Path:
    """Write a ``(3, H, W)`` tensor in [0, 1] as a PNG of ``bits`` (8 or 16) per channel, atomically.

    ``grey`` writes one channel, the mean of the three. The file is written under a temporary name beside
    ``path`` and renamed into place, so an interrupted write leaves no half file.

    Raises:
        ValueError: ``bits`` other than 8 or 16, or an image not shaped ``(3, H, W)``.

    Example:
        >>> write_image_depth(torch.rand(3, 8, 8), "out.png", bits=16)  # doctest: +SKIP
    """
    from PIL import Image

    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(image.shape)}")
    path = Path(path)
    x = image.detach().to("cpu", torch.float64).clamp(0, 1)
    if grey:
        x = x.mean(0, keepdim=True)
    top = 255 if bits == 8 else 65535
    arr = x.mul(top).round().to(torch.int64).numpy().transpose(1, 2, 0).astype(np.uint8 if bits == 8 else np.uint16)
    if grey:
        arr = arr[..., 0]
    if bits == 16 and not grey:
        cv2 = _cv2()
        ok, buf = cv2.imencode(".png", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
        if not ok:  # pragma: no cover - OpenCV encodes any uint16 array
            raise OSError(f"OpenCV could not encode {str(path)!r}")
        data = buf.tobytes()
    else:
        import io

        bio = io.BytesIO()
        Image.fromarray(arr).save(bio, format="PNG")
        data = bio.getvalue()
    with atomic_file(path, "wb") as f:
        f.write(data)
    return path


# -- the job ---------------------------------------------------------------------------------------------
@dataclass
class RestoreReport:
    """What :func:`restore_images` did.

    Attributes:
        written: ``{input: output}`` of every image restored.
        failed: ``{input: error message}`` of every image skipped (``on_error="skip"``).
        tasks: ``{input: task name}`` the prompt used for each image (explicit-prompt models only).
    """

    written: dict[Path, Path] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)
    tasks: dict[Path, str] = field(default_factory=dict)


def _collect(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += list_images(p)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"input {str(p)!r} does not exist (pass image files or folders of them)")
    if not files:
        raise ValueError("no input images: pass image files or folders of them")
    unique = list(dict.fromkeys(files))
    by_name: dict[str, Path] = {}
    for f in unique:
        name = f.stem + ".png"
        if name in by_name:
            raise ValueError(
                f"{str(by_name[name])!r} and {str(f)!r} would both be written as {name!r}: restore them "
                "into different output folders"
            )
        by_name[name] = f
    return unique


def _check_header(path: Path) -> None:
    """Raise :class:`~mio_strategies.data.ImageReadError` for a file whose header Pillow cannot read."""
    from PIL import Image

    try:
        with Image.open(path):
            pass
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {str(path)!r}: {exc}") from exc


def _classify(classifier: torch.nn.Module, x: torch.Tensor, side: int, device: torch.device) -> int:
    """The task the classifier gives ``x`` (1, 3, H, W): its mean probability over non-overlapping crops of
    ``side`` (the whole image when it is smaller), so that memory stays bounded for large images."""
    h, w = x.shape[-2:]
    probs = []
    for y0 in range(0, max(h - side, 0) + 1, side):
        for x0 in range(0, max(w - side, 0) + 1, side):
            crop = x[..., y0 : y0 + side, x0 : x0 + side].to(device)
            probs.append(classifier(crop).softmax(-1)[0].cpu())
    return int(torch.stack(probs).mean(0).argmax())


def restore_images(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    task: str | None = None,
    classifier: str | os.PathLike[str] | torch.nn.Module | None = None,
    tile: int | None = 512,
    overlap: int = 32,
    device: str = "auto",
    ema: bool = True,
    overwrite: bool = False,
    on_error: str = "stop",
    progress: bool = False,
) -> RestoreReport:
    """Restore image files with a trained checkpoint and write them as PNG files into ``output``.

    Each output is ``output/<input stem>.png`` with the input's height, width and bit depth (8, or 16 for a
    16-bit PNG) and its greyscale-ness. Everything that can be checked is checked before anything is written:
    the checkpoint, the task or classifier, the tile, the output folder, unique output names and (with
    ``on_error="stop"``) every input's header.

    Args:
        inputs: image files and/or folders of them (not recursive).
        checkpoint: a harness checkpoint or exported weights (``mio-strategies train``, ``export_weights``).
        output: the folder written into (created; an existing non-empty one needs ``overwrite``).
        task: explicit-prompt models only, and required for them: a task name or letter (``"noise"``, ``"N"``)
            for every image, or ``"auto"`` to let a task classifier pick each image's task.
        classifier: the task classifier for ``task="auto"``: a file (``mio-strategies train-classifier``) or a
            module; default: the one shipped with the package (:func:`~mio_strategies.harness.shipped_classifier`).
        tile: tile side for tiled inference (rounded up to the network's size multiple); None: whole images.
        overlap: the least overlap of neighbouring tiles, in pixels.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. Images stay on the
            CPU; tiles go to the device.
        ema: use the EMA weights when the checkpoint has them.
        overwrite: replace an existing non-empty folder that mio-strategies wrote (its contents are removed
            first); a folder it did not write, a file or a link is always refused.
        on_error: ``"stop"`` raises at the first image that cannot be read or restored; ``"skip"`` records it in
            :attr:`RestoreReport.failed` and goes on with the rest.
        progress: show a progress bar.

    Returns:
        A :class:`RestoreReport`.

    Raises:
        FileNotFoundError: an input or the checkpoint does not exist.
        FileExistsError: ``output`` is not empty and ``overwrite`` is false.
        ValueError: a bad ``task`` (missing for explicit prompts, given for other models, unknown), a
            ``classifier`` file that is not a task classifier, a bad tile/overlap/``on_error``, two inputs with
            the same stem, or (with ``on_error="stop"``) an unreadable image
            (:class:`~mio_strategies.data.ImageReadError`).

    Example:
        >>> restore_images(["photo.png", "scans/"], "runs/demo/checkpoint.pt", "restored",
        ...                task="noise", tile=256)  # doctest: +SKIP
    """
    if on_error not in ("stop", "skip"):
        raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    if tile is not None:
        positive_int("tile", tile, note=" (or None for whole images)")
    files = _collect([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
    out_dir = check_output_dir(output, overwrite=overwrite, what="output folder")
    dev = resolve_device(device, 0, fix="device='cpu' (--device cpu)")
    restorer, cfg, _ = load_restorer(Path(checkpoint), ema=ema, device=dev)
    m = restorer.size_multiple
    if tile is not None:
        tile = -(-tile // m) * m
        if 2 * overlap >= tile or overlap < 0 or tile - overlap < m:
            raise ValueError(
                f"overlap {overlap} does not fit tile {tile} (rounded up to the network's size multiple "
                f"{m}): use 0 <= overlap < tile / 2, e.g. --tile-overlap {tile // 8}"
            )
    explicit = restorer.prompt == "explicit"
    fixed_task: int | None = None
    clf = None
    if explicit:
        if task is None:
            raise ValueError(
                f"{str(checkpoint)!r} is a {cfg.strategy} model (explicit prompts): pass task=NAME "
                "(--task NAME: one of " + ", ".join(t.name for t in TASKS) + ") or task='auto' (--task auto: "
                "the shipped task classifier, or --classifier FILE, picks each image's task)"
            )
        if task == "auto":
            clf = resolve_classifier(classifier).to(dev).eval()  # None: the classifier shipped with the package
        else:
            if classifier is not None:
                raise ValueError(
                    f"a classifier was given with task={task!r}: it is used only with task='auto' "
                    "(--task auto); drop one of them"
                )
            fixed_task = get_task(task).id
    elif task is not None or classifier is not None:
        kind = "adaptive prompts, read from the image itself" if restorer.prompt == "adaptive" else "no prompts"
        raise ValueError(
            f"{str(checkpoint)!r} is a {cfg.strategy} model ({kind}): it takes no task; drop --task and --classifier"
        )
    report = RestoreReport()
    if on_error == "stop":
        for f in files:  # headers first, so that an unreadable file stops the job before anything is written
            try:
                _check_header(f)
            except ImageReadError as exc:
                raise ImageReadError(f"{exc} ({flag('on_error')} restores the other images)") from exc
    with output_lock(out_dir, activity="restored into", alternative="restore into another folder"):
        prepare_output_dir(out_dir, overwrite=overwrite, command="restore")
        _restore_all(files, out_dir, restorer, clf, fixed_task, tile, overlap, dev, on_error, progress, report)
    return report


def _restore_all(
    files: list[Path],
    out_dir: Path,
    restorer: Any,
    clf: Any,
    fixed_task: int | None,
    tile: int | None,
    overlap: int,
    dev: torch.device,
    on_error: str,
    progress: bool,
    report: RestoreReport,
) -> None:
    """Restore each file into ``out_dir`` (see :func:`restore_images`), recording what happened in ``report``."""
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(files), desc="restore", unit="img", dynamic_ncols=True)
    on_tile: Callable[[int, int], None] | None = None
    if bar is not None:

        def on_tile(done: int, total: int) -> None:
            if total > 1:
                bar.set_postfix_str(f"tile {done}/{total}")

    try:
        for f in files:
            dest = out_dir / (f.stem + ".png")
            try:
                img, bits, grey = read_image_depth(f)
                x = img[None]
                with torch.no_grad():
                    if clf is not None:
                        ids = torch.tensor([_classify(clf, x, tile or max(x.shape[-2:]), dev)])
                    elif fixed_task is not None:
                        ids = torch.tensor([fixed_task])
                    else:
                        ids = None
                    y = (
                        restorer.restore(x, ids, tile=tile, overlap=overlap)
                        if tile is not None
                        else restorer.restore(x, ids)
                    )
                write_image_depth(y[0].cpu(), dest, bits=bits, grey=grey)
            except (ImageReadError, OSError, RuntimeError, ValueError) as exc:
                msg = str(exc)
                if isinstance(exc, RuntimeError) and "out of memory" in msg:
                    msg += " (pass a smaller --tile)"
                if on_error == "stop":
                    raise ValueError(f"{str(f)!r}: {msg} ({flag('on_error')} restores the other images)") from exc
                report.failed[f] = msg
            else:
                report.written[f] = dest
                if ids is not None:
                    report.tasks[f] = TASKS[int(ids[0])].name
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


# -- the command --------------------------------------------------------------------------------------------
def add_parser(subparsers: Any) -> None:
    """Register the ``restore`` sub-command."""
    r = subparsers.add_parser(
        "restore",
        help="restore image files or folders with a trained checkpoint (tiled, any size)",
        description="Restore images with a trained checkpoint; each is written to DIR as <stem>.png with the "
        "input's size and bit depth (8- or 16-bit PNG). Large images are restored tile by tile.",
    )
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    r.add_argument("--checkpoint", required=True, help="a run's checkpoint.pt or exported weights (e.g. S_EP.pt)")
    r.add_argument("--output", required=True, metavar="DIR", help="folder the restored images are written into")
    r.add_argument(
        "--task",
        default=None,
        help="explicit-prompt models (M+EP, S+EP): the task of every input (a name or letter: sr, blur, "
        "noise, jpeg, rain, haze, lowlight), or 'auto' to let a task classifier pick it per image "
        "(--classifier, else the one shipped with the package); models without explicit prompts take none "
        "(default: none)",
    )
    r.add_argument(
        "--classifier",
        default=None,
        metavar="FILE",
        help="a task-classifier file for --task auto (from `mio-strategies train-classifier`; default: the "
        "classifier shipped with the package, trained on the embedded photos)",
    )
    r.add_argument(
        "--tile",
        type=int,
        default=512,
        help="tile side in pixels, rounded up to the network's size multiple; 0 restores whole images at "
        "once (default: 512)",
    )
    r.add_argument(
        "--tile-overlap",
        type=int,
        default=32,
        help="least overlap of neighbouring tiles in pixels, blended (default: 32)",
    )
    r.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)")
    r.add_argument("--no-ema", action="store_true", help="use the live weights, not the EMA")
    r.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help="an image that cannot be read or restored: stop (before writing anything when its header "
        "is unreadable) or skip it and restore the rest, exit status 1 (default: stop)",
    )
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output folder that mio-strategies wrote (never a file, a link or another folder)",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_restore)


def _restore(args: argparse.Namespace) -> int:
    if args.tile < 0:
        print(f"error: --tile must be 0 (whole images) or a positive tile side, got {args.tile}", file=sys.stderr)
        return 2
    try:
        report = restore_images(
            args.inputs,
            args.checkpoint,
            args.output,
            task=args.task,
            classifier=args.classifier,
            tile=args.tile or None,
            overlap=args.tile_overlap,
            device=args.device,
            ema=not args.no_ema,
            overwrite=args.overwrite,
            on_error=args.on_error,
            progress=not args.no_progress,
        )
    except (OSError, KeyError, ValueError, ImportError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2
    for f, msg in report.failed.items():
        print(f"skipped {f}: {msg}", file=sys.stderr)
    tasks = sorted(set(report.tasks.values()))
    print(
        f"restored {len(report.written)} of {len(report.written) + len(report.failed)} images into {args.output}"
        + (f" (tasks: {', '.join(tasks)})" if tasks else "")
    )
    return 1 if report.failed else 0
