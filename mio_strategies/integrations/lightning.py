"""PyTorch Lightning: a callback that drives sequential learning in a ``lightning.Trainer``.

:class:`CurriculumCallback` owns the curriculum's data stream and schedule. One Lightning epoch is one
curriculum period, so ``Trainer(**callback.trainer_settings())`` (``max_steps`` = the curriculum's iterations,
Lightning's own distributed sampler off) runs the whole curriculum, and the callback

- builds the training loader's batches from a :class:`~mio_strategies.curriculum.SequentialCurriculumSampler`
  (:meth:`CurriculumCallback.dataloader`), sharded over the Trainer's processes (``strategy="ddp"``);
- sets the learning rate of every optimizer group at every step: a cosine from its initial lr down to
  ``eta_min``, restarted every period (the values of :func:`~mio_strategies.curriculum.period_cosine_lr`);
- optionally clears the optimizers' state (Adam moments) when new tasks enter, or at every period;
- saves its state in Lightning checkpoints (``state_dict`` / ``load_state_dict``): a run resumed with
  ``trainer.fit(..., ckpt_path=...)`` draws the same batches and learning rates as the uninterrupted run.

Needs the ``lightning`` extra: ``pip install 'mio-strategies[lightning]'``.

Example:
    >>> from mio_strategies.curriculum import Curriculum
    >>> cb = CurriculumCallback(Curriculum("SBN", periods=4, iterations_per_period=5), batch_size=8)
    >>> cb.trainer_settings()
    {'max_steps': 20, 'max_epochs': -1, 'use_distributed_sampler': False}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch.utils.data import DataLoader, Sampler

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - the extra is installed in CI
    raise ImportError(
        "mio_strategies.integrations.lightning needs PyTorch Lightning: pip install 'mio-strategies[lightning]'"
    ) from exc

from mio_strategies.curriculum import (
    Curriculum,
    CurriculumCallbacks,
    PeriodStart,
    SequentialCurriculumSampler,
    reset_optimizer_state,
)
from mio_strategies.utils.validation import finite_float

__all__ = ["CurriculumCallback"]

_RESETS = (None, "stage", "period")


class _PeriodBatches(Sampler[list[int]]):
    """A batch sampler yielding one curriculum period per pass: the batches from the sampler's iteration to the
    end of that period (the whole period, or its rest after a resume), then the next period on the next pass."""

    def __init__(self, sampler: SequentialCurriculumSampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return self.sampler.curriculum.iterations_per_period

    def __iter__(self) -> Iterator[list[int]]:
        s, c = self.sampler, self.sampler.curriculum
        start, total, per = s.iteration, c.total_iterations, c.iterations_per_period
        stop = min((start // per + 1) * per, total)
        if start >= stop:
            return
        indices = s.indices(start, stop)
        for t in range(start, stop):
            batch = [next(indices) for _ in range(s.batch_size)]
            s.set_iteration(t + 1)
            yield batch


class _CurriculumLoader(DataLoader):
    """A DataLoader whose position Lightning saves and restores with its checkpoints (so it is 'resumable')."""

    def __init__(self, *args: Any, callback: CurriculumCallback, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._callback = callback

    def state_dict(self) -> dict[str, Any]:
        return self._callback._sampler_state()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._callback._load_sampler_state(state)


class CurriculumCallback(pl.Callback):
    """Drive a :class:`~mio_strategies.curriculum.Curriculum` from a Lightning ``Trainer``.

    Build the training loader with :meth:`dataloader` (in ``train_dataloader()``, which Lightning calls once its
    processes are set up), and the Trainer with :meth:`trainer_settings`. The curriculum's iteration is the
    Trainer's ``global_step`` (one optimizer step per batch: gradient accumulation is refused).

    Args:
        curriculum: the schedule (``Curriculum.mixed(...)`` for the mixed baseline).
        batch_size: batch size per process.
        seed: the sampler's seed (the same stream on every machine).
        balance: the sampler's ``balance`` (``"tasks"`` or ``"samples"``).
        lr: ``"cosine"`` sets every optimizer group's lr at every step to the period-restarted cosine from the
            group's initial lr down to ``eta_min``; ``None`` leaves the lr alone (e.g. to a scheduler returned by
            ``configure_optimizers``).
        eta_min: the floor of every period's cosine (paper: 1e-7).
        reset_optimizer: ``"stage"`` clears the optimizers' state when new tasks enter, ``"period"`` at every
            period start, ``None`` never.
        on_period_start: called as ``fn(event: PeriodStart)`` at the start of every period.

    Raises:
        TypeError: ``curriculum`` is not a :class:`Curriculum`, ``on_period_start`` not callable.
        ValueError: an unknown ``lr`` or ``reset_optimizer``, a negative ``eta_min``.

    Example:
        >>> from mio_strategies.curriculum import Curriculum
        >>> cb = CurriculumCallback(Curriculum("SBN", periods=4, iterations_per_period=5), batch_size=8,
        ...                         reset_optimizer="stage")
        >>> import lightning.pytorch as pl
        >>> trainer = pl.Trainer(callbacks=[cb], accelerator="cpu", logger=False,
        ...                      **cb.trainer_settings())  # doctest: +SKIP
    """

    def __init__(
        self,
        curriculum: Curriculum,
        batch_size: int,
        *,
        seed: int = 0,
        balance: str = "tasks",
        lr: str | None = "cosine",
        eta_min: float = 1e-7,
        reset_optimizer: str | None = None,
        on_period_start: Callable[[PeriodStart], Any] | None = None,
    ) -> None:
        if not isinstance(curriculum, Curriculum):
            raise TypeError(f"curriculum must be a Curriculum, got {type(curriculum).__name__}")
        if lr not in ("cosine", None):
            raise ValueError(f"lr must be 'cosine' or None, got {lr!r}")
        finite_float("eta_min", eta_min, low=0, type_error=False)
        if reset_optimizer not in _RESETS:
            raise ValueError(f"reset_optimizer must be one of {_RESETS}, got {reset_optimizer!r}")
        if on_period_start is not None and not callable(on_period_start):
            raise TypeError(f"on_period_start must be callable (taking a PeriodStart), got {on_period_start!r}")
        self.curriculum = curriculum
        self.batch_size = batch_size
        self.seed = seed
        self.balance = balance
        self.lr = lr
        self.eta_min = float(eta_min)
        self.reset_optimizer = reset_optimizer
        self.on_period_start = on_period_start
        self.periods_started: list[PeriodStart] = []  # the period starts this process has run (for logs, tests)
        self._sampler: SequentialCurriculumSampler | None = None
        self._pending: Mapping[str, Any] | None = None
        self._base_lrs: list[list[float]] | None = None
        self._shard: tuple[int, int] | None = None
        self._trainer: Any = None
        self._hooks: CurriculumCallbacks | None = None

    # -- data ------------------------------------------------------------------------------------------------
    def trainer_settings(self) -> dict[str, Any]:
        """The ``Trainer`` arguments the curriculum needs: ``max_steps`` the curriculum's iterations (epochs
        unbounded: an epoch is a period, or its rest after a resume), Lightning's sampler off (the curriculum
        sampler shards the batches over the processes itself).

        Example:
            >>> from mio_strategies.curriculum import Curriculum
            >>> cb = CurriculumCallback(Curriculum("SB", periods=3, iterations_per_period=4), batch_size=2)
            >>> cb.trainer_settings()
            {'max_steps': 12, 'max_epochs': -1, 'use_distributed_sampler': False}
        """
        return {"max_steps": self.curriculum.total_iterations, "max_epochs": -1, "use_distributed_sampler": False}

    def batch_sampler(self, task_ids: Any) -> Sampler[list[int]]:
        """A batch sampler over a dataset (or its per-item task ids) that yields one period per epoch.

        Call it where the training loader is built (``train_dataloader()``): the batches are then sharded
        over the Trainer's processes. :meth:`dataloader` wraps it in a loader Lightning can resume.

        Raises:
            ValueError: as :class:`~mio_strategies.curriculum.SequentialCurriculumSampler` (tasks missing from
                the dataset, a batch too large), or a saved state of another configuration.
        """
        rank, world = self._shard if self._shard is not None else (None, None)
        sampler = SequentialCurriculumSampler(
            task_ids,
            self.curriculum,
            self.batch_size,
            seed=self.seed,
            balance=self.balance,
            rank=rank,
            world_size=world,
        )
        if self._pending is not None:
            sampler.load_state_dict(self._pending)
            self._pending = None
        self._sampler = sampler
        return _PeriodBatches(sampler)

    def dataloader(self, dataset: Any, **kwargs: Any) -> DataLoader:
        """The training ``DataLoader`` of ``dataset`` (it needs ``.task_ids``, like
        :class:`~mio_strategies.data.MiODataset`), batched by :meth:`batch_sampler`.

        Args:
            dataset: the training set.
            **kwargs: other ``DataLoader`` arguments (``collate_fn``, ``num_workers``, ...).

        Raises:
            ValueError: a batching argument (``batch_size``, ``shuffle``, ``sampler``, ``batch_sampler``,
                ``drop_last``): the curriculum decides the batches.
        """
        taken = sorted({"batch_size", "shuffle", "sampler", "batch_sampler", "drop_last"} & set(kwargs))
        if taken:
            raise ValueError(f"the curriculum decides the batches: drop {taken} (the batch size is the callback's)")
        return _CurriculumLoader(dataset, batch_sampler=self.batch_sampler(dataset), callback=self, **kwargs)

    def _sampler_state(self) -> dict[str, Any]:
        if self._sampler is None:
            return dict(self._pending) if self._pending is not None else {}
        step = self._trainer.global_step if self._trainer is not None else None
        return self._sampler.state_dict(iteration=step)  # the trained steps, not the prefetched batches

    def _load_sampler_state(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        if self._sampler is None:
            self._pending = dict(state)
        else:
            self._sampler.load_state_dict(state)

    # -- Lightning hooks ------------------------------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._trainer = trainer
        self._shard = (trainer.global_rank, trainer.world_size)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        loader = trainer.train_dataloader
        batches = getattr(loader, "batch_sampler", None)
        if self._sampler is None or not isinstance(batches, _PeriodBatches) or batches.sampler is not self._sampler:
            raise RuntimeError(
                "the training loader does not draw from this CurriculumCallback: build it in train_dataloader() with "
                "callback.dataloader(dataset, ...), and pass **callback.trainer_settings() to the Trainer (Lightning's "
                "own distributed sampler would replace the curriculum's)"
            )
        if self._sampler.world_size != trainer.world_size:
            raise RuntimeError(
                f"the curriculum sampler was built for {self._sampler.world_size} process(es) but the "
                f"Trainer runs {trainer.world_size}: build the loader in train_dataloader()"
            )
        if trainer.accumulate_grad_batches != 1:
            raise ValueError(
                f"accumulate_grad_batches={trainer.accumulate_grad_batches}: the curriculum counts one "
                "optimizer step per batch; raise the batch size instead"
            )
        if self.lr == "cosine" and self._base_lrs is None:
            self._base_lrs = [[float(g["lr"]) for g in opt.param_groups] for opt in trainer.optimizers]
        if self.lr == "cosine":
            shape = [len(opt.param_groups) for opt in trainer.optimizers]
            assert self._base_lrs is not None
            if [len(b) for b in self._base_lrs] != shape:
                saved = [len(b) for b in self._base_lrs]
                raise ValueError(
                    f"the checkpoint's optimizers have parameter groups {saved}, these have {shape}: "
                    "resume with the same optimizers"
                )
            low = [lr for b in self._base_lrs for lr in b if not lr > self.eta_min]
            if low:
                raise ValueError(
                    f"initial lr {low[0]} <= eta_min {self.eta_min}: the cosine decays from the "
                    "optimizer's lr down to eta_min, so give an lr above it"
                )
        self._hooks = CurriculumCallbacks(self.curriculum)
        if self.on_period_start is not None:
            self._hooks.on_period_start(self.on_period_start)
        if self.reset_optimizer is not None:
            register = self._hooks.on_stage_start if self.reset_optimizer == "stage" else self._hooks.on_period_start
            for opt in trainer.optimizers:
                register(reset_optimizer_state(opt))

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        t = trainer.global_step
        c = self.curriculum
        if t >= c.total_iterations:
            raise RuntimeError(
                f"step {t} is past the curriculum's {c.total_iterations} iterations: train for "
                f"max_steps={c.total_iterations} (callback.trainer_settings())"
            )
        assert self._hooks is not None
        event = self._hooks.step(t)
        if event is not None:
            self.periods_started.append(event)
        if self.lr == "cosine":
            assert self._base_lrs is not None
            period, eta = c.iterations_per_period, self.eta_min
            for opt, bases in zip(trainer.optimizers, self._base_lrs):
                for group, base in zip(opt.param_groups, bases):  # torch's CosineAnnealingWarmRestarts, T_mult=1
                    group["lr"] = eta + (base - eta) * (1 + math.cos(math.pi * (t % period) / period)) / 2

    # -- checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The curriculum, the sampler's position at the trained step and the optimizers' initial lrs."""
        return {
            "curriculum": self.curriculum.to_dict(),
            "lr": self.lr,
            "eta_min": self.eta_min,
            "reset_optimizer": self.reset_optimizer,
            "base_lrs": self._base_lrs,
            "sampler": self._sampler_state(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (Lightning calls it when ``fit`` resumes from a checkpoint).

        Raises:
            ValueError: the checkpoint was trained with another curriculum or learning-rate setting (the message
                lists the differences).
        """
        mine = {
            "curriculum": self.curriculum.to_dict(),
            "lr": self.lr,
            "eta_min": self.eta_min,
            "reset_optimizer": self.reset_optimizer,
        }
        diffs = [f"{k}: saved {state_dict.get(k)!r}, here {v!r}" for k, v in mine.items() if state_dict.get(k) != v]
        if diffs:
            raise ValueError(
                "the checkpoint's curriculum callback had other settings, so resuming would not continue "
                "its run: " + "; ".join(diffs)
            )
        self._base_lrs = state_dict.get("base_lrs")
        self._load_sampler_state(state_dict.get("sampler") or {})
