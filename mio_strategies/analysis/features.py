"""Capture globally pooled features of one layer over a test set, with the task of each input.

The features of a layer are read by a forward hook (or computed by a callable source, such as a
prompt extractor), pooled to one ``C``-vector per input and moved to the CPU batch by batch, so
memory holds only the ``(N, C)`` result. Hooks are removed when the capture ends, also on error.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from mio_strategies.analysis import capture_features
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    >>> images = torch.rand(10, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> feats, labels = capture_features(model, images, module="1", labels=[0] * 5 + [2] * 5, batch_size=4)
    >>> feats.shape, labels.tolist()
    (torch.Size([10, 8]), [0, 0, 0, 0, 0, 2, 2, 2, 2, 2])
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from mio_strategies.tasks import Task, get_task
from mio_strategies.utils.validation import positive_int

__all__ = ["CapturedFeatures", "FeatureRecorder", "FeatureSource", "capture_features", "pool_features"]

#: Where features come from: a submodule name (``""`` is the whole model), a submodule, or a
#: callable ``source(lq, task_ids) -> Tensor`` returning ``(B, ...)`` features (e.g. prompt vectors).
FeatureSource = Union[str, nn.Module, Callable[[Tensor, Tensor], Tensor]]
"""Where features come from: a module name, a module, or a callable ``(model, images) -> features``."""


class CapturedFeatures(NamedTuple):
    """Pooled features and the task id of each input, in input order."""

    features: Tensor  #: ``(N, C)`` float32, on the CPU
    labels: Tensor  #: ``(N,)`` int64 task ids (``mio_strategies.tasks`` order)


class _StopForward(Exception):
    """Raised by a recorder's hook to skip the rest of the forward pass once the features are read."""


def pool_features(output: Tensor) -> Tensor:
    """Global average pooling of a layer output to ``(B, C)``.

    ``(B, C)`` is kept; ``(B, N, C)`` (tokens, as in Swin/ViT blocks) is averaged over tokens;
    ``(B, C, H, W)`` (and more spatial dims) over space.

    Args:
        output: a tensor with a batch dimension first.

    Returns:
        A ``(B, C)`` tensor (same dtype and device).

    Raises:
        TypeError: not a tensor (e.g. a module returning a tuple: use a callable source).
        ValueError: fewer than 2 dimensions.

    Example:
        >>> pool_features(torch.ones(2, 5, 4, 4)).shape
        torch.Size([2, 5])
    """
    if not isinstance(output, Tensor):
        raise TypeError(
            f"the captured output is a {type(output).__name__}, not a tensor; pick a module that returns a "
            "tensor, or pass module=callable(lq, task_ids) that returns the features to pool"
        )
    if output.ndim == 2:
        return output
    if output.ndim == 3:
        return output.mean(dim=1)
    if output.ndim >= 4:
        return output.mean(dim=tuple(range(2, output.ndim)))
    raise ValueError(
        f"cannot pool an output of shape {tuple(output.shape)}: expected (B, C), (B, N, C) tokens or "
        "(B, C, H, W) feature maps"
    )


def resolve_module(model: nn.Module, module: str | nn.Module) -> tuple[str, nn.Module]:
    """``(name, module)`` of a submodule of ``model`` given by name or as the module itself.

    Raises:
        ValueError: no such name (the message lists the closest names) or a module not inside ``model``.

    Example:
        >>> from torch import nn
        >>> resolve_module(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()), "1")
        ('1', ReLU())
    """
    named = dict(model.named_modules())
    if isinstance(module, str):
        if module in named:
            return module, named[module]
        names = [n for n in named if n]
        close = difflib.get_close_matches(module, names, n=5, cutoff=0.5)
        hint = f"close matches: {close}" if close else f"available: {names[:20]}" + (" ..." if len(names) > 20 else "")
        raise ValueError(
            f"module {module!r} not found in {type(model).__name__}; {hint} "
            "(names as in model.named_modules(); '' is the whole model)"
        )
    for name, sub in named.items():
        if sub is module:
            return name, sub
    raise ValueError(
        f"the given {type(module).__name__} is not a submodule of {type(model).__name__}; "
        "pass a module of this model or its name"
    )


class FeatureRecorder:
    """Record the pooled outputs of one submodule across forward passes (a removable forward hook).

    Attach validates the module first; attaching twice is an error; ``detach()`` is idempotent; the
    context-manager form detaches on exit, also on error. Each call of the module appends
    ``pool_features(output)`` (detached, float32, CPU) to the record.

    Args:
        model: the network.
        module: a submodule name from ``model.named_modules()`` or the submodule itself.
        stop_forward: raise an internal exception after recording, so the rest of the forward pass
            is skipped (``capture_features`` catches it). Off by default.

    Raises:
        ValueError: the module is not part of the model (the message lists close names).
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        >>> with FeatureRecorder(model, "0") as rec:
        ...     _ = model(torch.zeros(3, 4))
        >>> rec.features().shape, rec.attached
        (torch.Size([3, 6]), False)
    """

    def __init__(self, model: nn.Module, module: str | nn.Module, *, stop_forward: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.module_name, self.module = resolve_module(model, module)
        self.stop_forward = bool(stop_forward)
        self._chunks: list[Tensor] = []
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    @property
    def attached(self) -> bool:
        """Whether the hook is registered."""
        return self._handle is not None

    def attach(self) -> FeatureRecorder:
        """Register the forward hook.

        Raises:
            RuntimeError: already attached.
        """
        if self._handle is not None:
            raise RuntimeError(f"FeatureRecorder on {self.module_name!r} is already attached; call detach() first")
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def detach(self) -> None:
        """Remove the hook (idempotent); the recorded features are kept."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        self._chunks.append(pool_features(output).detach().to(device="cpu", dtype=torch.float32))
        if self.stop_forward:
            raise _StopForward

    @property
    def num_samples(self) -> int:
        """Rows recorded so far."""
        return int(sum(c.shape[0] for c in self._chunks))

    def features(self) -> Tensor:
        """All recorded rows as one ``(N, C)`` float32 tensor.

        Raises:
            ValueError: nothing recorded yet, or the channel count changed between calls.
        """
        if not self._chunks:
            raise ValueError(f"no features recorded at {self.module_name!r}: run the model while attached")
        widths = sorted({c.shape[1] for c in self._chunks})
        if len(widths) > 1:
            raise ValueError(f"module {self.module_name!r} produced different channel counts {widths}")
        return torch.cat(self._chunks)

    def reset(self) -> None:
        """Forget the recorded features (the hook stays as it is)."""
        self._chunks.clear()

    def __enter__(self) -> FeatureRecorder:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()


# ---------------------------------------------------------------- inputs


def _task_ids(task: Any, batch: int) -> Tensor:
    """Task ids of one batch from a tensor or array, an id, a name, a Task, or a list of those."""
    if isinstance(task, np.ndarray):
        task = torch.from_numpy(task) if np.issubdtype(task.dtype, np.integer) else task.tolist()
    if isinstance(task, Tensor):
        if task.is_floating_point() or task.ndim > 1:
            raise TypeError(
                f"task tensor must hold integer task ids with shape (B,) or (), got {task.dtype} {tuple(task.shape)}"
            )
        items: list[Any] = task.reshape(-1).tolist()
        scalar = task.ndim == 0
    elif isinstance(task, (str, int, np.integer, Task)):
        items, scalar = [task], True
    elif isinstance(task, (list, tuple)):
        items, scalar = list(task), False
    else:
        raise TypeError(
            f"task must be task ids, names or Tasks (a tensor, list, int or str), got {type(task).__name__}"
        )
    ids = [get_task(t).id for t in items]
    if scalar:
        ids = ids * batch
    if len(ids) != batch:
        raise ValueError(f"mismatched lengths: a batch has {batch} images but {len(ids)} task labels")
    return torch.tensor(ids, dtype=torch.int64)


def _split_batch(item: Any) -> tuple[Tensor, Tensor]:
    if isinstance(item, Mapping):
        missing = [k for k in ("lq", "task") if k not in item]
        if missing:
            raise KeyError(
                f"batch dict is missing {missing} (has {sorted(map(str, item))}); "
                "batches need 'lq' images and 'task' labels"
            )
        images, task = item["lq"], item["task"]
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        images, task = item
    else:
        raise TypeError(
            f"each batch must be a dict with 'lq' and 'task' or an (images, task_ids) pair, got {type(item).__name__}"
        )
    if not isinstance(images, Tensor):
        raise TypeError(f"batch images must be a tensor, got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"batch images must be (B, C, H, W) or (C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point (0..1), got {images.dtype}; convert with x.float() / 255")
    return images, _task_ids(task, images.shape[0])


def _iter_batches(inputs: Any, labels: Any, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    if isinstance(inputs, Tensor):
        for start in range(0, inputs.shape[0], batch_size):
            yield inputs[start : start + batch_size], labels[start : start + batch_size]
        return
    for item in inputs:
        yield _split_batch(item)


def _prepare_tensor_inputs(inputs: Tensor, labels: Any) -> tuple[Tensor, Tensor]:
    if labels is None:
        raise ValueError("inputs is a tensor of images: give labels= (one task id or name per image)")
    if inputs.ndim != 4:
        raise ValueError(f"an image tensor must be (N, C, H, W), got shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise TypeError(f"images must be floating point (0..1), got {inputs.dtype}; convert with x.float() / 255")
    return inputs, _task_ids(labels, inputs.shape[0])


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


# ---------------------------------------------------------------- capture


def capture_features(
    model: nn.Module,
    inputs: Tensor | Iterable[Any],
    module: FeatureSource,
    *,
    labels: Any = None,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    stop_forward: bool = True,
    progress: bool | Any = False,
    pass_task: bool = False,
) -> CapturedFeatures:
    """Globally pooled features of ``module`` for every input, with the task of each input.

    The model runs in eval mode under ``torch.no_grad()``; the training flags of all its modules are
    restored afterwards and the hook is removed, also when a batch raises.

    Args:
        model: the network (any ``nn.Module``); inputs are moved to its device.
        inputs: an ``(N, C, H, W)`` tensor with ``labels=``, or an iterable (e.g. a DataLoader) of
            batches, each a dict with ``"lq"`` images and ``"task"`` labels or an ``(images, tasks)``
            pair. Images are float ``(B, C, H, W)`` (or one ``(C, H, W)``); tasks are ids, names,
            letters or ``Task`` objects, one per image or one for the whole batch.
        module: where to read: a name from ``model.named_modules()`` (``""`` is the model output), a
            submodule, or a callable ``source(lq, task_ids) -> Tensor`` (e.g. a prompt extractor:
            ``lambda lq, t: extractor(lq)``). Outputs are pooled by :func:`pool_features`.
        labels: the tasks of a tensor ``inputs`` (length ``N``, or one task for all); only then.
        batch_size: batch size for a tensor ``inputs``.
        device: where to run (default: the model's device).
        stop_forward: skip the rest of the forward pass once the hooked module has run (faster; the
            first call of the module per batch is recorded). Only for hooks.
        progress: ``True`` for a tqdm bar counting images, or an existing bar (anything with
            ``update(n)``).
        pass_task: call ``model(images, task_ids)`` instead of ``model(images)``, for models
            conditioned on the task (e.g. explicit prompts selected by each input's true task).

    Returns:
        :class:`CapturedFeatures` ``(features (N, C) float32 CPU, labels (N,) int64 task ids)``.

    Raises:
        ValueError: an unknown module name (close names listed), a module that runs more than once
            per forward or returns a different batch size, mismatched image/label counts, no inputs.
        TypeError: a bad model, source, batch or label type.
        KeyError: a batch dict without ``"lq"`` or ``"task"``.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(1))
        >>> batches = [{"lq": torch.zeros(2, 3, 8, 8), "task": ["noise", "haze"]}]
        >>> capture_features(model, batches, module="0").labels.tolist()
        [2, 5]
    """
    # ---- validate everything before touching the model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    positive_int("batch_size", batch_size)
    recorder: FeatureRecorder | None = None
    source: Callable[[Tensor, Tensor], Tensor] | None = None
    if isinstance(module, (str, nn.Module)):
        recorder = FeatureRecorder(model, module, stop_forward=stop_forward)
    elif callable(module):
        source = module
    else:
        raise TypeError(
            f"module must be a submodule name, an nn.Module or a callable(lq, task_ids), got {type(module).__name__}"
        )
    if isinstance(inputs, Tensor):
        inputs, labels = _prepare_tensor_inputs(inputs, labels)
        total: int | None = inputs.shape[0]
    elif labels is not None:
        raise ValueError("labels= is only for a tensor of images; batches carry their own 'task' labels")
    else:
        dataset = getattr(inputs, "dataset", None)
        total = len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None
    run_device = torch.device(device) if device is not None else _model_device(model)

    bar: Any = None
    own_bar = False
    if progress is True:
        from tqdm.auto import tqdm

        bar, own_bar = tqdm(total=total, unit="img", desc="capture"), True
    elif progress is not False and progress is not None:
        if not hasattr(progress, "update"):
            raise TypeError(f"progress must be a bool or a bar with update(n), got {type(progress).__name__}")
        bar = progress

    chunks: list[Tensor] = []
    all_labels: list[Tensor] = []
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        if recorder is not None:
            recorder.attach()
        with torch.no_grad():
            for images, ids in _iter_batches(inputs, labels, batch_size):
                images = images.to(run_device)
                b = images.shape[0]
                if recorder is not None:
                    recorder.reset()
                    try:
                        if pass_task:
                            model(images, ids.to(run_device))
                        else:
                            model(images)
                    except _StopForward:
                        pass
                    if recorder.num_samples == 0:
                        raise ValueError(
                            f"module {recorder.module_name!r} did not run in the forward pass; pick a module on the path"
                        )
                    if recorder.num_samples != b:
                        raise ValueError(
                            f"module {recorder.module_name!r} produced {recorder.num_samples} rows for a batch of {b} "
                            "(it runs more than once per forward or changes the batch size); pick another "
                            "module, or use stop_forward=True to read its first call"
                        )
                    pooled = recorder.features()
                else:
                    assert source is not None
                    pooled = pool_features(source(images, ids.to(run_device))).detach().to("cpu", torch.float32)
                    if pooled.shape[0] != b:
                        raise ValueError(f"the feature source returned {pooled.shape[0]} rows for a batch of {b}")
                if chunks and pooled.shape[1] != chunks[0].shape[1]:
                    raise ValueError(f"feature width changed between batches: {chunks[0].shape[1]} then {pooled.shape[1]}")
                chunks.append(pooled)
                all_labels.append(ids)
                if bar is not None:
                    bar.update(b)
    finally:
        if recorder is not None:
            recorder.detach()
            recorder.reset()
        for m, mode in modes.items():
            m.training = mode
        if own_bar:
            bar.close()
    if not chunks:
        raise ValueError("inputs yielded no batches: give at least one image")
    return CapturedFeatures(torch.cat(chunks), torch.cat(all_labels))
