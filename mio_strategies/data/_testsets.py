"""Deterministic builder of MiO test sets: PNG folders per task and a JSON manifest of every parameter."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mio_strategies.data._io import (
    CURRENT_LIMIT,
    ImageReadError,
    PathLike,
    list_images,
    pixel_limit,
    read_image,
    resolve_max_pixels,
    write_png,
    write_text_atomic,
)
from mio_strategies.data._paired import MANIFEST_NAME
from mio_strategies.degradations import (
    IMPLEMENTATIONS,
    PRESETS,
    bicubic_sr_stored_lr,
    degrade,
    degrade_sequence,
    sample_params,
)
from mio_strategies.tasks import Task, TaskLike, parse_tasks
from mio_strategies.utils.outputs import check_output_dir, output_lock, remove_stale_staging, staging_dir
from mio_strategies.utils.rng import generator_from
from mio_strategies.utils.validation import choice, non_negative_int

MANIFEST_VERSION = 1
ON_ERROR = ("raise", "skip")


def _stable_key(name: str) -> int:
    """A non-negative integer derived from an image name, independent of list order and process."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:7], "big")


def _jsonable(params: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Per-sample params of a batch of one as plain JSON values."""
    return {k: v[0].tolist() if isinstance(v, torch.Tensor) else v for k, v in params.items()}


def _parse_composites(composites: Iterable[str | Sequence[TaskLike]]) -> list[tuple[Task, ...]]:
    out = []
    for comp in composites:
        parts: list[TaskLike]
        if isinstance(comp, str):
            parts = [p for p in comp.replace(",", "+").split("+") if p.strip()]
        else:
            parts = list(comp)
        tasks = parse_tasks(parts)
        if len(tasks) < 2:
            raise ValueError(f"a composite needs two or more tasks, got {comp!r} (write e.g. 'blur+noise')")
        out.append(tasks)
    return out


@dataclass
class TestSetReport:
    """What :func:`build_testset` wrote."""

    root: Path
    images: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    num_pairs: int = 0

    __test__ = False  # not a pytest test class


def build_testset(
    images: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    tasks: str | Iterable[TaskLike] = "SBNJRHL",
    preset: str = "in",
    seed: int = 0,
    composites: Iterable[str | Sequence[TaskLike]] = (),
    overwrite: bool = False,
    on_error: str = "raise",
    progress: bool = False,
    implementation: str = "library",
    max_pixels: Any = CURRENT_LIMIT,
) -> TestSetReport:
    """Degrade every GT image by every task (and composite) and write a test set to ``output``.

    Layout (read back by :class:`PairedFolderDataset`): ``GT/<name>.png``, ``<task>/<name>.png``
    (``<a>+<b>/<name>.png`` for composites) and ``manifest.json`` listing every pair with its sampled
    parameters. The parameters of (image, task) come from a generator seeded with ``seed``, the
    image's name and the task id, so a set is reproducible and adding images or tasks does not change
    the others. GT images are stored at 8-bit precision and degraded from that.

    Args:
        images: folder or list of GT image files.
        output: destination folder; refused if it exists and is not empty, unless ``overwrite``, and
            always refused if it is (or contains) an input image's folder. The set is built in a
            temporary sibling folder (``.<name>.tmp-*``) and moved into place only when complete, so a
            failed run leaves an existing set untouched and no partial folder.
        tasks: single-degradation tasks to write.
        preset: ``"in"`` (In-Dis) or ``"out"`` (Out-Dis) ranges.
        seed: base seed.
        composites: sequences of two or more tasks applied in order (``"blur+noise"``).
        overwrite: replace an existing output folder (deleted only after the new set is complete).
        on_error: ``"raise"`` stops at the first unreadable image or image a degradation refuses (e.g.
            smaller than the SR scale); ``"skip"`` records it in the manifest's ``skipped`` (no file of
            it is written) and goes on.
        progress: show a progress bar.
        implementation: ``"library"`` (default) or ``"reference"``: the official code's test inputs. Then
            every GT is first cropped (top-left) to a multiple of 4 and of every SR scale of the preset (the
            reference's crop; its stored SR inputs are x4 files), SR inputs are MATLAB-style 8-bit
            low-resolution images upsampled by PyTorch bicubic (:func:`~mio_strategies.degradations.bicubic_sr_stored_lr`),
            and the other tasks use ``degrade(..., implementation="reference")``. Composites are refused
            (the reference has none). The manifest records the implementation.
        max_pixels: an image of more pixels is refused from its header, before it is decoded (an
            :class:`ImageTooLargeError`, skipped with ``on_error="skip"``); default: the limit in force
            (:func:`pixel_limit`, else 64 megapixels); ``None`` or ``0``: none.

    Returns:
        A :class:`TestSetReport`.

    Raises:
        FileExistsError: ``output`` exists and is not empty (pass ``overwrite=True``).
        ImageReadError: an unreadable image with ``on_error="raise"``.
        ValueError: bad preset, composite or ``on_error``; output folder holding the input images; an
            image a degradation refuses (named in the message) with ``on_error="raise"``.

    Example:
        >>> from mio_strategies.data import build_testset, embedded_image_paths
        >>> report = build_testset(embedded_image_paths()[:1], "/tmp/mio-doc-set", tasks="SN", overwrite=True)
        >>> report.num_pairs
        2
    """
    task_list = parse_tasks(tasks)
    comp_list = _parse_composites(composites)
    choice("preset", preset, sorted(PRESETS))
    choice("implementation", implementation, IMPLEMENTATIONS)
    if implementation == "reference" and comp_list:
        raise ValueError(
            "composites are not part of the reference's test sets: build them with implementation='library' "
            "(without --implementation reference)"
        )
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    non_negative_int("seed", seed)
    limit = resolve_max_pixels(max_pixels)
    paths = list_images(images)
    stems = [p.stem for p in paths]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"image names must be unique (they name the output files), duplicated: {dup}")

    root = Path(output)
    _refuse_output_holding_inputs(root, paths)
    check_output_dir(root, overwrite=overwrite)  # a link, a file, a foreign folder: refused, untouched

    # Build the whole set in a temporary sibling folder and swap it in only once it is complete: a
    # failure (or an interrupt) leaves the old output untouched and no partial folder behind. One run at a
    # time per output folder; the staging folders a killed earlier run left are removed first.
    with output_lock(root, activity="written", alternative="write the test set to another folder"):
        check_output_dir(root, overwrite=overwrite)
        remove_stale_staging(root)
        with staging_dir(root, command="degrade") as tmp:
            with pixel_limit(limit):
                report = _write_testset(paths, tmp, task_list, comp_list, preset, seed, on_error, progress,
                                        implementation)
            _replace(tmp, root)
    report.root = root
    return report


def _refuse_output_holding_inputs(root: Path, paths: Sequence[Path]) -> None:
    """Refuse an output folder that is, or contains, one of the input images (it would be replaced)."""
    out = root.resolve()
    for p in paths:
        src = p.resolve()
        if out == src or out in src.parents:
            raise ValueError(
                f"output {str(root)!r} is or contains the input image {str(p)!r}; building the test set "
                "there would replace (delete) the input images: choose another output folder (--output)"
            )


def _replace(new: Path, final: Path) -> None:
    """Move the complete folder ``new`` to ``final``; an old ``final`` is deleted only once ``new`` is in place."""
    if not final.exists() and not final.is_symlink():
        new.rename(final)
        return
    # ``final`` is a folder the library wrote (checked by check_output_dir): never a link, a file or a
    # foreign folder. It keeps its permissions: the new folder takes them.
    os.chmod(new, stat.S_IMODE(final.stat().st_mode))
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    old.rmdir()
    final.rename(old)
    try:
        new.rename(final)
    except BaseException:
        old.rename(final)  # put the old set back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _reference_gt_crop(gt: torch.Tensor, preset: str, path: Path) -> torch.Tensor:
    """The GT cropped (top-left) to a multiple of 4 and of every SR scale of ``preset``."""
    lo, hi = PRESETS[preset]["sr"]["scale"]
    multiple = math.lcm(4, *range(int(lo), int(hi) + 1))  # 4: the reference's crop of rain and haze
    h, w = gt.shape[-2:]
    if h < multiple or w < multiple:
        raise _ImageError(f"image {str(path)!r} ({h}x{w}) is smaller than the reference crop multiple {multiple}")
    return gt[..., : h - h % multiple, : w - w % multiple].contiguous()


def _degrade_one(
    gt: torch.Tensor, task: Task, preset: str, g: torch.Generator, implementation: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if implementation == "reference" and task.name == "sr":
        # the reference's SR test input: a stored (MATLAB-made, 8-bit) low-resolution file, PyTorch bicubic up
        params = sample_params(task, 1, preset=preset, generator=g)
        return bicubic_sr_stored_lr(gt, params["scale"]), params
    return degrade(gt, task, preset=preset, generator=g, implementation=implementation)


class _ImageError(Exception):
    """A degradation refused one image (e.g. an image smaller than the SR scale)."""


def _write_testset(
    paths: Sequence[Path],
    root: Path,
    task_list: Sequence[Task],
    comp_list: Sequence[tuple[Task, ...]],
    preset: str,
    seed: int,
    on_error: str,
    progress: bool,
    implementation: str = "library",
) -> TestSetReport:
    report = TestSetReport(root=root)
    entries: list[dict[str, Any]] = []
    iterator: Iterable[Path] = paths
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(paths, desc="degrade", unit="img")
    for path in iterator:
        # each output is written as soon as it is computed (one degraded copy in memory at a time); the
        # files of an image that is then skipped are removed again, so it leaves none behind
        written: list[Path] = []

        def emit(rel: str, img: torch.Tensor) -> None:
            written.append(  # noqa: B023 - called within this iteration
                write_png(img, root / rel))

        try:
            gt = read_image(path).mul_(255).round_().div_(255).unsqueeze(0)
            if implementation == "reference":
                gt = _reference_gt_crop(gt, preset, path)
            key = _stable_key(path.stem)
            emit(f"GT/{path.stem}.png", gt[0])
            image_entries: list[dict[str, Any]] = []
            for task in task_list:
                try:
                    lq, params = _degrade_one(gt, task, preset, generator_from(seed, key, task.id), implementation)
                except ValueError as exc:
                    raise _ImageError(f"image {str(path)!r}, task {task.name!r}: {exc}") from exc
                rel = f"{task.name}/{path.stem}.png"
                emit(rel, lq[0])
                del lq
                image_entries.append(
                    {"task": task.name, "image": path.stem, "lq": rel, "gt": f"GT/{path.stem}.png", "params": _jsonable(params)}
                )
            for comp in comp_list:
                name = "+".join(t.name for t in comp)
                g = generator_from(seed, key, 1000 + sum((t.id + 1) * 8**i for i, t in enumerate(comp)))
                try:
                    x, stage_params = degrade_sequence(gt, comp, preset=preset, generator=g)
                except ValueError as exc:
                    raise _ImageError(f"image {str(path)!r}, composite {name!r}: {exc}") from exc
                stages = [{"task": t.name, "params": _jsonable(p)} for t, p in zip(comp, stage_params)]
                rel = f"{name}/{path.stem}.png"
                emit(rel, x[0])
                del x
                image_entries.append(
                    {"tasks": [t.name for t in comp], "image": path.stem, "lq": rel, "gt": f"GT/{path.stem}.png",
                     "stages": stages}
                )
        except (ImageReadError, _ImageError) as exc:
            for f in written:
                f.unlink(missing_ok=True)
            if on_error == "raise":
                if isinstance(exc, _ImageError):
                    raise ValueError(f"{exc}; drop this image or pass on_error='skip' (--on-error skip)") from None
                raise
            report.skipped[path.name] = str(exc)
            continue
        entries.extend(image_entries)
        report.images.append(path.stem)
    report.num_pairs = len(entries)
    manifest = {
        "version": MANIFEST_VERSION,
        "implementation": implementation,
        "preset": preset,
        "seed": seed,
        "tasks": [t.name for t in task_list],
        "composites": ["+".join(t.name for t in c) for c in comp_list],
        "images": report.images,
        "skipped": report.skipped,
        "entries": entries,
    }
    write_text_atomic(json.dumps(manifest, indent=1), root / MANIFEST_NAME)
    return report
