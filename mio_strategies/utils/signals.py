"""SIGINT and SIGTERM as something a long command can act on: a flag checked between steps, or an exception
that runs the cleanup code (``finally``) a bare SIGTERM would skip."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["Interrupted", "StopRequest", "exit_code", "interrupt_on_signals", "stop_on_signals"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


class Interrupted(KeyboardInterrupt):
    """The process received SIGINT or SIGTERM; ``signum`` says which (a KeyboardInterrupt, so code that
    handles Ctrl-C handles SIGTERM the same way)."""

    def __init__(self, signum: int, message: str = "") -> None:
        self.signum = signum
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (a worker process's error reaches its parent intact)
        return (type(self), (self.signum, str(self)))


def exit_code(signum: int) -> int:
    """The shell's exit status of a process stopped by ``signum``: 128 + its number (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(signum)


class StopRequest:
    """Set by :func:`stop_on_signals` when a signal arrives: ``signum`` (None until then)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Within the block, the first SIGINT or SIGTERM only sets the yielded :class:`StopRequest`, so a loop
    can finish its current step and save; a second one stops at once (KeyboardInterrupt for SIGINT, the
    default action for SIGTERM). The previous handlers are restored afterwards. Outside the main thread
    (where Python cannot install handlers) nothing is installed and the request stays unset.

    Example:
        >>> with stop_on_signals() as stop:
        ...     for step in range(3):
        ...         if stop:
        ...             break
    """
    request = StopRequest()
    if not _main_thread():
        yield request
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        if request.signum is not None:  # the second signal: stop now
            for s, h in previous.items():
                signal.signal(s, h)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.raise_signal(signum)
            return
        request.signum = signum

    for s in _SIGNALS:
        previous[s] = signal.signal(s, handler)
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted`, so ``finally`` blocks and
    ``except BaseException`` cleanups run (a default SIGTERM ends the process without them). Main thread only;
    elsewhere nothing is installed.

    Example:
        >>> with interrupt_on_signals():
        ...     pass
    """
    if not _main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
