"""The parts of a training loop that :func:`~mio_strategies.harness.train` and
:func:`~mio_strategies.harness.train_packed` share: the run folder's files, the results, the options of a
training call, the default data, the optimizer and schedule, the EMA, the per-iteration seeds and the records.

Both loops import from here and from nowhere in each other, so a change to how a run is seeded, logged or
checkpointed is made once and applies to separate and packed runs alike.

Example:
    >>> LoopOptions(stop_after=3).stop(start=0, total=10)
    3
"""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader

from mio_strategies.curriculum import Curriculum
from mio_strategies.data import MiODataset, embedded_image_paths, list_images, mio_collate
from mio_strategies.harness._config import TrainConfig
from mio_strategies.harness._protocol_run import protocol_train_dataset, protocol_validation_set
from mio_strategies.models import Restorer
from mio_strategies.utils.outputs import atomic_file, flag
from mio_strategies.utils.rng import derive_seed
from mio_strategies.utils.signals import Interrupted

__all__ = [
    "CHECKPOINT_NAME",
    "ITERATION_SEED_STREAM",
    "LOADER_SEED_STREAM",
    "LOG_NAME",
    "VALIDATION_SEED_STREAM",
    "EMA",
    "LoopOptions",
    "TrainResult",
    "TrainingInterrupted",
    "default_dataset",
    "default_validation_set",
    "ema_weights",
    "float_state",
    "log_record",
    "make_curriculum",
    "make_loader",
    "make_optimizer",
    "make_scheduler",
    "read_record",
    "resolve_device",
    "seed_iteration",
    "train_record",
    "truncate_log",
    "validation_record",
    "yaml_text",
]

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"  # one JSON record per line: "train" (loss, lr, period) and "val" (per-task PSNR)
_MAX_ITEMS = 4_000_000
# Streams derived from the run's seed, fixed primes so that every run, resumed or packed, replays the same draws:
# the DataLoader's own generator (the base seeds of its workers),
LOADER_SEED_STREAM = 15485863
# torch's global generators in each iteration (dropout, drop-path, a dataset drawing in __getitem__),
ITERATION_SEED_STREAM = 104729
# and the fixed patches of the default validation set.
VALIDATION_SEED_STREAM = 7919


# -- results -------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        output_dir: the run folder (``checkpoint.pt``, ``config.yaml``, ``log.jsonl``).
        checkpoint: path of the last checkpoint.
        iteration: iterations completed (``config.total_iters`` unless stopped early).
        finished: whether the whole run is done.
        history: logged training records (iteration, loss, lr, period).
        validation: per-validation records (iteration, per-task PSNR, average).
        seconds: wall time of this call; ``iters_per_second`` of the training steps.
        run_seconds: wall time of the whole run so far, every leg (a resumed or extended run adds the time
            its checkpoint recorded; the part of an interrupted leg after its last checkpoint, lost, is not
            counted); ``run_iters_per_second`` likewise over every leg's steps. ``None`` when the checkpoint
            resumed from predates this record (then only this call's figures are known).
        restorer: the trained model, holding the EMA weights when EMA is on.
    """

    output_dir: Path
    checkpoint: Path
    iteration: int
    finished: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    iters_per_second: float = 0.0
    restorer: Restorer | None = None
    run_seconds: float | None = None
    run_iters_per_second: float | None = None


class TrainingInterrupted(Interrupted):
    """Training stopped on SIGINT or SIGTERM after finishing its current step and saving a checkpoint.

    A :class:`KeyboardInterrupt` (so code that handles Ctrl-C handles it). Attributes: ``signum``,
    ``iteration`` (saved), ``total``, ``checkpoint`` (its path), ``output_dir``; the message says how to resume.
    """

    def __init__(self, signum: int, iteration: int, total: int, output_dir: Path) -> None:
        self.iteration, self.total, self.output_dir = iteration, total, Path(output_dir)
        self.checkpoint = self.output_dir / CHECKPOINT_NAME
        how = (
            f"mio-strategies train --output {str(self.output_dir)!r} --resume"
            if _cli_spelling()
            else f"train(config, {str(self.output_dir)!r}, resume=True)"
        )
        super().__init__(
            signum,
            (
                f"training interrupted by {signal.Signals(signum).name} after iteration {iteration} of {total}; "
                f"checkpoint saved to {str(self.checkpoint)!r}. Resume with: {how}"
            ),
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: a sweep's worker process reports it to its parent
        return (type(self), (self.signum, self.iteration, self.total, self.output_dir))


def _cli_spelling() -> bool:
    return flag("resume").startswith("--")


# -- the options of one training call ------------------------------------------------------------------
@dataclass(frozen=True)
class LoopOptions:
    """How one training call runs, whatever it trains: where it stops, what it reports, what it does with
    the run folder.

    Attributes:
        stop_after: stop (with a resumable checkpoint) once this many iterations are done; None: at the end.
        progress: show a progress bar.
        callback: called with every logged record (``train`` only).
        overwrite: replace an existing run folder.
        resume: continue the run saved in the folder.
        extend: continue the saved run into a longer schedule (``train`` only; implies ``resume``).
    """

    stop_after: int | None = None
    progress: bool = True
    callback: Callable[[dict[str, Any]], None] | None = None
    overwrite: bool = False
    resume: bool = False
    extend: bool = False

    def stop(self, start: int, total: int) -> int:
        """The iteration this call stops after, for a run at ``start`` of ``total`` iterations."""
        return total if self.stop_after is None else min(total, max(self.stop_after, start))


# -- device ------------------------------------------------------------------------------------------------
def resolve_device(name: str, local_rank: int, fix: str = "device=cpu") -> torch.device:
    """The torch device for ``name`` (validated by ``_device_name``); ``fix`` is how the caller's user picks the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but no CUDA device is available: use {fix}")
        if name == "cuda":
            return torch.device("cuda", local_rank)
        if torch.device(name).index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s): "
                f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}, or device=cuda"
            )
    return torch.device(name)


# -- EMA ---------------------------------------------------------------------------------------------------
class EMA:
    """Exponential moving average of a restorer's floating-point state (parameters and buffers)."""

    def __init__(self, restorer: Restorer, decay: float) -> None:
        self.decay = decay
        self.shadow = float_state(restorer)

    @torch.no_grad()
    def update(self, restorer: Restorer) -> None:
        live = float_state(restorer, clone=False)
        # one multi-tensor call, not one per tensor (185 for the converged tier's prompted U-Net): on a GPU a
        # tiny model's step is bound by kernel launches
        torch._foreach_lerp_(list(self.shadow.values()), [live[k] for k in self.shadow], 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) ^ set(state))
        if missing:
            raise ValueError(f"EMA state does not match the model: differing keys {missing[:5]}")
        for k, v in state.items():
            self.shadow[k].copy_(v)

    @torch.no_grad()
    def copy_to(self, restorer: Restorer) -> None:
        live = float_state(restorer, clone=False)
        for k, v in self.shadow.items():
            live[k].copy_(v)


def float_state(restorer: Restorer, clone: bool = True) -> dict[str, torch.Tensor]:
    """The restorer's floating-point parameters and buffers, ``backbone.``/``injector.``-prefixed."""
    out = {}
    for prefix, module in (("backbone", restorer.backbone), ("injector", restorer.injector)):
        if module is None:
            continue
        for k, v in module.state_dict(keep_vars=True).items():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                t = v.detach()
                out[f"{prefix}.{k}"] = t.clone() if clone else t
    return out


class ema_weights:
    """Context manager: the restorer holds the EMA weights inside, its live weights again after.

    ``ema`` is anything with ``copy_to(restorer)`` (an :class:`EMA`, or a packed run's slice of the stacked
    one), or None for the live weights.
    """

    def __init__(self, restorer: Restorer, ema: Any) -> None:
        self.restorer, self.ema = restorer, ema
        self.backup: dict[str, torch.Tensor] | None = None

    def __enter__(self) -> Restorer:
        if self.ema is not None:
            self.backup = float_state(self.restorer)
            self.ema.copy_to(self.restorer)
        return self.restorer

    def __exit__(self, *exc: object) -> None:
        if self.backup is not None:
            live = float_state(self.restorer, clone=False)
            with torch.no_grad():
                for k, v in self.backup.items():
                    live[k].copy_(v)


# -- data --------------------------------------------------------------------------------------------------
def default_dataset(cfg: TrainConfig, world: int, saved: Mapping[str, Any] | None = None) -> Any:
    """The training set a config names (its protocol's data, its images, or the embedded photos), sized for the run."""
    if cfg.protocol is not None:  # a benchmark protocol's data on disk
        return protocol_train_dataset(cfg, world, saved)

    images = list_images(cfg.train_images) if cfg.train_images is not None else embedded_image_paths()
    # An item is a function of (seed, epoch, index), so an index drawn twice gives the same patch.
    # Repeat the images so that the run draws each index about once (fresh crops and degradations),
    # capped at ~4M items; and never fewer items per task than a global batch (period 1 of a
    # sequential run draws the whole batch from one task, without repeating an index).
    global_batch = cfg.batch_size * world
    per_pass = len(images) * len(cfg.order_tasks)
    fresh = math.ceil(cfg.total_iters * global_batch / per_pass)
    repeat = max(cfg.repeat, math.ceil(global_batch / len(images)), min(fresh, max(1, _MAX_ITEMS // per_pass)))
    # A resumed run keeps the data it started with, which its sampler state records: for an extended run
    # (more periods) the pool sized for its first schedule, not a larger one (whose draws would differ).
    items = ((saved or {}).get("sampler") or {}).get("config", {}).get("dataset", {}).get("num_items")
    if isinstance(items, int) and items > 0 and items % per_pass == 0:
        repeat = items // per_pass
    return MiODataset(
        images,
        cfg.order_tasks,
        patch_size=cfg.patch_size,
        preset=cfg.preset,
        seed=cfg.seed,
        repeat=repeat,
        implementation=cfg.data_implementation,
        stream=cfg.stream,
        synthesis=cfg.synthesis,
        jpeg_codec=cfg.jpeg_codec,
    )


def default_validation_set(cfg: TrainConfig) -> Any:
    """Fixed validation patches (``val_size``) of the validation (or training) images, every task."""
    if cfg.protocol is not None and cfg.val_images is None:
        return protocol_validation_set(cfg)

    src = cfg.val_images or cfg.train_images
    images = list_images(src) if src is not None else embedded_image_paths()
    return MiODataset(
        images,
        cfg.order_tasks,
        patch_size=cfg.val_size,
        preset=cfg.preset,
        augment=False,
        seed=derive_seed(cfg.seed, VALIDATION_SEED_STREAM),
        implementation=cfg.data_implementation,
        stream=cfg.stream,
        jpeg_codec=cfg.jpeg_codec,
    )


def make_loader(cfg: TrainConfig, dataset: Any, sampler: Any, device: torch.device, rank: int) -> DataLoader:
    """The DataLoader of one run on one rank: the sampler's batches, collated, its own seeded generator."""
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        collate_fn=mio_collate,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(derive_seed(cfg.seed, LOADER_SEED_STREAM, rank)),
    )


# -- optimisation ------------------------------------------------------------------------------------------
def make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adam or AdamW as the config says."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """The paper's cosine annealing from lr to lr_min, restarting at every period."""
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=cfg.period_iters, eta_min=cfg.lr_min)


def make_curriculum(cfg: TrainConfig) -> Any:
    """The config's curriculum: sequential (tasks enter by stage) or mixed (all tasks from the start)."""
    if cfg.sequential:
        return Curriculum(cfg.order, periods=cfg.periods, iterations_per_period=cfg.period_iters)
    return Curriculum.mixed(cfg.order, periods=cfg.periods, iterations_per_period=cfg.period_iters)


def seed_iteration(seed: int, rank: int, iteration: int, device: torch.device) -> None:
    """Seed the CPU generator and the training device's CUDA generator for one iteration of one rank (not
    every device's, as ``torch.manual_seed`` would, behind the caller's back: ``fork_rng`` restores only
    these two), so a resumed run repeats the uninterrupted one exactly."""
    s = derive_seed(seed, ITERATION_SEED_STREAM, rank, iteration)
    torch.default_generator.manual_seed(s)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(s)


# -- records -----------------------------------------------------------------------------------------------
def train_record(done: int, loss: float, lr: float, t: int, cfg: TrainConfig, curriculum: Any) -> dict[str, Any]:
    """The log record of iteration ``t`` (``done = t + 1`` iterations finished)."""
    return {
        "iteration": done,
        "loss": loss,
        "lr": lr,
        "period": t // cfg.period_iters + 1,
        "tasks": "".join(x.letter for x in curriculum.active_tasks(t)),
    }


def validation_record(iteration: int, result: Any) -> dict[str, Any]:
    """The log record of a validation (an :class:`~mio_strategies.harness.EvalResult`): per-task and average PSNR."""
    table = result.per_task()
    return {
        "iteration": iteration,
        "psnr": {k: v["psnr"] for k, v in table.items()},
        "average": result.average()["psnr"],
    }


def truncate_log(out: Path, iteration: int) -> None:
    """Drop the log records after ``iteration`` (a resumed run logs them again), atomically."""
    log = out / LOG_NAME
    if not log.is_file():
        return
    lines = log.read_text(encoding="utf-8").splitlines()
    keep = [line for line in lines if (rec := read_record(line)) is not None and rec.get("iteration", 0) <= iteration]
    if len(keep) == len(lines):
        return
    with atomic_file(log, "w") as fh:
        fh.write("".join(line + "\n" for line in keep))


def read_record(line: str) -> dict[str, Any] | None:
    """One log line as a record; None for a blank or cut line (a crash in the middle of a write)."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def log_record(out: Path, record: Mapping[str, Any]) -> None:
    """Append one record to the run folder's log."""
    with (out / LOG_NAME).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def yaml_text(data: Mapping[str, Any]) -> str:
    """A config dict as the YAML of the run folder's ``config.yaml``."""
    return yaml.safe_dump(dict(data), sort_keys=False)
