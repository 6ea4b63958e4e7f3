"""Hook lifecycle: the forward hooks an injector registers, and how they find the model's input."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # for annotations only: _injector imports this module, a runtime import would be a cycle
    from ._injector import PromptInjector


class _EntryHook:
    """Forward pre-hook on the model: computes the prompt vectors of this call."""

    __slots__ = ("injector",)

    def __init__(self, injector: PromptInjector) -> None:
        self.injector = injector

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.injector._begin(args, kwargs)
        return None


class _ExitHook:
    """Forward hook on the model (always called): drops the prompt vectors of this call."""

    __slots__ = ("injector",)

    def __init__(self, injector: PromptInjector) -> None:
        self.injector = injector

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        self.injector._active = None
        return None


class _TargetHook:
    """Forward hook on one target: ``out * (1 + scale) + shift``."""

    __slots__ = ("axis", "injector", "key", "name", "scale_index")

    def __init__(
        self, injector: PromptInjector, name: str, key: str, scale_index: int, axis: int | None = None
    ) -> None:
        self.injector = injector
        self.name = name
        self.key = key
        self.scale_index = scale_index
        self.axis = axis  # the channel axis the module's type declares; None: from the output's ndim

    def __call__(self, module: nn.Module, args: tuple, output: Any) -> Any:
        return self.injector._modulate(self, output)


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (torch 2.1-2.3 have no per-device query)."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4
        if device_type == "cuda":
            return bool(torch.is_autocast_enabled())
        return device_type == "cpu" and bool(torch.is_autocast_cpu_enabled())
    except RuntimeError:  # a device type autocast does not know (meta)
        return False


def _our_hooks(model: nn.Module) -> Iterator[tuple[str, Any]]:
    for name, module in model.named_modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for hook in hooks.values():
                if isinstance(hook, (_EntryHook, _ExitHook, _TargetHook)):
                    yield name, hook


def _in_backward() -> bool:
    """Whether autograd is running a backward pass (e.g. an activation-checkpointing recomputation)."""
    task_id = getattr(torch._C, "_current_graph_task_id", None)
    return task_id is not None and task_id() != -1


def _input_position(model: nn.Module, input_arg: int | str) -> int | None:
    """For a keyword ``input_arg``: its position among ``model.forward``'s positional parameters.

    ``None`` when it can only be passed by keyword. A position is returned as is.

    Raises:
        ValueError: ``forward`` has no parameter of that name and takes no ``**kwargs``.
    """
    if not isinstance(input_arg, str):
        return input_arg
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # no signature (a builtin): keywords only
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for i, p in enumerate(positional):
        if p.name == input_arg:
            return i
    if any(p.name == input_arg for p in params) or any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    raise ValueError(
        f"input_arg={input_arg!r}: {type(model).__name__}.forward has no parameter {input_arg!r} "
        f"(its parameters: {[p.name for p in params]}); name the image's parameter, or give its position"
    )


def _pick_input(args: tuple, kwargs: dict, input_arg: int | str, position: int | None) -> Any:
    """The model's image argument (the same rule at attach and at every call), or None when absent."""
    if isinstance(input_arg, str):
        if input_arg in kwargs:
            return kwargs[input_arg]
        return args[position] if position is not None and len(args) > position else None
    if len(args) > input_arg:
        return args[input_arg]
    return next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)


def _first_tensor(args: tuple, kwargs: dict, input_arg: int | str, position: int | None = None) -> torch.Tensor | None:
    value = _pick_input(args, kwargs, input_arg, position if isinstance(input_arg, str) else None)
    return value if isinstance(value, torch.Tensor) else None


def _missing_input(args: tuple, kwargs: dict, input_arg: int | str, position: int | None) -> str:
    """Why no image was found in a call, and the fix."""
    value = _pick_input(args, kwargs, input_arg, position)
    called = f"this call has {len(args)} positional argument(s) and keyword(s) {sorted(kwargs)}"
    if value is not None:
        return (
            f"the argument at input_arg={input_arg!r} is a {type(value).__name__}, not a tensor ({called}): "
            "attach with input_arg=<the image's position or keyword name>"
        )
    if isinstance(input_arg, str):
        where = f" or position {position}" if position is not None else ""
        return (
            f"there is no argument {input_arg!r} (keyword{where}) in this call ({called}): "
            f"pass {input_arg}=<image>, or attach with input_arg=<the image's position>"
        )
    return (
        f"there is no tensor at position {input_arg} ({called}): pass the image there, or attach with "
        "input_arg=<the image's position or keyword name>"
    )


def _placement(t: torch.Tensor) -> str:
    return f"{t.device}/{str(t.dtype).replace('torch.', '')}"


def _move_hint(t: torch.Tensor) -> str:
    return f"inj.to(device='{t.device}', dtype={t.dtype})"
