"""Period-aligned learning rate and period-start callbacks."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts
from torch.utils.hooks import RemovableHandle

from mio_strategies.curriculum._schedule import Curriculum
from mio_strategies.tasks import Task
from mio_strategies.utils.validation import finite_float, is_int

PAPER_LR = 2e-4
PAPER_ETA_MIN = 1e-7


def period_cosine_lr(
    optimizer: torch.optim.Optimizer,
    curriculum: Curriculum | int,
    *,
    eta_min: float = PAPER_ETA_MIN,
    last_iteration: int = -1,
) -> CosineAnnealingWarmRestarts:
    """The paper's learning rate: a cosine from the optimizer's lr down to ``eta_min``, restarted every period.

    Built from torch's own ``CosineAnnealingWarmRestarts(T_0=iterations_per_period, T_mult=1)``; call
    ``scheduler.step()`` once per iteration, after ``optimizer.step()``. The paper uses
    ``Adam(lr=2e-4, betas=(0.9, 0.99))`` and ``eta_min=1e-7``.

    Args:
        optimizer: the optimizer; its ``lr`` (per parameter group) is the peak of every period.
        curriculum: the :class:`Curriculum` (its ``iterations_per_period``) or the period length.
        eta_min: the floor of every period. Paper: 1e-7.
        last_iteration: torch's ``last_epoch``; leave at -1 and restore ``scheduler.state_dict()`` to resume.

    Returns:
        The ``CosineAnnealingWarmRestarts`` scheduler.

    Raises:
        TypeError: not an optimizer / curriculum.
        ValueError: ``eta_min`` negative or not below every group's lr, or a non-positive period.

    Example:
        >>> import torch
        >>> opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=2e-4)
        >>> sched = period_cosine_lr(opt, Curriculum("SB", periods=2, iterations_per_period=4))
        >>> lrs = []
        >>> for _ in range(8):
        ...     lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
        >>> lrs[0] == lrs[4] == 2e-4 and lrs[3] < 1e-4
        True
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if isinstance(curriculum, Curriculum):
        period = curriculum.iterations_per_period
    elif is_int(curriculum):
        period = curriculum
        if period <= 0:
            raise ValueError(f"the period length must be a positive int, got {period}")
    else:
        raise TypeError(f"curriculum must be a Curriculum or a period length (int), got {type(curriculum).__name__}")
    finite_float("eta_min", eta_min, low=0, type_error=False)
    for i, group in enumerate(optimizer.param_groups):
        lr = group.get("initial_lr", group["lr"])
        if not lr > eta_min:
            raise ValueError(
                f"parameter group {i} has lr {lr} <= eta_min {eta_min}: the cosine decays from the optimizer's lr "
                "down to eta_min, so give an lr above it (paper: lr=2e-4, eta_min=1e-7)"
            )
    return CosineAnnealingWarmRestarts(optimizer, T_0=period, T_mult=1, eta_min=eta_min, last_epoch=last_iteration)


@dataclass(frozen=True)
class PeriodStart:
    """What a period-start callback receives.

    Attributes:
        period: 0-based period that starts.
        iteration: its first iteration.
        active_tasks: tasks active during the period.
        new_tasks: tasks entering at this period (empty once all have entered).
    """

    period: int
    iteration: int
    active_tasks: tuple[Task, ...]
    new_tasks: tuple[Task, ...]


Callback = Callable[[PeriodStart], Any]


class CurriculumCallbacks:
    """Run user callbacks at period starts, driven by the training loop's iteration counter.

    Call :meth:`step` with the 0-based iteration at the top of every iteration. Callbacks registered with
    :meth:`on_period_start` fire at the first iteration of every period; those registered with
    :meth:`on_stage_start` only when new tasks enter (what the reference's chained runs restarted at).
    A run resumed mid-period fires nothing until the next period; each period fires at most once.

    Args:
        curriculum: the :class:`Curriculum` whose periods drive the callbacks.

    Example:
        >>> import torch
        >>> c = Curriculum("SB", periods=3, iterations_per_period=2)
        >>> opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        >>> hooks = CurriculumCallbacks(c)
        >>> seen = []
        >>> h1 = hooks.on_period_start(lambda e: seen.append(e.period))
        >>> h2 = hooks.on_stage_start(reset_optimizer_state(opt))
        >>> for t in range(c.total_iterations):
        ...     _ = hooks.step(t)
        >>> seen
        [0, 1, 2]
    """

    def __init__(self, curriculum: Curriculum) -> None:
        if not isinstance(curriculum, Curriculum):
            raise TypeError(f"curriculum must be a Curriculum, got {type(curriculum).__name__}")
        self.curriculum = curriculum
        self._period_hooks: OrderedDict[int, Callback] = OrderedDict()
        self._stage_hooks: OrderedDict[int, Callback] = OrderedDict()
        self._fired: set[int] = set()

    def _register(self, hooks: OrderedDict[int, Callback], fn: Callback) -> RemovableHandle:
        if not callable(fn):
            raise TypeError(f"callback must be callable (taking a PeriodStart), got {type(fn).__name__} {fn!r}")
        handle = RemovableHandle(hooks)
        hooks[handle.id] = fn
        return handle

    def on_period_start(self, fn: Callback) -> RemovableHandle:
        """Register ``fn(event: PeriodStart)`` for every period start; ``handle.remove()`` unregisters it."""
        return self._register(self._period_hooks, fn)

    def on_stage_start(self, fn: Callback) -> RemovableHandle:
        """Register ``fn(event: PeriodStart)`` for period starts where new tasks enter."""
        return self._register(self._stage_hooks, fn)

    def step(self, iteration: int) -> PeriodStart | None:
        """Fire the callbacks if ``iteration`` starts a period not yet fired.

        Returns:
            The :class:`PeriodStart` event when one fired, else ``None``.

        Raises:
            ValueError: iteration outside the run.
        """
        c = self.curriculum
        period = c.period_of(iteration)
        if iteration != period * c.iterations_per_period or period in self._fired:
            return None
        self._fired.add(period)
        event = PeriodStart(period, iteration, c.active_tasks(iteration), c.new_tasks(period))
        for fn in list(self._period_hooks.values()):
            fn(event)
        if event.new_tasks:
            for fn in list(self._stage_hooks.values()):
                fn(event)
        return event


def reset_optimizer_state(optimizer: torch.optim.Optimizer) -> Callback:
    """A callback that clears ``optimizer``'s state (Adam moments, step counts) but keeps its lr and groups.

    Example:
        >>> import torch
        >>> p = torch.zeros(1, requires_grad=True)
        >>> opt = torch.optim.Adam([p]); p.grad = torch.ones(1); opt.step()
        >>> reset_optimizer_state(opt)(None); len(opt.state)
        0
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")

    def _reset(event: PeriodStart | None) -> None:
        optimizer.state.clear()

    return _reset
