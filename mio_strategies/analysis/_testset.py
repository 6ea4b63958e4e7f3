"""A private reader for the on-disk test set layout (``manifest.json`` + task folders of 8-bit PNGs).

To be replaced by the shared data reader when the data package lands; keep its surface to
``_load_testset(root) -> (lq images, task ids)`` and ``_iter_image_batches``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mio_strategies.tasks import get_task

__all__ = ["_LazyImages", "_iter_image_batches", "_load_testset", "_read_manifest"]

MANIFEST = "manifest.json"


def _read_manifest(root: str | Path) -> dict[str, Any]:
    """The parsed, checked ``manifest.json`` of a test set folder.

    Raises:
        FileNotFoundError: no folder or no manifest.
        ValueError: unreadable JSON, a version other than 1, no entries, an entry without
            ``task``/``lq``, an unknown task, or a missing image file.
    """
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in test set folder {str(root)!r}: give the folder that holds it")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("version") != 1:
        found = manifest.get("version") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{path}: expected a manifest with \"version\": 1, got {found!r}")
    entries = manifest.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: \"entries\" must be a non-empty list")
    missing_files = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "task" not in entry or "lq" not in entry:
            raise ValueError(f"{path}: entry {i} must be an object with \"task\" and \"lq\", got {entry!r}")
        get_task(entry["task"])  # raises UnknownTaskError naming the valid tasks
        if not (root / entry["lq"]).is_file():
            missing_files.append(entry["lq"])
    if missing_files:
        raise ValueError(f"{path}: {len(missing_files)} listed images are missing under {str(root)!r}, e.g. {missing_files[:3]}")
    return manifest


def _read_png(path: Path) -> Tensor:
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


class _LazyImages(Sequence[Tensor]):
    """The LQ images of a test set, read from disk on access as ``(3, H, W)`` float tensors in 0..1."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:  # type: ignore[override]
        return _read_png(self.paths[index])


def _load_testset(root: str | Path) -> tuple[_LazyImages, list[int]]:
    """The LQ images (read lazily) and task ids of a test set folder, in manifest order.

    Example:
        >>> images, tasks = _load_testset("testsets/mio100_in")  # doctest: +SKIP
    """
    root = Path(root)
    manifest = _read_manifest(root)
    entries = manifest["entries"]
    paths = [root / e["lq"] for e in entries]
    return _LazyImages(paths), [get_task(e["task"]).id for e in entries]


def _iter_image_batches(
    images: Sequence[Tensor], task_ids: Sequence[int], batch_size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of up to ``batch_size`` consecutive images of equal size, with their task ids.

    Test images differ in size, so a batch ends early where the size changes.
    """
    if len(images) != len(task_ids):
        raise ValueError(f"mismatched lengths: {len(images)} images but {len(task_ids)} task ids")
    pending: list[Tensor] = []
    pending_ids: list[int] = []
    for i in range(len(images)):
        img = images[i]
        if pending and (img.shape != pending[0].shape or len(pending) == batch_size):
            yield torch.stack(pending), torch.tensor(pending_ids, dtype=torch.int64)
            pending, pending_ids = [], []
        pending.append(img)
        pending_ids.append(int(task_ids[i]))
    if pending:
        yield torch.stack(pending), torch.tensor(pending_ids, dtype=torch.int64)
