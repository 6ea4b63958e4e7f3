"""Paired statistics of scores: differences between two models on the same seeds or images, their mean and
spread, the count of pairs ahead, margins over a baseline and whether a margin is within the test set's noise.

Pure Python (no torch): the numbers of a benchmark table, computed the same way wherever they are printed.
Means and standard deviations are those of :mod:`statistics` (exactly rounded); the standard deviation is
the sample one (``n - 1``), ``nan`` for fewer than two values.

Example:
    >>> from mio_strategies.metrics.statistics import paired_differences, summarize
    >>> s = summarize(paired_differences({0: 25.3, 1: 25.41, 2: 25.52}, {0: 25.0, 1: 25.1, 2: 25.2}).values())
    >>> s.format(), s.ahead, s.verdict()
    ('+0.31 +/- 0.01', 3, 'supported')
"""

from __future__ import annotations

import math
import numbers
import statistics
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "PairedSummary",
    "margin_standard_errors",
    "mean_margin",
    "paired_differences",
    "summarize",
    "within_noise",
]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class PairedSummary:
    """Mean and spread of paired differences (one per seed, or per test image).

    Attributes:
        values: the differences, in order.
        mean: their mean (``nan`` when there are none).
        sd: their sample standard deviation (``nan`` for fewer than two).
        n: how many there are.
        ahead: how many are above zero (the pairs in which the first model is ahead).
    """

    values: tuple[float, ...]
    mean: float
    sd: float
    n: int
    ahead: int

    @property
    def se(self) -> float:
        """The standard error of the mean, ``sd / sqrt(n)`` (``nan`` for fewer than two values)."""
        return self.sd / math.sqrt(self.n) if self.n > 1 else math.nan

    @property
    def ci95(self) -> float:
        """Half-width of the 95% interval of the mean (normal approximation, ``1.96 * se``)."""
        return 1.96 * self.se

    def format(self) -> str:
        """The table cell: ``"+0.31 +/- 0.01"`` (mean +/- standard deviation, in the values' unit), the value
        alone for one value, ``"-"`` for none.

        Returns:
            The cell's text.
        """
        if self.n < 2:
            return f"{self.values[0]:+.2f}" if self.values else "-"
        return f"{self.mean:+.2f} +/- {self.sd:.2f}"

    def verdict(self) -> str:
        """Whether the differences support "the first model is better".

        ``"supported"`` when there are at least two, every one is above zero and the mean is more than twice
        the standard deviation; ``"not supported"`` when the mean is at or below zero; ``"within noise"``
        otherwise.

        Returns:
            One of ``"supported"``, ``"not supported"``, ``"within noise"``.
        """
        solid = self.n > 1 and self.mean > 2 * self.sd and self.ahead == self.n
        return "supported" if solid else ("not supported" if self.mean <= 0 else "within noise")


def summarize(values: Iterable[float]) -> PairedSummary:
    """Mean, standard deviation and count ahead of paired differences.

    Args:
        values: the differences (e.g. per seed: a strategy's PSNR minus the baseline's on that seed).

    Returns:
        A :class:`PairedSummary`.

    Raises:
        TypeError: a value is not a real number.

    Example:
        >>> summarize([0.3, 0.31, 0.32]).format()
        '+0.31 +/- 0.01'
    """
    vals = tuple(values)
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"summarize takes real numbers, got {v!r} ({type(v).__name__})")
    vals = tuple(float(v) for v in vals)
    n = len(vals)
    mean = statistics.mean(vals) if vals else math.nan
    sd = statistics.stdev(vals) if n > 1 else math.nan
    return PairedSummary(vals, mean, sd, n, sum(v > 0 for v in vals))


def paired_differences(scores: Mapping[K, float], baseline: Mapping[K, float]) -> dict[K, float]:
    """``scores[k] - baseline[k]`` for every key (a seed, a test image), in the order of ``scores``.

    Args:
        scores: the model's score per key.
        baseline: the baseline's score per key; it must hold the same keys.

    Returns:
        The difference per key.

    Raises:
        KeyError: the two do not hold the same keys (the missing ones are named): pair scores of one set.

    Example:
        >>> paired_differences({"a": 21.0, "b": 23.0}, {"a": 20.0, "b": 22.5})
        {'a': 1.0, 'b': 0.5}
    """
    if scores.keys() != baseline.keys():
        only_a = [k for k in scores if k not in baseline]
        only_b = [k for k in baseline if k not in scores]
        raise KeyError(
            f"paired differences need the same keys on both sides: only in the scores {only_a}, only in the "
            f"baseline {only_b}; pair scores of the same seeds or test images"
        )
    return {k: scores[k] - baseline[k] for k in scores}


def margin_standard_errors(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Per task, the standard error over test images of the margin over the identity (PSNR minus the
    unrestored input's PSNR): how far a task's mean margin can move with the choice of test crops.

    Images whose input already equals the ground truth (an infinite identity PSNR) are left out, as in the
    per-task means; a task with fewer than two usable images gets no entry.

    Args:
        records: one per test image, with ``"task"``, ``"psnr"`` and ``"identity_psnr"``
            (``EvalResult.records``).

    Returns:
        ``{task: standard error in dB}``, tasks in the order they first appear.

    Raises:
        KeyError: a record lacks one of the three keys.

    Example:
        >>> recs = [{"task": "jpeg", "psnr": 30.0 + d, "identity_psnr": 30.0} for d in (-1.0, 0.0, 1.0)]
        >>> round(margin_standard_errors(recs)["jpeg"], 4)
        0.5774
    """
    recs = list(records)
    out = {}
    for task in dict.fromkeys(r["task"] for r in recs):
        m = [r["psnr"] - r["identity_psnr"] for r in recs if r["task"] == task and not math.isinf(r["identity_psnr"])]
        if len(m) > 1:
            out[task] = statistics.stdev(m) / math.sqrt(len(m))
    return out


def mean_margin(
    scores: Sequence[float], identity: float, standard_errors: Sequence[float | None] = ()
) -> tuple[float, float | None]:
    """A task's mean margin over the identity across seeds, and the test crops' standard error of it.

    Every seed is scored on the same test crops, so their noise does not average out over seeds: the
    standard error is the mean of the seeds' standard errors, not divided by the number of seeds.

    Args:
        scores: the task's score (PSNR) of each seed.
        identity: the unrestored input's score on the task.
        standard_errors: each seed's standard error of its margin (``None`` where a run did not record one).

    Returns:
        ``(mean margin, standard error)``; the standard error is ``None`` when any seed lacks one or none
        were given.

    Raises:
        ValueError: no scores, or not one standard error per score.

    Example:
        >>> mean_margin([19.0, 19.5], 20.0, [0.5, 0.75])
        (-0.75, 0.625)
    """
    if not scores:
        raise ValueError("mean_margin needs at least one score")
    if standard_errors and len(standard_errors) != len(scores):
        raise ValueError(
            f"mean_margin: {len(standard_errors)} standard errors for {len(scores)} scores: give one per score"
        )
    margin = statistics.mean(scores) - identity
    if not standard_errors or any(v is None for v in standard_errors):
        return margin, None
    return margin, statistics.mean([v for v in standard_errors if v is not None])


def within_noise(margin: float, se: float | None, k: float = 2.0) -> bool:
    """Whether a margin is within ``k`` standard errors of zero (``False`` where no standard error is known).

    Args:
        margin: the mean margin (dB).
        se: its standard error, or ``None``.
        k: how many standard errors count as noise (default 2).

    Returns:
        ``abs(margin) <= k * se``.

    Example:
        >>> within_noise(-0.07, 0.17), within_noise(-1.0, 0.4), within_noise(-0.01, None)
        (True, False, False)
    """
    return se is not None and abs(margin) <= k * se
