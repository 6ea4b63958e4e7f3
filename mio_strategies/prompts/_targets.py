"""Choosing target modules (exact name, name suffix, full-match regex, module type) and their channels."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Union

from torch import nn

from mio_strategies.utils.validation import is_int, positive_int

TargetElement = Union[str, "re.Pattern[str]", type]
TargetSpec = Union[TargetElement, Sequence[TargetElement]]


def as_elements(targets: Any, where: str = "targets") -> list[TargetElement]:
    """Normalise a target spec to a list of elements, checking their types."""
    if isinstance(targets, (str, re.Pattern, type)):
        items = [targets]
    elif isinstance(targets, Sequence) and not isinstance(targets, (bytes, bytearray)):
        items = list(targets)
    else:
        raise TypeError(
            f"{where} must be a module name, a name suffix, a compiled regex, an nn.Module subclass, "
            f"or a list of them; got {type(targets).__name__}"
        )
    if not items:
        raise ValueError(f"{where} is empty: name at least one module")
    for item in items:
        if isinstance(item, type):
            if not issubclass(item, nn.Module):
                raise TypeError(f"{where}: the type {item.__name__} is not an nn.Module subclass")
        elif not isinstance(item, (str, re.Pattern)):
            raise TypeError(f"{where}: {item!r} is not a name, a compiled regex or an nn.Module subclass")
        elif isinstance(item, str) and not item:
            raise ValueError(f"{where}: the empty name would target the whole model; name a submodule")
    return items


def _describe(element: TargetElement) -> str:
    if isinstance(element, type):
        return f"type {element.__name__}"
    if isinstance(element, re.Pattern):
        return f"regex {element.pattern!r}"
    return repr(element)


def _matches(element: TargetElement, name: str, module: nn.Module) -> bool:
    if isinstance(element, type):
        return isinstance(module, element)
    if isinstance(element, re.Pattern):
        return element.fullmatch(name) is not None
    return name == element or name.endswith("." + element)


def closest_names(query: str, names: Sequence[str], n: int = 6) -> list[str]:
    """The module names closest to ``query`` (difflib), for error messages."""
    close = difflib.get_close_matches(query, names, n=n, cutoff=0.4)
    if not close:
        tails = {nm.rsplit(".", 1)[-1]: nm for nm in names}
        close = [tails[t] for t in difflib.get_close_matches(query.rsplit(".", 1)[-1], list(tails), n=n, cutoff=0.4)]
    return close or list(names[:n])


def resolve(model: nn.Module, elements: Sequence[TargetElement], where: str = "targets") -> list[str]:
    """Names of the submodules of ``model`` matched by ``elements``, in the model's module order.

    Raises:
        ValueError: an element matches nothing (the message lists the closest module names).
    """
    named = [(n, m) for n, m in model.named_modules() if n]
    names = [n for n, _ in named]
    chosen: list[str] = []
    for element in elements:
        hits = [n for n, m in named if _matches(element, n, m)]
        if not hits:
            query = element.pattern if isinstance(element, re.Pattern) else (
                element.__name__ if isinstance(element, type) else element
            )
            hint = ""
            if isinstance(element, str) and any(c in element for c in "*+?[]()\\|^$"):
                hint = " (strings match exact names or name suffixes; pass re.compile(...) for a regex)"
            raise ValueError(
                f"{where}: {_describe(element)} matched no module of {type(model).__name__}{hint}; "
                f"closest module names: {', '.join(repr(c) for c in closest_names(query, names))}"
            )
        chosen.extend(h for h in hits if h not in chosen)
    order = {n: i for i, n in enumerate(names)}
    return sorted(chosen, key=order.__getitem__)


def channels_from_module(module: nn.Module) -> int | None:
    """The output channel count a standard layer declares, or None when it cannot be known statically."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return int(module.out_channels)
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)):
        return int(module.num_features)
    if isinstance(module, nn.GroupNorm):
        return int(module.num_channels)
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        return int(module.normalized_shape[0])
    return None


_CHANNELS_FIRST = (
    nn.modules.conv._ConvNd,  # Conv1d/2d/3d, ConvTranspose1d/2d/3d (and their lazy forms): (B, C, *)
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
)


def declared_channel_axis(module: nn.Module) -> int | None:
    """The channel axis a standard layer's output has (1: channels first, -1: last), or None if unknown."""
    if isinstance(module, _CHANNELS_FIRST):
        return 1
    if isinstance(module, nn.Linear) or (isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1):
        return -1
    return None  # e.g. LayerNorm([C, H, W]): from the output's ndim


def channel_axis(ndim: int, declared: int | None = None) -> int | None:
    """Where the channels lie in an output of ``ndim`` dimensions.

    ``declared`` (from :func:`declared_channel_axis`) wins for any output with a batch axis (ndim >= 2):
    a ``Conv1d``'s ``(B, C, L)`` is channels-first, a ``Linear``'s ``(B, H, W, C)`` channels-last.
    Otherwise (modules of unknown type): ``(B, N, C)`` tokens -> -1; ``(B, C)``, ``(B, C, H, W)``,
    ``(B, C, D, H, W)`` -> 1.
    """
    if declared is not None:
        return declared if ndim >= 2 else None
    if ndim == 3:
        return -1
    if ndim in (2, 4, 5):
        return 1
    return None


def _per_target(spec: Any, names: Sequence[str], where: str, what: str) -> dict[str, Any]:
    """Spread ``spec`` (one value for every target, or a mapping name -> value) over the targets ``names``."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        return dict.fromkeys(names, spec)
    unknown = [k for k in spec if k not in names]
    if unknown:
        raise ValueError(f"{where}: {what} given for {unknown}, which are not targets (targets: {list(names)})")
    return dict(spec)


def explicit_channels(channels: Any, names: Sequence[str], where: str) -> dict[str, int]:
    """Validate ``channels`` (an int for every target, or a mapping name -> int) into a dict."""
    items = _per_target(channels, names, where, "channels")
    for k, v in items.items():
        positive_int(f"{where}: channels of {k!r}", v)
    return items


def explicit_axes(channel_axis: Any, names: Sequence[str], where: str) -> dict[str, int]:
    """Validate ``channel_axis`` (1 or -1 for every target, or a mapping name -> 1 / -1) into a dict."""
    items = _per_target(channel_axis, names, where, "channel_axis")
    for k, v in items.items():
        if not is_int(v) or v not in (1, -1):
            raise ValueError(
                f"{where}: channel_axis of {k!r} must be 1 (channels first, (B, C, ...)) or -1 (channels last, "
                f"(B, ..., C)), got {v!r}"
            )
    return items
