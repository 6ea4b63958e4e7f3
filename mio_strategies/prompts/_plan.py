"""Target planning: the U-Net scale description, and the resolution of targets into per-scale plans."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..utils.validation import positive_int
from ._channel_axes import _axis_hint, _check_axis, _warn_if_channels_look_last
from ._dry_run import _dry_run
from ._hooks import _pick_input
from ._sources import AdaptivePrompt, PromptSource
from ._targets import (
    TargetSpec,
    as_elements,
    channel_axis,
    channels_from_module,
    declared_channel_axis,
    explicit_axes,
    explicit_channels,
    resolve,
)

PARTS: tuple[str, ...] = ("encoder", "latent", "decoder", "output")
"""The parts of a U-Net a :class:`PromptScale` can belong to, from input to output."""
DEFAULT_PARTS: tuple[str, ...] = ("latent", "decoder", "output")


@dataclass(frozen=True)
class PromptScale:
    """One scale of a U-Net (in the spirit of timm's ``feature_info``): which modules, their channels.

    Args:
        targets: modules of this scale, by exact name, name suffix, compiled regex or module type.
        channels: output channels of every target (an int), or a mapping name -> channels; ``None``
            takes them from the modules or from a dry run on ``example_input``.
        part: ``"encoder"``, ``"latent"``, ``"decoder"`` or ``"output"``. By default only the latent,
            decoder and output scales are injected (the paper's decoder-side injection).
        reduction: spatial reduction of this scale relative to the input (informational).
        name: a label for reports (defaults to ``scale<i>``).
        channel_axis: where the targets' outputs hold their channels, ``1`` (``(B, C, ...)``) or ``-1``
            (``(B, ..., C)``, e.g. a block working on channels-last ``(B, H, W, C)`` features), for every
            target or as a mapping name -> axis; ``None`` follows the module type, else the output's shape.

    Raises:
        ValueError: an unknown ``part`` or a non-positive ``reduction``.

    Example:
        >>> PromptScale("decoder_level1", part="decoder", reduction=1).part
        'decoder'
    """

    targets: TargetSpec
    channels: int | Mapping[str, int] | None = None
    part: str = "decoder"
    reduction: int | None = None
    name: str | None = None
    channel_axis: int | Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if self.part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {self.part!r}")
        if self.reduction is not None:
            positive_int("reduction", self.reduction, note=" or None")


@dataclass
class _ScalePlan:
    name: str
    part: str
    reduction: int | None
    targets: list[tuple[str, str, int]] = field(default_factory=list)  # (module name, key, channels)
    # module name -> channel axis its type declares (1 or -1), None: from the output's ndim. Not part of
    # config() / the state dict: it follows from the backbone's module types, read again at every attach.
    axes: dict[str, int | None] = field(default_factory=dict)
    # module name -> channel axis the user gave (channel_axis=): part of config(), kept by copy_for
    given_axes: dict[str, int] = field(default_factory=dict)


def _key(name: str) -> str:
    return name.replace(".", "__")


def _plan_for(
    model: nn.Module,
    prompt: PromptSource,
    targets: Any,
    scales: Any,
    parts: Any,
    channels: Any,
    example_input: Any,
    input_arg: int | str = 0,
    position: Any = None,
    axis_spec: Any = None,
) -> list[_ScalePlan]:
    if (targets is None) == (scales is None):
        raise ValueError("give either targets= (one scale) or scales= (a list of PromptScale), not both or neither")
    if scales is not None:
        if isinstance(scales, PromptScale) or not isinstance(scales, Sequence) or not scales:
            raise TypeError("scales must be a non-empty list of PromptScale")
        for s in scales:
            if not isinstance(s, PromptScale):
                raise TypeError(f"scales must hold PromptScale entries, got {type(s).__name__}")
        if channels is not None:
            raise ValueError("with scales=, give channels inside each PromptScale(channels=...)")
        if axis_spec is not None:
            raise ValueError("with scales=, give channel_axis inside each PromptScale(channel_axis=...)")
        parts = tuple(parts) if not isinstance(parts, str) else (parts,)
        bad = [p for p in parts if p not in PARTS]
        if bad or not parts:
            raise ValueError(f"parts must be a non-empty subset of {PARTS}, got {parts!r}")
        entries = list(scales)
    else:
        entries = [PromptScale(targets, channels=channels, part="decoder", name="scale0", channel_axis=axis_spec)]
        parts = ("decoder",)

    # resolve names (every entry, injected or not, so that typos are reported)
    plans: list[tuple[_ScalePlan, dict[str, int]]] = []
    modules = dict(model.named_modules())
    owner: dict[str, str] = {}
    for i, entry in enumerate(entries):
        label = entry.name or f"scale{i}"
        where = "targets" if scales is None else f"scales[{i}] ({label})"
        names = resolve(model, as_elements(entry.targets, where), where)
        for n in names:
            if n in owner:
                raise ValueError(
                    f"module {n!r} is targeted twice (in {owner[n]} and {label}); each module belongs to one scale"
                )
            owner[n] = label
        given = explicit_channels(entry.channels, names, where)
        given_axes = explicit_axes(entry.channel_axis, names, where)
        for n, a in given_axes.items():
            _check_axis(n, modules[n], a)
        if entry.part in parts:
            plan = _ScalePlan(
                label, entry.part, entry.reduction, [(n, _key(n), 0) for n in names], given_axes=given_axes
            )
            plans.append((plan, given))
    if not plans:
        raise ValueError(f"no scale has a part in {parts!r}: parts of the scales are {[e.part for e in entries]}")

    keys: dict[str, str] = {}
    for sp, _ in plans:
        for n, k, _c in sp.targets:
            if k in keys:
                raise ValueError(
                    f"modules {keys[k]!r} and {n!r} map to the same parameter key {k!r}; target one of them"
                )
            keys[k] = n

    axes = {n: sp.given_axes.get(n, declared_channel_axis(modules[n])) for sp, _ in plans for n, _k, _c in sp.targets}
    for sp, _ in plans:
        sp.axes = {n: axes[n] for n, _k, _c in sp.targets}
    shapes: dict[str, tuple[int, ...]] = {}
    seen = _dry_run(model, list(axes), example_input, axes, shapes) if example_input is not None else {}
    if example_input is not None and isinstance(prompt, AdaptivePrompt):
        # the image is found with the same rule as at every call (input_arg)
        args = example_input if isinstance(example_input, tuple) else (example_input,)
        value = _pick_input(args, {}, input_arg, position)
        if value is not None or not isinstance(input_arg, str):  # a keyword-only image: not in example_input
            prompt.context(value if isinstance(value, torch.Tensor) else None, None)

    missing: list[str] = []
    for sp, given in plans:
        resolved = []
        for n, k, _c in sp.targets:
            from_module = channels_from_module(modules[n])
            declared = given.get(n, from_module)
            observed = seen.get(n)
            if declared is not None and observed is not None and declared != observed:
                raise ValueError(
                    f"target {n!r} ({type(modules[n]).__name__}): channels {declared} given or declared by the module, "
                    f"but its output has {observed} channels in the dry run (shape {shapes[n]}, channel axis "
                    f"{channel_axis(len(shapes[n]), axes[n])}); fix channels="
                    + _axis_hint(shapes[n], declared, axes[n], sp.given_axes.get(n))
                )
            if n in given and from_module is not None and given[n] != from_module:
                raise ValueError(
                    f"target {n!r} ({type(modules[n]).__name__}): channels {given[n]} given, but the module declares "
                    f"{from_module} output channels; fix channels= (or leave it out for this module)"
                )
            ch = declared if declared is not None else observed
            if ch is None:
                missing.append(n)
            resolved.append((n, k, ch or 0))
        sp.targets = resolved
    if missing:
        raise ValueError(
            f"cannot tell the output channels of {missing}: pass example_input=<a model input> for a dry run, "
            "or channels= (an int, or a mapping name -> int)"
        )
    if seen:  # after the errors: a wrong channels= is reported as such, not as this warning
        args = example_input if isinstance(example_input, tuple) else (example_input,)
        image = _pick_input(args, {}, input_arg, position)
        for n in seen:
            if axes[n] is None:  # a module type that declares no channel axis, and none given
                _warn_if_channels_look_last(n, modules[n], shapes[n], image)
    return [sp for sp, _ in plans]


def _scale_config(sp: _ScalePlan) -> dict[str, Any]:
    out: dict[str, Any] = {"name": sp.name, "part": sp.part, "targets": [[n, c] for n, _k, c in sp.targets]}
    given_axes = getattr(sp, "given_axes", {})
    if given_axes:  # only when given: configurations (and state dicts) saved before channel_axis= still match
        out["channel_axis"] = {n: given_axes[n] for n, _k, _c in sp.targets if n in given_axes}
    return out
