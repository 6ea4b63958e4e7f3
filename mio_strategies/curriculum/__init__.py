"""Sequential learning: the curriculum schedule, its sampler, the period-aligned learning rate and hooks.

Example:
    >>> import torch
    >>> from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler
    >>> c = Curriculum("SBNJRHL", periods=10, iterations_per_period=2)
    >>> s = SequentialCurriculumSampler(torch.arange(70) % 7, c, batch_size=4)
    >>> len(s)
    80
"""

from mio_strategies.curriculum._lr import (
    CurriculumCallbacks,
    PeriodStart,
    period_cosine_lr,
    reset_optimizer_state,
)
from mio_strategies.curriculum._sampler import SequentialCurriculumSampler
from mio_strategies.curriculum._schedule import PAPER_ORDERS, Curriculum, parse_stages

__all__ = [
    "Curriculum",
    "CurriculumCallbacks",
    "PAPER_ORDERS",
    "PeriodStart",
    "SequentialCurriculumSampler",
    "parse_stages",
    "period_cosine_lr",
    "reset_optimizer_state",
]
