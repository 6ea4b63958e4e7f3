"""Training speed options of the harness: autocast precision, ``torch.compile``, channels-last memory format."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["COMPILE_MODES", "PRECISIONS", "Acceleration", "check_compile", "check_precision"]

PRECISIONS = ("fp32", "bf16", "fp16")
"""Autocast precisions of the forward pass (parameters, optimizer and EMA stay float32)."""

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
"""``torch.compile`` modes of the ``compile`` key (``False``: eager)."""
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(value: Any) -> str:
    """``value`` if it names a precision, else a ValueError listing them."""
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {value!r}")
    return value


def check_compile(value: Any) -> str | bool:
    """``False`` (eager) or a compile mode; ``True`` means ``"default"``. Anything else: a ValueError."""
    if value is False or value is None:
        return False
    if value is True:
        return "default"
    if isinstance(value, str) and value in COMPILE_MODES:
        return value
    raise ValueError(f"compile must be false or one of {list(COMPILE_MODES)}, got {value!r}")


class Acceleration:
    """What a training step does for ``precision``, ``compile`` and ``channels_last`` on ``device``.

    ``fp32`` with compile off and channels-last off does exactly what the plain loop does (no autocast,
    no scaler, no conversion). ``bf16`` autocasts the forward pass; ``fp16`` also scales the loss with
    ``torch.amp.GradScaler`` (its state goes into the checkpoint, so a resumed run continues exactly).
    ``compile`` compiles the backbone in place (``nn.Module.compile``: its ``__call__``, forward hooks and
    so the prompt injector's included; parameter names and state dicts unchanged).

    Args:
        precision: ``fp32``, ``bf16`` or ``fp16``.
        compile: ``False`` or a ``torch.compile`` mode.
        channels_last: convert the backbone and the inputs to ``torch.channels_last``.
        device: the training device.

    Example:
        >>> acc = Acceleration("bf16", False, False, torch.device("cpu"))
        >>> with acc.autocast():
        ...     y = torch.nn.Linear(4, 4)(torch.rand(2, 4))
        >>> y.dtype
        torch.bfloat16
    """

    def __init__(self, precision: str, compile: str | bool, channels_last: bool, device: torch.device) -> None:
        self.precision = check_precision(precision)
        self.compile = check_compile(compile)
        self.channels_last = bool(channels_last)
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def prepare(self, restorer: Any) -> None:
        """Convert (channels-last) and compile the restorer's backbone in place, before its optimizer is built."""
        if self.channels_last:
            for m in restorer.modules():
                m.to(memory_format=torch.channels_last)
        if self.compile:
            restorer.backbone.compile(mode=self.compile)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format the backbone expects."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast to the precision's dtype inside the block (nothing for fp32)."""
        if self.precision == "fp32":
            yield
            return
        with torch.autocast(self.device.type, dtype=_DTYPES[self.precision]):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled for fp16."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Optimizer step (skipped by the fp16 scaler on inf/NaN gradients, as GradScaler does), then the
        scheduler's step."""
        if self.scaler is None:
            optimizer.step()
            scheduler.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
        with warnings.catch_warnings():  # a step the scaler skipped makes the scheduler warn; the schedule goes on
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            scheduler.step()

    def state_dict(self) -> dict[str, Any] | None:
        """The GradScaler's state (fp16), else None."""
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore the GradScaler's state; a checkpoint of another precision (no scaler state) starts a fresh one."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
