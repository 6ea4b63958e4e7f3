"""The curriculum schedule: which tasks are active at each iteration of a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union, cast

from mio_strategies.tasks import TASK_COLORS, Task, get_task, parse_tasks
from mio_strategies.utils.validation import int_in_range, is_int, positive_int

OrderLike = Union[str, Sequence[str | int | Task | Sequence[str | int | Task]]]

PAPER_ORDERS: dict[str, str] = {
    "SBNJRHL": "SRResNet and SwinIR (the paper's default order)",
    "RJBSNHL": "Restormer, Uformer and PromptIR (U-Net backbones)",
}
"""The paper's two task orders for sequential learning -> the backbones it uses each with."""


def parse_stages(order: OrderLike) -> tuple[tuple[Task, ...], ...]:
    """Parse an order into stages (groups of tasks entering together).

    Args:
        order: task letters or names (``"SBNJRHL"``, ``"sr,blur"``), groups separated by ``|``
            (``"SB|NJ|R|H|L"``), or a sequence of tasks / groups of tasks.

    Returns:
        One tuple of :class:`~mio_strategies.tasks.Task` per stage.

    Raises:
        ValueError: an empty order or group, an unknown task, a task named twice.

    Example:
        >>> [[t.letter for t in stage] for stage in parse_stages("SB|N")]
        [['S', 'B'], ['N']]
    """
    stages: list[tuple[Task, ...]]
    if isinstance(order, str):
        text = order.strip()
        if not text:
            raise ValueError("empty order: give letters such as 'SBNJRHL', names such as 'sr,blur', or groups 'SB|NJ'")
        if "|" in text:
            parts = [p.strip() for p in text.split("|")]
            empty = [i for i, p in enumerate(parts) if not p]
            if empty:
                raise ValueError(f"empty group at position {empty[0]} in order {order!r}: remove the extra '|'")
            stages = [parse_tasks(p) for p in parts]
        else:
            stages = [(t,) for t in parse_tasks(text)]
    elif isinstance(order, Iterable):
        stages = []
        for item in order:
            if isinstance(item, str):
                # read as the string form reads it: "S" and "noise" are one task, "SR" is a group (sr, rain)
                # as in "SR|B", "sr" is super-resolution (lower case: a name first), "sr,blur" a group
                stages.append(parse_tasks(item))
            elif isinstance(item, Task) or hasattr(item, "__index__"):
                stages.append((get_task(cast("int | Task", item)),))
            elif isinstance(item, Iterable):
                stages.append(parse_tasks(list(item)))
            else:
                raise TypeError(f"order items must be tasks or groups of tasks, got {type(item).__name__} {item!r}")
        if not stages:
            raise ValueError("empty order: give at least one task")
    else:
        raise TypeError(f"order must be a string such as 'SBNJRHL' or a sequence of tasks, got {type(order).__name__}")
    seen: set[int] = set()
    dups = []
    for stage in stages:
        for task in stage:
            if task.id in seen:
                dups.append(task.name)
            seen.add(task.id)
    if dups:
        raise ValueError(f"duplicate tasks {dups} in order {order!r}: each task may appear once")
    return tuple(stages)


def _stage_text(stage: Sequence[Task]) -> str:
    return "".join(t.letter for t in stage)


class Curriculum:
    """A task schedule over equal cosine periods: which tasks are active at every iteration.

    The order is split into stages (one task each, or groups written ``"SB|NJ|R|H|L"``). Stage ``k``
    (0-based) enters at the start of period ``k`` and stays until the end, so period ``p`` trains on
    stages ``0..min(p, num_stages - 1)``. The paper's default is 7 single-task stages over 10 periods:
    one task in period 1, one more each period, all seven from period 7. Iterations are 0-based:
    iteration ``t`` is the ``t``-th optimisation step (BasicSR's ``current_iter`` is ``t + 1``).

    Args:
        order: letters (``"SBNJRHL"``), comma-separated names (``"sr,blur,noise"``), groups separated by
            ``"|"`` (``"SB|NJ|R|H|L"``), or a sequence of tasks / groups of tasks.
        periods: number of periods (at least the number of stages). Paper: 10.
        iterations_per_period: length of every period. Paper: 250,000 (SRResNet), 100,000 (SwinIR).

    Raises:
        UnknownTaskError: an unknown letter or name (the message lists the valid tasks).
        ValueError: duplicate tasks, an empty order or group, fewer periods than stages,
            non-positive periods or iterations.
        TypeError: a non-integer count or an order of the wrong type.

    Example:
        >>> c = Curriculum("SBNJRHL", periods=10, iterations_per_period=100)
        >>> [t.letter for t in c.active_tasks(250)]
        ['S', 'B', 'N']
        >>> c.total_iterations, c.as_mixed().total_iterations
        (1000, 1000)
    """

    def __init__(
        self, order: OrderLike = "SBNJRHL", *, periods: int = 10, iterations_per_period: int = 250_000
    ) -> None:
        stages = parse_stages(order)
        periods = positive_int("periods", periods, type_error=True, numpy=True)
        iterations_per_period = positive_int("iterations_per_period", iterations_per_period, type_error=True, numpy=True)
        if periods < len(stages):
            raise ValueError(
                f"periods={periods} is fewer than the {len(stages)} stages of order "
                f"{'|'.join(_stage_text(s) for s in stages)!r}: each stage enters at the start of its own "
                f"period, so give periods >= {len(stages)} (or group tasks with '|')"
            )
        self._stages = stages
        self._periods = periods
        self._ipp = iterations_per_period

    # ----------------------------------------------------------------- constructors
    @classmethod
    def mixed(
        cls, tasks: OrderLike = "SBNJRHL", *, periods: int = 10, iterations_per_period: int = 250_000
    ) -> Curriculum:
        """The mixed baseline: all ``tasks`` active from the first iteration, over the same periods.

        Example:
            >>> Curriculum.mixed("SBN", periods=2, iterations_per_period=5).num_active(0)
            3
        """
        stages = parse_stages(tasks)
        return cls([[t for s in stages for t in s]], periods=periods, iterations_per_period=iterations_per_period)

    def as_mixed(self) -> Curriculum:
        """The mixed baseline of this curriculum: same tasks, periods and total iterations."""
        return Curriculum.mixed(self.tasks, periods=self._periods, iterations_per_period=self._ipp)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Curriculum:
        """Rebuild from :meth:`to_dict`.

        Raises:
            KeyError: a missing or unknown key (the message lists the expected ones).
        """
        expected = {"stages", "periods", "iterations_per_period"}
        missing, unknown = expected - set(data), set(data) - expected
        if missing or unknown:
            raise KeyError(
                f"curriculum dict has missing keys {sorted(missing)} and unknown keys {sorted(unknown)}: "
                f"expected exactly {sorted(expected)}"
            )
        return cls(
            [list(s) for s in data["stages"]], periods=data["periods"], iterations_per_period=data["iterations_per_period"]
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain, YAML/JSON-friendly description (stages as letter strings)."""
        return {
            "stages": [_stage_text(s) for s in self._stages],
            "periods": self._periods,
            "iterations_per_period": self._ipp,
        }

    # ----------------------------------------------------------------- structure
    @property
    def stages(self) -> tuple[tuple[Task, ...], ...]:
        """Groups of tasks in order of entry."""
        return self._stages

    @property
    def tasks(self) -> tuple[Task, ...]:
        """All tasks in order of entry."""
        return tuple(t for s in self._stages for t in s)

    @property
    def num_stages(self) -> int:
        return len(self._stages)

    @property
    def periods(self) -> int:
        return self._periods

    @property
    def iterations_per_period(self) -> int:
        return self._ipp

    @property
    def total_iterations(self) -> int:
        """Iterations of the whole run: ``periods * iterations_per_period``."""
        return self._periods * self._ipp

    @property
    def is_mixed(self) -> bool:
        """True when every task is active from the start (a single stage)."""
        return len(self._stages) == 1

    @property
    def period_starts(self) -> tuple[int, ...]:
        """First iteration of every period: ``(0, T, 2T, ...)``."""
        return tuple(p * self._ipp for p in range(self._periods))

    def active_counts(self) -> tuple[int, ...]:
        """Number of active tasks in each period (tasks are always a prefix of :attr:`tasks`)."""
        sizes = [len(s) for s in self._stages]
        out, acc = [], 0
        for p in range(self._periods):
            if p < len(sizes):
                acc += sizes[p]
            out.append(acc)
        return tuple(out)

    # ----------------------------------------------------------------- queries
    def _check_iteration(self, iteration: int) -> int:
        if not is_int(iteration, numpy=True):
            raise TypeError(f"iteration must be an int, got {type(iteration).__name__} {iteration!r}")
        iteration = int(iteration.__index__())
        if not 0 <= iteration < self.total_iterations:
            raise ValueError(
                f"iteration {iteration} is outside the run: valid iterations are 0..{self.total_iterations - 1} "
                f"({self._periods} periods x {self._ipp} iterations)"
            )
        return iteration

    def period_of(self, iteration: int) -> int:
        """0-based period containing ``iteration``.

        Raises:
            ValueError: iteration outside ``0..total_iterations - 1``.
        """
        return self._check_iteration(iteration) // self._ipp

    def stage_of_period(self, period: int) -> int:
        """Index of the last stage active in ``period`` (0-based)."""
        int_in_range("period", period, 0, self._periods - 1)
        return min(period, len(self._stages) - 1)

    def num_active(self, iteration: int) -> int:
        """Number of tasks active at ``iteration``."""
        return self.active_counts()[self.period_of(iteration)]

    def active_tasks(self, iteration: int) -> tuple[Task, ...]:
        """Tasks active at ``iteration``, in order of entry."""
        return self.tasks[: self.num_active(iteration)]

    def new_tasks(self, period: int) -> tuple[Task, ...]:
        """Tasks that enter at the start of ``period`` (empty once all have entered)."""
        self.stage_of_period(period)
        return self._stages[period] if period < len(self._stages) else ()

    def entry_iteration(self, task: Any) -> int:
        """First iteration at which ``task`` is active.

        Raises:
            KeyError: the task is not in this curriculum.
        """
        t = get_task(task)
        for k, stage in enumerate(self._stages):
            if t in stage:
                return k * self._ipp
        raise KeyError(f"task {t.name!r} is not in curriculum {self.spec!r}: its tasks are {[x.name for x in self.tasks]}")

    # ----------------------------------------------------------------- display
    @property
    def spec(self) -> str:
        """The order as text: ``"SBNJRHL"``, or with groups ``"SB|NJ|R|H|L"``."""
        if all(len(s) == 1 for s in self._stages):
            return "".join(_stage_text(s) for s in self._stages)
        return "|".join(_stage_text(s) for s in self._stages)

    def __repr__(self) -> str:
        if self.is_mixed and len(self._stages[0]) > 1:
            return (
                f"Curriculum.mixed({_stage_text(self._stages[0])!r}, periods={self._periods}, "
                f"iterations_per_period={self._ipp})"
            )
        return f"Curriculum({self.spec!r}, periods={self._periods}, iterations_per_period={self._ipp})"

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """A table: one row per period with its iterations and active tasks (new ones marked ``+``).

        Example:
            >>> print(Curriculum("SB|N", periods=3, iterations_per_period=10).describe())  # doctest: +NORMALIZE_WHITESPACE
            Sequential curriculum 'SB|N': 3 periods x 10 iterations = 30 iterations
            period  iterations  active tasks
                 1  0-9         SB  (+SB)
                 2  10-19       SBN  (+N)
                 3  20-29       SBN
        """
        kind = "Mixed" if self.is_mixed else "Sequential"
        lines = [
            f"{kind} curriculum {self.spec!r}: {self._periods} periods x {self._ipp:,} iterations = "
            f"{self.total_iterations:,} iterations"
        ]
        spans = [f"{s:,}-{s + self._ipp - 1:,}" for s in self.period_starts]
        width = max(len("iterations"), *(len(s) for s in spans))
        lines.append(f"period  {'iterations':<{width}}  active tasks")
        counts = self.active_counts()
        tasks = self.tasks
        for p, span in enumerate(spans):
            active = "".join(t.letter for t in tasks[: counts[p]])
            new = self.new_tasks(p)
            mark = f"  (+{''.join(t.letter for t in new)})" if new else ""
            lines.append(f"{p + 1:>6}  {span:<{width}}  {active}{mark}")
        return "\n".join(lines)

    def plot(self, ax: Any = None, *, title: str | None = None) -> Any:
        """Draw the timeline with matplotlib: one bar per task from its entry to the end of the run.

        Args:
            ax: a matplotlib Axes to draw into (a new figure when ``None``).
            title: the axes title (default: the curriculum's spec and length).

        Returns:
            The matplotlib Axes.

        Raises:
            ImportError: matplotlib is not installed (``pip install mio-strategies[analysis]``).
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on environment
            raise ImportError("Curriculum.plot needs matplotlib: pip install 'mio-strategies[analysis]'") from exc
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 0.4 * len(self.tasks) + 1.2))
        total = self.total_iterations
        tasks = self.tasks
        for row, task in enumerate(tasks):
            start = self.entry_iteration(task)
            ax.barh(row, total - start, left=start, height=0.7, color=TASK_COLORS[task.id])
            ax.text(start + 0.01 * total, row, task.title, va="center", ha="left", fontsize=8, color="white")
        for s in self.period_starts[1:]:
            ax.axvline(s, color="0.3", linewidth=0.6, linestyle=":")
        ax.set_yticks(range(len(tasks)), [t.letter for t in tasks])
        ax.invert_yaxis()
        ax.set_xlim(0, total)
        ax.set_xticks([*self.period_starts, total])
        ax.set_xticklabels([f"{x / 1000:g}k" if x else "0" for x in [*self.period_starts, total]], fontsize=7)
        ax.set_xlabel("iteration (dotted lines: period starts, where the cosine learning rate restarts)")
        kind = "mixed" if self.is_mixed else "sequential"
        ax.set_title(title if title is not None else f"{kind} {self.spec}: {self._periods} periods x {self._ipp:,}")
        return ax

    # ----------------------------------------------------------------- equality
    def _key(self) -> tuple:
        return (tuple(tuple(t.id for t in s) for s in self._stages), self._periods, self._ipp)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Curriculum) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())
