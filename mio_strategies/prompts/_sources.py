"""Prompt sources: where the prompt of each sample comes from (a task id, or the input image)."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import nn

from ..tasks import NUM_TASKS, TASKS, Task, get_task
from ..utils.validation import int_in_range, is_int, positive_int
from ._extractor import PromptExtractor
from ._init import check_generator, default_generator

__all__ = ["AdaptivePrompt", "ExplicitPrompt", "PromptSource"]

TaskSpec = Union[int, str, Task, Sequence[int | str | Task], torch.Tensor]


@dataclass(frozen=True)
class _Spec:
    """A parsed prompt request: per-sample task ids, or mixing weights over the tasks."""

    ids: torch.Tensor | None = None  # long, () or (B,)
    weights: torch.Tensor | None = None  # float, (T,) or (B, T)


class PromptSource(nn.Module):
    """Base class of prompt sources. Subclasses define how a prompt vector is made per sample."""

    kind: str = "abstract"
    in_channels: int = 0

    def make_encoder(self, embed_dim: int, generator: torch.Generator) -> nn.Module:
        """One encoder per U scale, mapping this source's prompt to ``(B, embed_dim)``."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """A JSON-like description used to check that state dicts come from the same configuration."""
        raise NotImplementedError

    def parse_spec(self, task: Any = None, weights: Any = None, mix: Any = None) -> _Spec:
        """Validate a prompt request made with ``injector.prompt(...)``."""
        raise NotImplementedError

    def context(self, image: torch.Tensor | None, spec: _Spec | None) -> Any:
        """Per model call: validate the input and return what :meth:`encode` needs."""
        raise NotImplementedError

    def encode(self, encoder: nn.Module, ctx: Any) -> torch.Tensor:
        """The prompt vectors ``(B, embed_dim)`` of one scale."""
        raise NotImplementedError


def _check_maps(maps: Any, num_tasks: Any, learned: Any) -> torch.Tensor:
    """Explicit prompt maps as a float32 ``(num_tasks, 1, S, S)`` tensor, validated."""
    if learned:
        raise ValueError("maps and learned=True exclude each other: a learned table has no maps")
    if not isinstance(maps, torch.Tensor) or not maps.is_floating_point():
        raise TypeError(f"maps must be a float tensor (num_tasks, 1, S, S), got {getattr(maps, 'dtype', type(maps).__name__)}")
    t = maps.detach().to(torch.float32)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    if t.ndim != 4 or t.shape[1] != 1 or t.shape[-1] != t.shape[-2] or t.shape[0] != num_tasks or t.shape[-1] < 5:
        raise ValueError(
            f"maps must have shape ({num_tasks}, 1, S, S) or ({num_tasks}, S, S) with S >= 5 (one square map per "
            f"task), got {tuple(maps.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError("maps contain NaN or infinite values")
    return t.clone().contiguous()


def _as_index(value: Any) -> int | None:
    """``value`` as a Python int when it is an integer scalar other than a bool (e.g. ``numpy.int64``)."""
    if isinstance(value, (bool, str, Task, torch.Tensor)) or not hasattr(value, "__index__"):
        return None
    try:
        return operator.index(value)  # a numpy array of more than one element refuses this
    except TypeError:
        return None


def _task_listing(num_tasks: int) -> str:
    return ", ".join(f"{t.id}={t.name}" for t in TASKS[:num_tasks])


class _TaskEmbedding(nn.Module):
    """A learned table of one prompt vector per task (the documented alternative to fixed maps)."""

    def __init__(self, num_tasks: int, embed_dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(num_tasks, embed_dim, generator=generator) * 0.02)

    def forward(self, _maps: torch.Tensor | None = None) -> torch.Tensor:
        return self.table


class ExplicitPrompt(PromptSource):
    """One fixed prompt per task; the task of each sample is given, or predicted by a classifier.

    As in the reference, every task owns a fixed random single-channel ``size x size`` map (uniform
    noise drawn from a seeded generator, stored as a buffer so it is saved with the injector), which
    the per-scale extractor turns into a 64-d vector. With ``learned=True`` the maps are replaced by
    a learned embedding table (one vector per task and scale), a cheaper documented alternative.

    The task is chosen per call with ``with injector.prompt(task=ids): model(x)``; mixing weights over
    tasks (``weights=`` or ``mix={"rain": 0.3, "lowlight": 0.7}``) interpolate the prompt vectors,
    hence the scales and shifts, which are linear in them. Without a request, an attached
    :class:`TaskClassifier` predicts the task from the model's input.

    Args:
        num_tasks: number of tasks (default: all seven of :mod:`mio_strategies.tasks`).
        size: side of each prompt map (the reference uses 128).
        learned: use a learned embedding table instead of fixed maps through the extractor.
        classifier: a :class:`TaskClassifier` (or any module returning ``(B, num_tasks)`` logits) used
            when no task is given. It is not part of the injector's parameters or state dict.
        generator: draws the maps (default: ``torch.Generator().manual_seed(0)``).
        maps: explicit maps instead of drawn ones, ``(num_tasks, 1, S, S)`` or ``(num_tasks, S, S)`` with
            S >= 5, in the library's task order (e.g. the reference's map file, read by
            :func:`load_reference_prompt_maps`); ``size`` is then S.

    Raises:
        ValueError: ``num_tasks`` outside ``1..7`` or ``size`` < 5.
        TypeError: ``generator`` is not a ``torch.Generator``.

    Example:
        >>> src = ExplicitPrompt()
        >>> src.maps.shape
        torch.Size([7, 1, 128, 128])
    """

    kind = "explicit"
    in_channels = 1

    classifier: nn.Module | None  # in __dict__, not a submodule (see set_classifier)

    def __init__(
        self,
        num_tasks: int = NUM_TASKS,
        *,
        size: int = 128,
        learned: bool = False,
        classifier: nn.Module | None = None,
        generator: torch.Generator | None = None,
        maps: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if maps is not None:
            maps = _check_maps(maps, num_tasks, learned)
            size = int(maps.shape[-1])
        int_in_range("num_tasks", num_tasks, 1, NUM_TASKS)
        int_in_range("size", size, 5, note=" (the extractor's 7x7 stride-2 conv)")
        check_generator(generator, "ExplicitPrompt(generator=...)")
        self.num_tasks = num_tasks
        self.size = size
        self.learned = bool(learned)
        g = generator if generator is not None else default_generator()
        self.seed = int(g.initial_seed())
        if self.learned:
            self.register_buffer("maps", None)
        elif maps is not None:
            self.register_buffer("maps", maps)
        else:
            self.register_buffer("maps", torch.rand(num_tasks, 1, size, size, generator=g))
        self.__dict__["classifier"] = None  # not a submodule: kept out of parameters() / state_dict()
        if classifier is not None:
            self.set_classifier(classifier)

    def set_classifier(self, classifier: nn.Module | None) -> None:
        """Use ``classifier`` to predict the task when none is given (``None`` removes it).

        Raises:
            TypeError: ``classifier`` is not an ``nn.Module``.
        """
        if classifier is not None and not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be an nn.Module (e.g. a TaskClassifier), got {type(classifier).__name__}")
        self.__dict__["classifier"] = classifier

    def make_encoder(self, embed_dim: int, generator: torch.Generator) -> nn.Module:
        if self.learned:
            return _TaskEmbedding(self.num_tasks, embed_dim, generator)
        return PromptExtractor(1, embed_dim, generator=generator)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "num_tasks": self.num_tasks, "size": self.size, "learned": self.learned}

    # -- requests ---------------------------------------------------------------------------------
    def _ids(self, task: Any) -> torch.Tensor:
        if isinstance(task, torch.Tensor):
            if task.dtype.is_floating_point or task.dtype.is_complex or task.dtype == torch.bool:
                raise TypeError(
                    f"task ids must be an integer tensor, got dtype {task.dtype}; "
                    "use weights= for soft mixing of prompts"
                )
            if task.ndim > 1:
                raise ValueError(f"task ids must be a scalar or a 1-D tensor (one per sample), got shape {tuple(task.shape)}")
            ids = task.detach().to(torch.long)
            if ids.numel():
                lo, hi = int(ids.min()), int(ids.max())
                bad = hi if hi >= self.num_tasks else lo
                if lo < 0 or hi >= self.num_tasks:
                    raise ValueError(
                        f"task id {bad} is out of range: valid ids are 0..{self.num_tasks - 1} "
                        f"({_task_listing(self.num_tasks)})"
                    )
            return ids
        index = _as_index(task)
        if index is not None:
            task = index  # numpy / other integer scalars are ids, as in get_task
        items = [task] if isinstance(task, (int, str, Task)) else task
        if not isinstance(items, Sequence) or isinstance(items, str):
            raise TypeError(f"task must be an id, name, letter, Task, a sequence of them, or a tensor; got {type(task).__name__}")
        out = []
        for item in items:
            index = _as_index(item)
            item = index if index is not None else item
            if is_int(item) and not 0 <= item < self.num_tasks:
                raise ValueError(
                    f"task id {item} is out of range: valid ids are 0..{self.num_tasks - 1} "
                    f"({_task_listing(self.num_tasks)})"
                )
            t = get_task(item)
            if t.id >= self.num_tasks:
                raise ValueError(
                    f"task {t.name!r} has id {t.id}, out of range for ExplicitPrompt(num_tasks={self.num_tasks}): "
                    f"valid ids are 0..{self.num_tasks - 1}"
                )
            out.append(t.id)
        ids = torch.tensor(out, dtype=torch.long)
        return ids[0] if isinstance(task, (int, str, Task)) else ids

    def _weights(self, weights: Any) -> torch.Tensor:
        w = torch.as_tensor(weights, dtype=torch.float32) if not isinstance(weights, torch.Tensor) else weights
        if not w.dtype.is_floating_point:
            w = w.to(torch.float32)
        if w.ndim not in (1, 2) or w.shape[-1] != self.num_tasks:
            raise ValueError(
                f"weights must have shape ({self.num_tasks},) or (B, {self.num_tasks}) (one weight per task), "
                f"got {tuple(w.shape)}"
            )
        if not bool(torch.isfinite(w).all()):
            raise ValueError("weights must be finite, got NaN or inf")
        return w.detach()

    def parse_spec(self, task: Any = None, weights: Any = None, mix: Any = None) -> _Spec:
        given = [n for n, v in (("task", task), ("weights", weights), ("mix", mix)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of task=, weights= or mix=, got {given or 'none'}")
        if task is not None:
            return _Spec(ids=self._ids(task))
        if weights is not None:
            return _Spec(weights=self._weights(weights))
        if not isinstance(mix, Mapping) or not mix:
            raise TypeError(
                f"mix must be a non-empty mapping of task -> weight, e.g. {{'rain': 0.5, 'lowlight': 0.5}}, got {mix!r}"
            )
        w = torch.zeros(self.num_tasks)
        for key, value in mix.items():
            tid = int(self._ids(key))
            w[tid] += float(value)
        return _Spec(weights=self._weights(w))

    # -- per call ---------------------------------------------------------------------------------
    def context(self, image: torch.Tensor | None, spec: _Spec | None) -> Any:
        batch = None if image is None else image.shape[0]
        if spec is None:
            clf = self.classifier
            if clf is None:
                raise ValueError(
                    "ExplicitPrompt needs the task of each sample: call the model inside "
                    "`with injector.prompt(task=task_ids):`, or give ExplicitPrompt(classifier=...)"
                )
            if image is None:
                raise ValueError(
                    "the task classifier needs the model's input image, but the model was called without a tensor input"
                )
            with torch.no_grad():
                logits = clf(image)
            if logits.ndim != 2 or logits.shape[1] != self.num_tasks:
                raise ValueError(f"classifier returned shape {tuple(logits.shape)}, expected (B, {self.num_tasks}) logits")
            return ("ids", logits.argmax(dim=1))
        if spec.ids is not None:
            ids = spec.ids
            if ids.ndim == 1 and batch is not None and ids.shape[0] != batch:
                raise ValueError(
                    f"got {ids.shape[0]} task ids for a batch of {batch} samples: give one id per sample or a single id"
                )
            return ("ids", ids.view(1) if ids.ndim == 0 else ids)  # one id: (1, D), broadcast over the batch
        w = spec.weights
        assert w is not None
        if w.ndim == 1:
            return ("weights", w.view(1, -1))  # one mixture, broadcast over the batch
        if batch is not None and w.shape[0] != batch:
            raise ValueError(f"got weights for {w.shape[0]} samples for a batch of {batch}: give (B, T) or (T,) weights")
        return ("weights", w)

    def encode(self, encoder: nn.Module, ctx: Any) -> torch.Tensor:
        table = encoder(self.maps)  # (T, D)
        mode, value = ctx
        if mode == "ids":
            return table[value.to(table.device)]
        return value.to(device=table.device, dtype=table.dtype) @ table


class AdaptivePrompt(PromptSource):
    """The model's input image is the prompt (captured by a pre-hook on the model), at any resolution.

    Args:
        in_channels: channels of the model's input image (3 for RGB).

    Raises:
        ValueError: ``in_channels`` not a positive integer.

    Example:
        >>> AdaptivePrompt(3).in_channels
        3
    """

    kind = "adaptive"

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        positive_int("in_channels", in_channels)
        self.in_channels = in_channels

    def make_encoder(self, embed_dim: int, generator: torch.Generator) -> nn.Module:
        return PromptExtractor(self.in_channels, embed_dim, generator=generator)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "in_channels": self.in_channels}

    def parse_spec(self, task: Any = None, weights: Any = None, mix: Any = None) -> _Spec:
        raise ValueError(
            "AdaptivePrompt takes its prompt from the model's input image; injector.prompt(task=/weights=/mix=) "
            "is for ExplicitPrompt"
        )

    def context(self, image: torch.Tensor | None, spec: _Spec | None) -> Any:
        if image is None:
            raise ValueError("AdaptivePrompt needs a tensor input (B, C, H, W), but the model was called without one")
        if image.ndim != 4 or image.shape[1] != self.in_channels:
            raise ValueError(
                f"AdaptivePrompt(in_channels={self.in_channels}) expects the model input as "
                f"(B, {self.in_channels}, H, W), got shape {tuple(image.shape)}"
            )
        if image.shape[-1] < 5 or image.shape[-2] < 5:
            raise ValueError(f"the prompt image must be at least 5x5 pixels, got {tuple(image.shape[-2:])}")
        return image

    def encode(self, encoder: nn.Module, ctx: Any) -> torch.Tensor:
        return encoder(ctx)
