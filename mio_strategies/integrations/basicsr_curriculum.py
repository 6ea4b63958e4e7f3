"""Sequential learning in BasicSR: a ``curriculum:`` YAML option for the train dataset.

BasicSR's ``train.py`` hard-codes its ``EnlargedSampler``, so the curriculum sampler enters in one of
two ways, both driven by the same YAML option:

1. Replace ``from basicsr.train import train_pipeline`` with
   ``from mio_strategies.integrations.basicsr_curriculum import train_pipeline`` in your ``train.py``
   (BasicSR's own pipeline runs, with the curriculum sampler swapped in for the train loader).
2. Or, in your copy of BasicSR's ``create_train_val_dataloader``, build the sampler yourself:
   ``train_sampler = build_curriculum_sampler(opt, train_set, start_iteration=resume_iter)`` and pass it
   to ``build_dataloader(..., sampler=train_sampler)``.

YAML::

    datasets:
      train:
        type: ...                 # any dataset exposing .task_ids (one task id per index)
        batch_size_per_gpu: 16
        curriculum:
          order: SBNJRHL          # letters, names, or groups "SB|NJ|R|H|L"
          mode: sequential        # or: mixed (the baseline, all tasks from the start)
          periods: 10             # train.total_iter must be periods x iterations_per_period
          balance: tasks          # or: samples
    train:
      total_iter: 2500000
      scheduler: {type: CosineAnnealingRestartLR, periods: [250000, ...], restart_weights: [1, ...], eta_min: !!float 1e-7}

:func:`scheduler_options` writes the aligned ``scheduler`` entry; a ``CosineAnnealingRestartLR`` whose
periods do not match the curriculum's is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from torch.utils.data import Sampler

from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler
from mio_strategies.integrations.basicsr_prompt import register
from mio_strategies.utils.basicsr_compat import import_basicsr

__all__ = [
    "BasicSRCurriculumSampler",
    "build_curriculum_sampler",
    "curriculum_from_options",
    "curriculum_in_basicsr",
    "scheduler_options",
    "train_pipeline",
]

_KEYS = {"order", "mode", "periods", "iterations_per_period", "balance", "seed"}
_MODES = ("sequential", "mixed")


def curriculum_from_options(opt: Mapping[str, Any]) -> Curriculum | None:
    """The :class:`Curriculum` asked for by ``opt['datasets']['train']['curriculum']`` (``None`` if absent).

    ``iterations_per_period`` defaults to ``train.total_iter / periods``; when given, it must multiply
    with ``periods`` to ``train.total_iter``.

    Raises:
        KeyError: an unknown key in the ``curriculum`` section (the message lists the valid ones).
        ValueError: a bad mode, or periods that do not divide ``train.total_iter``; a scheduler of type
            ``CosineAnnealingRestartLR`` whose periods are not the curriculum's.
    """
    section = opt.get("datasets", {}).get("train", {}).get("curriculum")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise TypeError(f"datasets.train.curriculum must be a mapping, got {type(section).__name__} {section!r}")
    unknown = sorted(set(section) - _KEYS)
    if unknown:
        raise KeyError(f"unknown keys {unknown} in datasets.train.curriculum: valid keys are {sorted(_KEYS)}")
    mode = section.get("mode", "sequential")
    if mode not in _MODES:
        raise ValueError(f"datasets.train.curriculum.mode must be one of {_MODES}, got {mode!r}")
    order = section.get("order", "SBNJRHL")
    periods = section.get("periods", 10)
    total = opt.get("train", {}).get("total_iter")
    ipp = section.get("iterations_per_period")
    if total is not None:
        total = int(total)
        if ipp is None:
            if not isinstance(periods, int) or periods <= 0 or total % periods:
                raise ValueError(
                    f"train.total_iter={total} is not a multiple of datasets.train.curriculum.periods={periods!r}: "
                    "make total_iter = periods x iterations per period"
                )
            ipp = total // periods
        elif int(ipp) * periods != total:
            raise ValueError(
                f"datasets.train.curriculum has periods={periods} x iterations_per_period={ipp} = "
                f"{int(ipp) * periods} iterations but train.total_iter={total}: make them equal"
            )
    elif ipp is None:
        raise ValueError("datasets.train.curriculum needs iterations_per_period (or train.total_iter)")
    build = Curriculum.mixed if mode == "mixed" else Curriculum
    curriculum = build(order, periods=periods, iterations_per_period=int(ipp))
    sched = opt.get("train", {}).get("scheduler") or {}
    if sched.get("type") == "CosineAnnealingRestartLR":
        expected = [curriculum.iterations_per_period] * curriculum.periods
        if list(sched.get("periods", [])) != expected:
            raise ValueError(
                f"train.scheduler CosineAnnealingRestartLR has periods {list(sched.get('periods', []))} but the "
                f"curriculum's periods are {curriculum.periods} x {curriculum.iterations_per_period}: use "
                f"{scheduler_options(curriculum)}"
            )
    return curriculum


def scheduler_options(curriculum: Curriculum, eta_min: float = 1e-7) -> dict[str, Any]:
    """BasicSR's ``train.scheduler`` entry for the paper's period-aligned cosine (restart every period).

    Example:
        >>> scheduler_options(Curriculum("SB", periods=2, iterations_per_period=5))["periods"]
        [5, 5]
    """
    return {
        "type": "CosineAnnealingRestartLR",
        "periods": [curriculum.iterations_per_period] * curriculum.periods,
        "restart_weights": [1] * curriculum.periods,
        "eta_min": eta_min,
    }


class BasicSRCurriculumSampler(Sampler[int]):
    """A :class:`SequentialCurriculumSampler` cut into BasicSR's epochs.

    BasicSR's loop calls ``set_epoch(e)`` and re-iterates the loader each epoch. Epoch ``e`` here covers
    iterations ``[e * E, (e + 1) * E)`` with ``E`` BasicSR's own ``num_iter_per_epoch``, started no
    earlier than the resume iteration, so the curriculum iteration always equals ``current_iter - 1``.

    Args:
        sampler: the curriculum sampler (whole run, this rank).
        iterations_per_epoch: BasicSR's ``num_iter_per_epoch``.
        start_iteration: the resumed ``current_iter`` (0 for a fresh run).
    """

    def __init__(self, sampler: SequentialCurriculumSampler, iterations_per_epoch: int, start_iteration: int = 0) -> None:
        if iterations_per_epoch <= 0:
            raise ValueError(f"iterations_per_epoch must be positive, got {iterations_per_epoch}")
        total = sampler.curriculum.total_iterations
        if not 0 <= start_iteration <= total:
            raise ValueError(f"start_iteration must be in 0..{total}, got {start_iteration}")
        self.sampler = sampler
        self.iterations_per_epoch = iterations_per_epoch
        self.start_iteration = start_iteration
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _range(self) -> tuple[int, int]:
        total = self.sampler.curriculum.total_iterations
        lo = min(total, max(self.epoch * self.iterations_per_epoch, self.start_iteration))
        hi = min(total, max(lo, (self.epoch + 1) * self.iterations_per_epoch))
        return lo, hi

    def __iter__(self) -> Iterator[int]:
        return self.sampler.indices(*self._range())

    def __len__(self) -> int:
        lo, hi = self._range()
        return (hi - lo) * self.sampler.batch_size


def _loader_batch_size(opt: Mapping[str, Any]) -> int:
    dataset_opt = opt["datasets"]["train"]
    per_gpu = int(dataset_opt["batch_size_per_gpu"])
    if opt.get("dist", False):
        return per_gpu
    num_gpu = opt.get("num_gpu", 1)
    return per_gpu * (1 if not num_gpu else int(num_gpu))


def build_curriculum_sampler(opt: Mapping[str, Any], dataset: Any, *, start_iteration: int = 0) -> BasicSRCurriculumSampler:
    """The curriculum sampler for BasicSR's train loader, from the parsed options.

    Args:
        opt: BasicSR's parsed options (``world_size``, ``rank``, ``manual_seed``, ``datasets.train``).
        dataset: the train dataset; it must expose ``task_ids``.
        start_iteration: the ``iter`` of the resume state (0 for a fresh run).

    Raises:
        ValueError: no ``curriculum`` section, or any error of :func:`curriculum_from_options` and
            :class:`SequentialCurriculumSampler`.
        TypeError: the dataset has no ``task_ids``.
    """
    curriculum = curriculum_from_options(opt)
    if curriculum is None:
        raise ValueError("opt has no datasets.train.curriculum section: add one (see this module's docstring)")
    if not hasattr(dataset, "task_ids"):
        raise TypeError(
            f"the train dataset {type(dataset).__name__} has no .task_ids: the curriculum needs one task id per index"
        )
    section = opt["datasets"]["train"]["curriculum"]
    seed = section.get("seed", opt.get("manual_seed"))
    batch = _loader_batch_size(opt)
    sampler = SequentialCurriculumSampler(
        dataset,
        curriculum,
        batch,
        seed=0 if seed is None else int(seed),
        balance=section.get("balance", "tasks"),
        rank=int(opt.get("rank", 0)),
        world_size=int(opt.get("world_size", 1)),
    )
    ratio = opt["datasets"]["train"].get("dataset_enlarge_ratio", 1)
    per_epoch = math.ceil(len(dataset) * ratio / (int(opt["datasets"]["train"]["batch_size_per_gpu"]) * sampler.world_size))
    return BasicSRCurriculumSampler(sampler, per_epoch, start_iteration)


def _epochs_reach(sampler: Any, dataset: Any) -> Any:
    """BasicSR's loop sets only the sampler's epoch; an on-the-fly dataset (``set_epoch``, as
    MiOTrainDataset) is told too, so that each epoch draws other crops and degradations."""
    if sampler is not None and callable(getattr(dataset, "set_epoch", None)):
        sampler_set_epoch = sampler.set_epoch

        def set_epoch(epoch: int) -> None:
            sampler_set_epoch(epoch)
            dataset.set_epoch(epoch)

        sampler.set_epoch = set_epoch
    return sampler


@contextmanager
def curriculum_in_basicsr() -> Iterator[None]:
    """Within the block, ``basicsr.train.train_pipeline`` uses the curriculum sampler when the YAML asks.

    Wraps ``basicsr.train.load_resume_state`` (to learn the resumed iteration) and
    ``create_train_val_dataloader`` (to rebuild the train loader on the curriculum sampler); both are
    restored on exit, even after an error. Runs without a ``curriculum`` section keep BasicSR's sampler.
    Either way a train set with ``set_epoch`` (``MiOTrainDataset``) gets the sampler's epoch, so each
    epoch draws other crops and degradations.
    """
    train_mod = import_basicsr("train")
    data_mod = import_basicsr("data")
    original_resume = train_mod.load_resume_state
    original_create = train_mod.create_train_val_dataloader
    resumed = {"iter": 0}

    def load_resume_state(opt: Any) -> Any:
        state = original_resume(opt)
        resumed["iter"] = int(state["iter"]) if state else 0
        return state

    def create_train_val_dataloader(opt: Any, logger: Any) -> Any:
        train_loader, train_sampler, val_loaders, total_epochs, total_iters = original_create(opt, logger)
        dataset = train_loader.dataset
        if curriculum_from_options(opt) is None:
            return train_loader, _epochs_reach(train_sampler, dataset), val_loaders, total_epochs, total_iters
        sampler = _epochs_reach(build_curriculum_sampler(opt, dataset, start_iteration=resumed["iter"]), dataset)
        train_loader = data_mod.build_dataloader(
            dataset,
            opt["datasets"]["train"],
            num_gpu=opt["num_gpu"],
            dist=opt["dist"],
            sampler=sampler,
            seed=opt["manual_seed"],
        )
        logger.info(f"Sequential learning: {sampler.sampler!r}\n{sampler.sampler.curriculum.describe()}")
        return train_loader, sampler, val_loaders, total_epochs, total_iters

    train_mod.load_resume_state = load_resume_state
    train_mod.create_train_val_dataloader = create_train_val_dataloader
    try:
        yield
    finally:
        train_mod.load_resume_state = original_resume
        train_mod.create_train_val_dataloader = original_create


def train_pipeline(root_path: str) -> None:
    """BasicSR's ``train_pipeline`` with the curriculum sampler (drop-in for ``basicsr.train.train_pipeline``).

    Example (your ``train.py``)::

        import os
        from mio_strategies.integrations.basicsr_curriculum import train_pipeline

        if __name__ == "__main__":
            train_pipeline(os.getcwd())  # experiments/ and --auto_resume resolve against the working folder
    """
    register()  # MiOPromptedNet, MiOPromptModel, MiOTrainDataset, MiOTestDataset
    train_mod = import_basicsr("train")
    with curriculum_in_basicsr():
        train_mod.train_pipeline(root_path)
