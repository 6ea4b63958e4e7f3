"""Synthesis on the training device: degrade a batch's deferred items there, grouped by task.

A :class:`~mio_strategies.data.MiODataset` built with ``synthesis="device"`` crops, augments and samples
each item's degradation parameters in the DataLoader (cheap, on the CPU workers) but leaves the
degradation of most tasks to the consumer: such an item holds the GT patch as ``lq``, ``deferred=True``
and its ``params``. :func:`degrade_deferred` moves a batch to the training device and degrades its
deferred items there, one :func:`~mio_strategies.degradations.apply_degradation` call per task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mio_strategies.degradations import apply_degradation
from mio_strategies.tasks import get_task
from mio_strategies.utils.validation import choice

__all__ = ["DEVICE_TASKS", "SYNTHESES", "check_synthesis", "degrade_deferred"]

SYNTHESES = ("loader", "device")
"""Where the training data's degradations are computed: in the DataLoader (``"loader"``, per item) or on
the training device, per batch and task (``"device"``)."""

DEVICE_TASKS = ("sr", "blur", "noise", "jpeg", "rain", "haze", "lowlight")
"""The tasks ``synthesis="device"`` can defer to the device. JPEG only with the DiffJPEG codec
(``jpeg_codec="diffjpeg"``: batched torch, on any device); with Pillow's libjpeg (the library's default
codec, on the CPU, one image at a time) it stays in the loader. Haze stays in the loader when a dataset
reads depth maps from a folder."""


def check_synthesis(synthesis: Any, implementation: str = "library") -> str:
    """``synthesis`` if valid for the data ``implementation``, else a ValueError naming the fix.

    Example:
        >>> check_synthesis("device")
        'device'
    """
    choice("synthesis", synthesis, SYNTHESES, plural="values")
    if synthesis == "device" and implementation != "library":
        raise ValueError(
            f"synthesis='device' needs implementation='library', got {implementation!r}: the reference's data "
            "path degrades each whole image once and keeps it (no per-batch synthesis to move); use "
            "synthesis='loader' with it, or, for the reference's DiffJPEG batched on the training device, "
            "implementation='library' with jpeg_codec='diffjpeg'"
        )
    return synthesis


def _stack_params(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rows[0].items():
        if isinstance(value, torch.Tensor):
            out[key] = torch.stack([r[key] for r in rows])
        else:  # the stream or codec name, the same for every item of one dataset
            values = {r[key] for r in rows}
            if len(values) != 1:
                raise ValueError(f"deferred items of one task disagree on params[{key!r}]: {sorted(values)}")
            out[key] = value
    return out


def degrade_deferred(batch: Mapping[str, Any], device: torch.device | str | None = None) -> torch.Tensor:
    """The batch's ``lq`` on ``device``, its deferred items degraded there (a batch without ``deferred``:
    just ``lq`` moved).

    The items of one task are degraded together with their recorded params
    (:func:`~mio_strategies.degradations.apply_degradation`), so the batch is the one the loader gives
    (``synthesis="loader"``) up to the rounding of batched arithmetic. On the CPU: bit for bit for noise and
    rain (either stream) and low light, whose arithmetic is elementwise or per image; blur (kernels padded
    to the batch's largest), SR (the resize's matrix products) and haze (the default depth map's pooling)
    run batched float32 operations whose sums may be ordered differently for another batch, at worst one
    8-bit level on a few pixels (equal in the tests, which allow one level on 0.1 % of the values). JPEG is
    deferred with the DiffJPEG codec only (``jpeg_codec="diffjpeg"``): batched float32 arithmetic per 8x8
    block, bit for bit on the CPU in the tests. On a GPU, float32 arithmetic (and the Philox noise's
    double-precision ``log``/``cos``) may round differently from the CPU's, again at most one 8-bit level where
    a value lies on a rounding boundary (DiffJPEG: a coefficient that rounds the other way moves its 8x8 block
    by a few levels, rarely); the Philox stream's random fields and rain layers are the same.

    Args:
        batch: a :func:`~mio_strategies.data.mio_collate` batch (``lq``, ``task``, and, from a dataset with
            ``synthesis="device"``, ``params`` and ``deferred``).
        device: where to degrade and return ``lq`` (default: where ``lq`` is).

    Returns:
        ``(B, 3, H, W)`` degraded images on ``device``.

    Raises:
        ValueError: ``deferred`` or ``params`` not one per item, params that the task refuses.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from mio_strategies.data import MiODataset, embedded_image_paths, mio_collate
        >>> ds = MiODataset(embedded_image_paths(), tasks="NL", patch_size=32, synthesis="device")
        >>> batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=mio_collate)))
        >>> lq = degrade_deferred(batch, "cpu")
        >>> lq.shape, bool((lq != batch["gt"]).any())
        (torch.Size([4, 3, 32, 32]), True)
    """
    lq = batch["lq"].to(device, non_blocking=True) if device is not None else batch["lq"]
    deferred = batch.get("deferred")
    if deferred is None:
        return lq
    n = lq.shape[0]
    if len(deferred) != n or len(batch["params"]) != n:
        raise ValueError(
            f"a batch of {n} images needs one 'deferred' flag and one params dict per image, got "
            f"{len(deferred)} and {len(batch['params'])}"
        )
    rows = [i for i, d in enumerate(deferred) if d]
    if not rows:
        return lq
    lq = lq.clone() if lq is batch["lq"] else lq  # never write into the caller's tensor
    tasks = [int(t) for t in batch["task"]]
    by_task: dict[int, list[int]] = {}
    for i in rows:
        by_task.setdefault(tasks[i], []).append(i)
    for task_id, idx in by_task.items():
        sel = torch.tensor(idx, device=lq.device)
        params = _stack_params([batch["params"][i] for i in idx])
        lq[sel] = apply_degradation(lq[sel], get_task(task_id).name, params)
    return lq
