"""Modulation: the per-target scale and shift maps, applied to a target's output ``out * (1 + scale) + shift``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from ._channel_axes import _axis_hint
from ._hooks import _autocast_enabled, _in_backward, _move_hint, _placement, _TargetHook
from ._init import make_layer
from ._targets import channel_axis

if TYPE_CHECKING:  # for annotations only: _injector imports this module, a runtime import would be a cycle
    from ._injector import PromptInjector


class _Modulator(nn.Module):
    """Two zero-initialised linear maps from the prompt vector to a channel scale and shift."""

    def __init__(self, embed_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.scale = make_layer(nn.Linear, embed_dim, channels)
        self.shift = make_layer(nn.Linear, embed_dim, channels)
        with torch.no_grad():
            for lin in (self.scale, self.shift):
                lin.weight.zero_()
                lin.bias.zero_()

    def forward(self, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scale(prompt), self.shift(prompt)


def _check_image(self: PromptInjector, image: torch.Tensor) -> None:
    """The adaptive prompt image must be where the extractors are (a clear error, not torch's)."""
    ref = next(self.encoders.parameters(), None)
    if ref is None:
        return
    if not image.is_floating_point():
        raise ValueError(
            f"AdaptivePrompt needs a floating-point image, got dtype {image.dtype}: convert the input, "
            "e.g. x.float() / 255"
        )
    autocast = _autocast_enabled(image.device.type)
    if image.device != ref.device or (image.dtype != ref.dtype and not autocast):
        raise ValueError(
            f"the injector is on {_placement(ref)} but the model input is on {_placement(image)}: move the "
            f"injector with {_move_hint(image)} (attach follows the model's first floating parameter; after "
            "moving the model, move the injector too, or move both with inj.wrap().to(...))"
        )


def _modulate(self: PromptInjector, hook: _TargetHook, out: Any) -> Any:
    if not self._enabled:
        return out
    active = self._active
    if active is None:
        if _in_backward():
            raise RuntimeError(
                f"prompt target {hook.name!r} is being recomputed during backward(): activation checkpointing "
                "(torch.utils.checkpoint) of a module the injector targets, or of a module containing one, is "
                "not supported, because the prompt exists only during the model's call. Do not checkpoint the "
                "modules the injector targets (e.g. turn off the backbone's use_checkpoint option), or "
                "checkpoint the whole model call instead, with backward() inside the `with inj.prompt(...)` "
                "block (or after inj.set_prompt(...))"
            )
        raise RuntimeError(
            f"prompt target {hook.name!r} ran outside a call of the model the injector is attached to; "
            "call the model itself (the prompt is computed at its entry)"
        )
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"target {hook.name!r} returned {type(out).__name__}, not a tensor: target a module whose output "
            "is a tensor (B, C, H, W) or (B, N, C)"
        )
    axis = channel_axis(out.ndim, getattr(hook, "axis", None))  # getattr: hooks pickled before axes
    if axis is None:
        raise ValueError(f"target {hook.name!r} returned shape {tuple(out.shape)}, which has no channel axis")
    mod = cast(_Modulator, self.modulators[hook.key])
    if out.shape[axis] != mod.channels:
        raise ValueError(
            f"target {hook.name!r} returned {out.shape[axis]} channels (axis {axis} of {tuple(out.shape)}), "
            f"but its modulator was built for {mod.channels}"
            + _axis_hint(tuple(out.shape), mod.channels, getattr(hook, "axis", None), None, prefix="; ")
        )
    scale, shift = mod(active[hook.scale_index])
    # an output of lower precision than the modulation would be promoted (refused); a higher one (a float64
    # backbone, an fp32 norm in a bf16 model) keeps its dtype
    if scale.device != out.device or torch.promote_types(out.dtype, scale.dtype) != out.dtype:
        raise ValueError(
            f"target {hook.name!r} returned a {_placement(out)} tensor, but the injector computes its modulation "
            f"on {_placement(scale)}: move the injector with {_move_hint(out)} (attach follows the model's first "
            "floating parameter; after moving the model, move the injector too, or move both with "
            "inj.wrap().to(...))"
        )
    n = scale.shape[0]
    if axis == 1:
        shape = (n, mod.channels) + (1,) * (out.ndim - 2)
    else:
        shape = (n,) + (1,) * (out.ndim - 2) + (mod.channels,)
    return out * (1 + scale.view(shape)) + shift.view(shape)
