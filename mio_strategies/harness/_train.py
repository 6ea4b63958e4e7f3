"""The training entry point: one config, one run, any strategy; exact resume; DDP through torchrun."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mio_strategies.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    prepare_output_dir,
    run_folder_lock,
    save_checkpoint,
)
from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler
from mio_strategies.data import MiODataset, degrade_deferred, embedded_image_paths, list_images, mio_collate
from mio_strategies.harness._acceleration import Acceleration
from mio_strategies.harness._config import TrainConfig, load_config
from mio_strategies.harness._eval import evaluate
from mio_strategies.harness._protocol_run import protocol_train_dataset, protocol_validation_set
from mio_strategies.harness._resume import check_compatible
from mio_strategies.models import Restorer, build_restorer
from mio_strategies.utils.outputs import atomic_file, check_output_dir, flag, remove_stale_tmp_files
from mio_strategies.utils.rng import derive_seed
from mio_strategies.utils.signals import Interrupted, stop_on_signals
from mio_strategies.utils.validation import non_negative_int

__all__ = ["TrainResult", "TrainingInterrupted", "load_restorer", "train"]

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"  # one JSON record per line: "train" (loss, lr, period) and "val" (per-task PSNR)
_MAX_ITEMS = 4_000_000
# The stream of the DataLoader's own generator (the base seeds of its workers), derived from the run's seed;
# a fixed prime so that every run, resumed or packed, replays the same stream.
LOADER_SEED_STREAM = 15485863


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
        how = (f"mio-strategies train --output {str(self.output_dir)!r} --resume" if _cli_spelling()
               else f"train(config, {str(self.output_dir)!r}, resume=True)")
        super().__init__(signum, (
            f"training interrupted by {signal.Signals(signum).name} after iteration {iteration} of {total}; "
            f"checkpoint saved to {str(self.checkpoint)!r}. Resume with: {how}"
        ))


def _cli_spelling() -> bool:
    return flag("resume").startswith("--")


# -- distributed -------------------------------------------------------------------------------------
def _init_distributed(device_kind: str) -> tuple[int, int, bool]:
    """(rank, world_size, we_initialised) from torchrun's environment (``WORLD_SIZE``/``RANK``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    backend = "nccl" if device_kind == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), True


def _all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average gradients over ranks (one flat all-reduce), the data-parallel step of DDP."""
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def _resolve_device(name: str, local_rank: int, fix: str = "device=cpu") -> torch.device:
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


# -- EMA ---------------------------------------------------------------------------------------------
class _EMA:
    """Exponential moving average of a restorer's floating-point state (parameters and buffers)."""

    def __init__(self, restorer: Restorer, decay: float) -> None:
        self.decay = decay
        self.shadow = _float_state(restorer)

    @torch.no_grad()
    def update(self, restorer: Restorer) -> None:
        live = _float_state(restorer, clone=False)
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
        live = _float_state(restorer, clone=False)
        for k, v in self.shadow.items():
            live[k].copy_(v)


def _float_state(restorer: Restorer, clone: bool = True) -> dict[str, torch.Tensor]:
    out = {}
    for prefix, module in (("backbone", restorer.backbone), ("injector", restorer.injector)):
        if module is None:
            continue
        for k, v in module.state_dict(keep_vars=True).items():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                t = v.detach()
                out[f"{prefix}.{k}"] = t.clone() if clone else t
    return out


# -- data ----------------------------------------------------------------------------------------------
def _default_dataset(cfg: TrainConfig, world: int, saved: Mapping[str, Any] | None = None) -> Any:
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
    return MiODataset(images, cfg.order_tasks, patch_size=cfg.patch_size, preset=cfg.preset, seed=cfg.seed, repeat=repeat,
                      implementation=cfg.data_implementation, stream=cfg.stream, synthesis=cfg.synthesis)


def default_validation_set(cfg: TrainConfig) -> Any:
    """Fixed validation patches (``val_size``) of the validation (or training) images, every task."""
    if cfg.protocol is not None and cfg.val_images is None:
        return protocol_validation_set(cfg)

    src = cfg.val_images or cfg.train_images
    images = list_images(src) if src is not None else embedded_image_paths()
    return MiODataset(
        images, cfg.order_tasks, patch_size=cfg.val_size, preset=cfg.preset, augment=False,
        seed=derive_seed(cfg.seed, 7919), implementation=cfg.data_implementation, stream=cfg.stream,
    )


# -- the loop ------------------------------------------------------------------------------------------
def _make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def _make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """The paper's cosine annealing from lr to lr_min, restarting at every period."""
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=cfg.period_iters, eta_min=cfg.lr_min)


def _make_curriculum(cfg: TrainConfig) -> Any:
    if cfg.sequential:
        return Curriculum(cfg.order, periods=cfg.periods, iterations_per_period=cfg.period_iters)
    return Curriculum.mixed(cfg.order, periods=cfg.periods, iterations_per_period=cfg.period_iters)


def train(
    config: TrainConfig | str | Mapping[str, Any],
    output_dir: str | Path,
    *,
    dataset: Any = None,
    val_dataset: Any = None,
    overwrite: bool = False,
    resume: bool = False,
    extend: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train one backbone with one strategy, as the config says; resumable at any iteration.

    The run draws batches with :class:`~mio_strategies.curriculum.SequentialCurriculumSampler`
    (the mixed baseline is the same sampler with all tasks active), optimises the L1 loss with
    Adam/AdamW under a cosine schedule restarting at every period, keeps an EMA of the weights,
    validates every ``val_every`` iterations, and writes ``checkpoint.pt`` atomically every
    ``checkpoint_every`` iterations and at the end. Under ``torchrun`` (``WORLD_SIZE`` > 1) every
    process trains on its own shard of each global batch and gradients are averaged across
    processes; rank 0 writes.

    Args:
        config: a :class:`TrainConfig`, a preset name / YAML path, or a mapping.
        output_dir: the run folder. An existing non-empty folder is refused unless ``overwrite``
            (start over) or ``resume`` (continue from its checkpoint).
        dataset: training data (default: :class:`~mio_strategies.data.MiODataset` over
            ``train_images`` or the embedded photos). Any map-style dataset with ``task_ids`` whose
            items hold ``lq``, ``gt`` and ``task``.
        val_dataset: validation data (default: fixed patches of the validation images).
        resume: continue the run saved in ``output_dir`` exactly where it stopped.
        extend: continue the run saved in ``output_dir`` (finished or not) into the config's schedule,
            which may have more periods than the saved run; every other run-defining key must match.
            Stages enter at the same periods whatever the number of periods, so the added periods
            continue the saved run as if it had been started with the longer schedule: the learning-rate
            cosine restarts at each one, the optimizer, EMA and data stream go on. The default dataset
            stays the one the saved run started with (sized for its length: crops repeat a little more
            often in the added periods), so with it the extended run is not the longer schedule's run
            from the start (which draws from a pool sized for itself); with the same ``dataset`` it is,
            up to the draws of the saved run's last, partial sampler chunk
            (:meth:`SequentialCurriculumSampler.load_state_dict`). Implies ``resume``; a run of the same
            length simply resumes.
        stop_after: stop (with a resumable checkpoint) once this many iterations are done.
        progress: show a tqdm progress bar (rank 0).
        callback: called with every logged record.

    Returns:
        :class:`TrainResult`.

    Raises:
        FileExistsError: ``output_dir`` exists and neither ``overwrite`` nor ``resume``.
        FileNotFoundError: ``resume`` or ``extend`` without a checkpoint in ``output_dir``.
        CheckpointMismatchError: the saved run used another backbone, strategy or setup (with
            ``extend``: other than more periods).

    Example:
        >>> cfg = load_config("cpu_demo", ["period_iters=2", "batch_size=2"])  # doctest: +SKIP
        >>> train(cfg, "runs/demo-M").iteration  # doctest: +SKIP
        14
    """
    cfg = config if isinstance(config, TrainConfig) else load_config(config)
    if stop_after is not None:
        non_negative_int("stop_after", stop_after)
    out = Path(output_dir)
    ckpt_path = out / CHECKPOINT_NAME
    saved: dict[str, Any] | None = None
    if not isinstance(extend, bool):
        raise TypeError(f"extend must be True or False, got {type(extend).__name__} {extend!r}")
    resume = resume or extend
    # a link, a file, a foreign or read-only folder: refused before anything is built
    check_output_dir(out, overwrite=overwrite, resume=resume, what="run folder")
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"cannot {'extend' if extend else 'resume'}: no {CHECKPOINT_NAME} in {str(out)!r}")
        saved = load_checkpoint(ckpt_path)
        if "optimizer" not in saved:
            raise ValueError(
                f"{str(ckpt_path)!r} holds exported weights (no optimizer or sampler state), which cannot be resumed: "
                "resume from the run's own checkpoint, or start a new run"
            )
        check_compatible(saved, cfg.to_dict(), resume=True, extend=extend)

    device_kind = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
    rank, world, own_pg = _init_distributed(device_kind)
    try:
        device = _resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        # Everything that can still fail on this config is built before an existing folder is replaced.
        if dataset is None:
            dataset = _default_dataset(cfg, world, saved)
        if val_dataset is None and cfg.val_images is not None:
            list_images(cfg.val_images)
        with run_folder_lock(out) if rank == 0 else contextlib.nullcontext():  # one trainer per folder
            return _run(cfg, out, saved, dataset, val_dataset, stop_after, progress and rank == 0, callback, rank,
                        world, device, overwrite=overwrite, resume=resume, extend=extend)
    finally:
        if own_pg:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run(cfg, out, saved, dataset, val_dataset, stop_after, progress, callback, rank, world, device,  # noqa: ANN001
         *, overwrite: bool, resume: bool, extend: bool = False) -> TrainResult:
    t_start = time.perf_counter()
    restorer = build_restorer(
        cfg.backbone, cfg.strategy_prompt, backbone_kwargs=cfg.backbone_kwargs,
        seed=cfg.seed, prompt_size=cfg.prompt_size, prompt_init=cfg.prompt_init, prompt_maps=cfg.prompt_maps,
    ).to(device)
    accel = Acceleration(cfg.precision, cfg.compile, cfg.channels_last, device)
    accel.prepare(restorer)  # channels-last, compile: before the optimizer and EMA see the parameters
    params = restorer.parameters()
    optimizer = _make_optimizer(cfg, params)
    scheduler = _make_scheduler(cfg, optimizer)
    ema = _EMA(restorer, cfg.ema_decay) if cfg.ema_decay > 0 else None

    curriculum = _make_curriculum(cfg)
    sampler = SequentialCurriculumSampler(dataset, curriculum, cfg.batch_size, seed=cfg.seed, balance=cfg.balance,
                                          rank=rank, world_size=world)
    total = cfg.total_iters
    start = 0
    history: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    # time spent on the run by the legs before this one, as of the checkpoint resumed from (None: not recorded)
    before: dict[str, float] | None = {"seconds": 0.0, "step_seconds": 0.0, "steps": 0}
    if saved is not None:
        before = dict(saved["timing"]) if isinstance(saved.get("timing"), dict) else None
        restorer.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if ema is not None:
            ema.load_state_dict(saved["ema"])
        sampler.load_state_dict(saved["sampler"], extend=extend)
        if saved.get("precision", "fp32") == cfg.precision:  # another precision's run starts a fresh scaler
            accel.load_state_dict(saved.get("grad_scaler"))
        start = int(saved["iteration"])
        history = list(saved.get("history", []))
        validation = list(saved.get("validation", []))

    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, collate_fn=mio_collate,
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(derive_seed(cfg.seed, LOADER_SEED_STREAM, rank)),
    )
    stop = total if stop_after is None else min(total, max(stop_after, start))
    if rank == 0:
        if val_dataset is None:
            val_dataset = default_validation_set(cfg)
        # only now, with the model, optimizer, data and validation set built, is an existing folder replaced
        prepare_output_dir(out, overwrite=overwrite, resume=resume)
        if saved is not None:  # records logged after the checkpoint belong to the lost part of the run
            # half-written files of this run's own earlier kills (we hold the folder's lock)
            remove_stale_tmp_files(out, (CHECKPOINT_NAME, LOG_NAME, "config.yaml"))
            _truncate_log(out, start)
        with atomic_file(out / "config.yaml", "w") as fh:
            fh.write(_yaml(cfg.to_dict()))

    def timing(elapsed: float) -> dict[str, float] | None:  # elapsed: this leg's wall time so far
        if before is None:
            return None
        return {"seconds": before["seconds"] + elapsed,
                "step_seconds": before["step_seconds"] + step_time, "steps": before["steps"] + steps}

    def checkpoint(iteration: int) -> None:
        if rank != 0:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "backbone": cfg.backbone,
            "strategy": cfg.strategy,
            "config": cfg.to_dict(),
            "iteration": iteration,
            "finished": iteration >= total,
            "model": restorer.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "sampler": sampler.state_dict(iteration=iteration),
            "precision": cfg.precision,
            "grad_scaler": accel.state_dict(),
            "history": history,
            "validation": validation,
            # the whole run's time up to this checkpoint: a leg resumed from it adds its own
            "timing": timing(time.perf_counter() - t_start),
        }
        save_checkpoint(state, out / CHECKPOINT_NAME)

    def validate(iteration: int) -> None:
        nonlocal val_dataset
        if rank != 0:
            return
        if val_dataset is None:
            val_dataset = default_validation_set(cfg)
        with _ema_weights(restorer, ema if cfg.eval_weights == "ema" else None):
            res = evaluate(restorer, val_dataset, device=device, progress=False)
        table = res.per_task()
        rec = {"iteration": iteration, "psnr": {k: v["psnr"] for k, v in table.items()}, "average": res.average()["psnr"]}
        validation.append(rec)
        _log(out, {"kind": "val", **rec})
        if callback is not None:
            callback({"kind": "val", **rec})

    bar = None
    if progress and stop > start:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc=f"{cfg.backbone} {cfg.strategy}", unit="it", dynamic_ncols=True)

    restorer.train()
    step_time = 0.0
    steps = 0
    end = stop
    loop_t0 = None
    # Dropout, drop-path and any other use of torch's global generators in iteration t draw from a seed
    # of (seed, rank, t), so a resumed run repeats the uninterrupted one exactly, on every rank and on
    # CUDA too; the caller's generator states are restored afterwards. SIGINT / SIGTERM only set
    # `stop_request`: the current step is finished and a checkpoint written before stopping.
    with stop_on_signals() as stop_request, torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        it = iter(loader)
        for t in range(start, stop):
            _seed_iteration(derive_seed(cfg.seed, 104729, rank, t), device)  # before the batch: a dataset may draw too
            batch = next(it)
            if t > 0 and t % cfg.period_iters == 0 and (
                cfg.reset_optimizer_each_period
                or (cfg.reset_optimizer_each_stage and curriculum.new_tasks(t // cfg.period_iters))
            ):
                optimizer.state.clear()
            t0 = time.perf_counter()
            lq = accel.inputs(degrade_deferred(batch, device))  # synthesis 'device': degraded here, per task
            gt = accel.inputs(batch["gt"].to(device, non_blocking=True))
            # mixing weights over a composite degradation's tasks (CDD-11) when the data give them, else task ids
            task = batch["prompt" if "prompt" in batch else "task"].to(device)
            with accel.autocast():
                out_img = restorer(lq, task)
            loss = F.l1_loss(out_img.float(), gt)
            optimizer.zero_grad(set_to_none=True)
            accel.backward(loss)
            if world > 1:
                _all_reduce_grads(params, world)
            lr_used = optimizer.param_groups[0]["lr"]
            accel.step(optimizer, scheduler)
            if ema is not None:
                ema.update(restorer)
            step_time += time.perf_counter() - t0
            steps += 1
            done = t + 1
            if bar is not None:
                bar.update(1)
            if cfg.log_every and (done % cfg.log_every == 0 or done == stop):
                rec = {
                    "iteration": done, "loss": float(loss.detach()), "lr": lr_used,
                    "period": t // cfg.period_iters + 1,
                    "tasks": "".join(x.letter for x in curriculum.active_tasks(t)),
                }
                history.append(rec)
                if rank == 0:
                    _log(out, {"kind": "train", **rec})
                    if bar is not None:
                        bar.set_postfix(loss=f"{rec['loss']:.4f}", period=rec["period"], tasks=rec["tasks"])
                if callback is not None:
                    callback({"kind": "train", **rec})
            if cfg.val_every and done % cfg.val_every == 0 and done < total:
                restorer.eval()
                validate(done)
                restorer.train()
            if steps == 1:
                loop_t0 = time.perf_counter()
            elif (steps == _TIMING_STEPS + 1 or (done == stop and 1 < steps <= _TIMING_STEPS)) and (
                callback is not None and loop_t0 is not None  # the first step (warm-up) is not counted
            ):
                per_iter = (time.perf_counter() - loop_t0) / (steps - 1)
                callback({"kind": "timing", "iteration": done, "seconds_per_iteration": per_iter,
                          "remaining_iterations": total - done, "eta_seconds": per_iter * (total - done)})
            if _stop_requested(stop_request, world, device) and done < stop:
                end = done
                break
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < stop:
                checkpoint(done)
        if end >= total and start < total:
            restorer.eval()
            validate(end)
        checkpoint(end)
    if bar is not None:
        bar.close()
    if end < stop:  # stopped by a signal, with the checkpoint of the last finished step written
        raise TrainingInterrupted(stop_request.signum or signal.SIGTERM, end, total, out)
    restorer.eval()
    if ema is not None:
        ema.copy_to(restorer)
    elapsed = time.perf_counter() - t_start
    whole = timing(elapsed)
    return TrainResult(
        output_dir=out, checkpoint=out / CHECKPOINT_NAME, iteration=end, finished=end >= total, history=history,
        validation=validation, seconds=elapsed,
        iters_per_second=steps / step_time if step_time > 0 else 0.0, restorer=restorer,
        run_seconds=None if whole is None else whole["seconds"],
        run_iters_per_second=None if whole is None else (
            whole["steps"] / whole["step_seconds"] if whole["step_seconds"] > 0 else 0.0),
    )


class _ema_weights:
    """Context manager: the restorer holds the EMA weights inside, its live weights again after."""

    def __init__(self, restorer: Restorer, ema: _EMA | None) -> None:
        self.restorer, self.ema = restorer, ema
        self.backup: dict[str, torch.Tensor] | None = None

    def __enter__(self) -> Restorer:
        if self.ema is not None:
            self.backup = _float_state(self.restorer)
            self.ema.copy_to(self.restorer)
        return self.restorer

    def __exit__(self, *exc: object) -> None:
        if self.backup is not None:
            live = _float_state(self.restorer, clone=False)
            with torch.no_grad():
                for k, v in self.backup.items():
                    live[k].copy_(v)


_TIMING_STEPS = 5  # the time per iteration is estimated over the steps after the first, up to this many


def _stop_requested(request: Any, world: int, device: torch.device) -> bool:
    """Whether this step is the last: a signal arrived here, or (data-parallel) on any rank, so that every
    rank stops after the same step."""
    if world <= 1:
        return bool(request)
    import torch.distributed as dist

    flag_t = torch.tensor([1.0 if request else 0.0], device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(flag_t, op=dist.ReduceOp.MAX)
    return bool(flag_t.item() > 0)


def _seed_iteration(seed: int, device: torch.device) -> None:
    """Seed the CPU generator and the training device's CUDA generator (not every device's, as
    ``torch.manual_seed`` would, behind the caller's back: ``fork_rng`` restores only these two)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


def _truncate_log(out: Path, iteration: int) -> None:
    """Drop the log records after ``iteration`` (a resumed run logs them again), atomically."""
    log = out / LOG_NAME
    if not log.is_file():
        return
    lines = log.read_text(encoding="utf-8").splitlines()
    keep = [line for line in lines if (rec := _record(line)) is not None and rec.get("iteration", 0) <= iteration]
    if len(keep) == len(lines):
        return
    with atomic_file(log, "w") as fh:
        fh.write("".join(line + "\n" for line in keep))


def _record(line: str) -> dict[str, Any] | None:
    """One log line as a record; None for a blank or cut line (a crash in the middle of a write)."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def _log(out: Path, record: Mapping[str, Any]) -> None:
    with (out / LOG_NAME).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _yaml(data: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(data), sort_keys=False)


def load_restorer(checkpoint: str | Path, *, ema: bool | None = True, device: str | torch.device = "cpu",
                  expect: Mapping[str, Any] | None = None) -> tuple[Restorer, TrainConfig, dict[str, Any]]:
    """Rebuild the model a checkpoint holds (EMA weights by default).

    Args:
        checkpoint: path of a harness ``checkpoint.pt``.
        ema: load the EMA weights when the run kept them; ``None``: as the run's ``eval_weights`` says
            (``plain`` under the reference profile).
        expect: ``{"backbone": ..., "strategy": ...}`` the caller requires; a mismatch is refused.

    Returns:
        ``(restorer, config, checkpoint dict)``.

    Raises:
        CheckpointMismatchError: the checkpoint is from another backbone or strategy than ``expect``.
    """
    state = load_checkpoint(checkpoint)
    if expect:
        check_compatible(state, {**state["config"], **expect}, resume=False)
    cfg = load_config(state["config"])
    prompt_size = cfg.prompt_size
    saved_maps = (state["model"].get("injector") or {}).get("source.maps") if cfg.prompt_maps else None
    if saved_maps is not None:  # the run's map file is in the checkpoint: no need for the file itself
        prompt_size = int(saved_maps.shape[-1])
    restorer = build_restorer(
        cfg.backbone, cfg.strategy_prompt,
        backbone_kwargs=cfg.backbone_kwargs, seed=cfg.seed, prompt_size=prompt_size,
        prompt_init=cfg.prompt_init, prompt_maps=None if saved_maps is not None else cfg.prompt_maps,
    )
    restorer.load_state_dict(state["model"])
    if ema is None:
        ema = cfg.eval_weights == "ema"
    if ema and state.get("ema") is not None:
        e = _EMA(restorer, cfg.ema_decay or 0.5)
        e.load_state_dict(state["ema"])
        e.copy_to(restorer)
    return restorer.to(device).eval(), cfg, state
