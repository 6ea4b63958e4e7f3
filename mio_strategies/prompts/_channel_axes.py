"""Channel-axis heuristics: checks of a given ``channel_axis`` and hints when channels look misplaced."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ._targets import channel_axis, declared_channel_axis


def _check_axis(name: str, module: nn.Module, axis: int) -> None:
    """Refuse a given ``channel_axis`` that contradicts the axis the module's type puts its channels on."""
    declared = declared_channel_axis(module)
    if declared is not None and declared != axis:
        where = "first, axis 1" if declared == 1 else "last, axis -1"
        raise ValueError(
            f"target {name!r} ({type(module).__name__}): channel_axis={axis} given, but a "
            f"{type(module).__name__}'s output has its channels {where}; leave channel_axis out for this module"
        )


def _axis_hint(shape: tuple[int, ...], channels: int, axis: int | None, given: int | None, prefix: str = " ") -> str:
    """A hint to pass channel_axis= when the channels were looked for on the default axis of an output of
    unknown layout (1 for 4-/5-D, -1 for 3-D) but the other axis has them."""
    default = channel_axis(len(shape), None)
    if given is not None or axis is not None or default is None or len(shape) < 3:
        return ""
    other = -1 if default == 1 else 1
    if shape[other] == channels and shape[default] != channels:
        layout = "channels-last output (B, ..., C)" if other == -1 else "channels-first output (B, C, ...)"
        return (
            f"{prefix}(axis {other} has {channels}: for a {layout}, pass channel_axis={other}, "
            f"or inside PromptScale(channel_axis={other}) with scales=)"
        )
    example = "channels-last (B, H, W, C)" if default == 1 else "channels-first (B, C, L)"
    return (
        f"{prefix}(channels are read on axis {default} of this module's output; if it holds them on another axis, "
        f"e.g. {example}, attach with channel_axis=)"
    )


def _warn_if_channels_look_last(name: str, module: nn.Module, shape: tuple[int, ...], image: Any) -> None:
    """Warn when a module of unknown type returned a 4-D output whose axes 1-2, not its last two, have the
    input's height and width divided by one factor: channels-last ``(B, H, W, C)`` read as channels first."""
    if len(shape) != 4 or not isinstance(image, torch.Tensor) or image.ndim != 4:
        return
    h, w = image.shape[-2:]

    def spatial(a: int, b: int) -> bool:  # the input's size, reduced or enlarged (an upsampler) by one factor
        return any(
            (h % f == 0 and w % f == 0 and (a, b) == (h // f, w // f)) or (a, b) == (h * f, w * f)
            for f in (1, 2, 3, 4, 8, 16, 32, 64)
        )

    if spatial(shape[1], shape[2]) and not spatial(shape[2], shape[3]):
        warnings.warn(
            f"prompt target {name!r} ({type(module).__name__}) returned {shape} for a {h}x{w} input: its axes 1-2 "
            f"look spatial, so its channels may be last, but they are read on axis 1 ({shape[1]} channels). For a "
            f"channels-last module pass channel_axis=-1; channel_axis=1 confirms channels first and silences this",
            stacklevel=4,
        )
