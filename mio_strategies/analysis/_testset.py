"""Batches of a test set for the ``analyze`` CLI: images read one item at a time, grouped by size."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["iter_image_batches"]


class _Items(Protocol):
    """What a test set must offer: its length and its items by index (a map-style torch Dataset, a list)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Mapping[str, Any]: ...


def iter_image_batches(dataset: _Items, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """``(images, task_ids)`` batches of up to ``batch_size`` consecutive items of equal image size.

    Items are read lazily (e.g. from a :class:`~mio_strategies.data.PairedFolderDataset`), so memory
    holds at most one batch; test images differ in size, so a batch ends early where the size changes.

    Args:
        dataset: items with ``"lq"`` (``(3, H, W)``) and ``"task"`` (an id).
        batch_size: the most images per batch.

    Raises:
        ValueError: ``batch_size`` below 1.

    Example:
        >>> items = [{"lq": torch.zeros(3, 8, 8), "task": 0}] * 3 + [{"lq": torch.zeros(3, 4, 8), "task": 2}]
        >>> [tuple(ids.tolist()) for _, ids in iter_image_batches(items, 2)]
        [(0, 0), (0,), (2,)]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    pending: list[Tensor] = []
    pending_ids: list[int] = []
    for i in range(len(dataset)):
        item = dataset[i]
        img = item["lq"]
        if pending and (img.shape != pending[0].shape or len(pending) == batch_size):
            yield torch.stack(pending), torch.tensor(pending_ids, dtype=torch.int64)
            pending, pending_ids = [], []
        pending.append(img)
        pending_ids.append(int(item["task"]))
    if pending:
        yield torch.stack(pending), torch.tensor(pending_ids, dtype=torch.int64)
