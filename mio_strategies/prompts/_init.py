"""Seeded initialisation of layers (the global RNG is never touched)."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def make_layer(cls: type[M], *args: Any, **kwargs: Any) -> M:
    """Build a layer without running its default (global-RNG) initialisation."""
    return nn.utils.skip_init(cls, *args, **kwargs)


@torch.no_grad()
def seeded_init_(module: nn.Module, generator: torch.Generator) -> None:
    """Initialise every conv/linear of ``module`` like PyTorch's default, drawing from ``generator``.

    The default is ``kaiming_uniform_(a=sqrt(5))`` for weights, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    and the same bound for biases.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            fan_in = m.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            w = torch.rand(m.weight.shape, generator=generator, dtype=torch.float32) * 2 - 1
            m.weight.copy_(w * bound)
            if m.bias is not None:
                b = torch.rand(m.bias.shape, generator=generator, dtype=torch.float32) * 2 - 1
                m.bias.copy_(b * bound)


def default_generator(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def check_generator(generator: Any, where: str = "generator") -> None:
    """Refuse anything but a CPU ``torch.Generator`` (or ``None``), naming the fix.

    Raises:
        TypeError: ``generator`` is not a ``torch.Generator``.
        ValueError: a generator of another device (the initial weights are drawn on the CPU).
    """
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{where} must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None, "
            f"got {type(generator).__name__} {generator!r}"
        )
    if generator.device.type != "cpu":
        raise ValueError(
            f"{where} must be a CPU torch.Generator (initial weights are drawn on the CPU, then moved with the "
            f"model), got one on {generator.device}: use torch.Generator().manual_seed(seed)"
        )
