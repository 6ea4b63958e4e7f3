"""Dry run: one no-grad, eval-mode call of the model that reads each target's output channels and shape."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ._targets import channel_axis


def _dry_run(
    model: nn.Module,
    names: list[str],
    example_input: Any,
    axes: Mapping[str, int | None] | None = None,
    shapes_out: dict[str, tuple[int, ...]] | None = None,
) -> dict[str, int]:
    """Run ``model`` once (no grad, eval mode, restored after) and read each target's channel count
    (and, into ``shapes_out``, each target's output shape)."""
    modules = dict(model.named_modules())
    shapes: dict[str, Any] = {}

    def recorder(name: str) -> Callable[[nn.Module, tuple, Any], None]:
        def hook(_m: nn.Module, _a: tuple, out: Any) -> None:
            shapes.setdefault(name, out)

        return hook

    args = example_input if isinstance(example_input, tuple) else (example_input,)
    modes = {m: m.training for m in model.modules()}
    handles = [modules[n].register_forward_hook(recorder(n)) for n in names]
    try:
        model.eval()
        with torch.no_grad():
            model(*args)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    out: dict[str, int] = {}
    for n in names:
        if n not in shapes:
            raise ValueError(
                f"target {n!r} did not run during the dry run on example_input; target modules that forward() calls"
            )
        value = shapes[n]
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"target {n!r} ({type(modules[n]).__name__}) returns {type(value).__name__}, not a tensor: "
                "target a module whose output is a tensor (B, C, H, W) or (B, N, C)"
            )
        axis = channel_axis(value.ndim, (axes or {}).get(n))
        if axis is None:
            raise ValueError(
                f"target {n!r} ({type(modules[n]).__name__}) returns shape {tuple(value.shape)}, which has no channel "
                "axis: target a module whose output is (B, C), (B, C, H, W), (B, C, D, H, W) or (B, N, C)"
            )
        out[n] = int(value.shape[axis])
        if shapes_out is not None:
            shapes_out[n] = tuple(value.shape)
    return out
