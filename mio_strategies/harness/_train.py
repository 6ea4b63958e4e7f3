"""The training entry point: one config, one run, any strategy; exact resume; DDP through torchrun."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from mio_strategies.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    prepare_output_dir,
    run_folder_lock,
    save_checkpoint,
)
from mio_strategies.curriculum import SequentialCurriculumSampler
from mio_strategies.data import degrade_deferred, list_images
from mio_strategies.harness._acceleration import Acceleration
from mio_strategies.harness._config import TrainConfig, load_config
from mio_strategies.harness._eval import evaluate
from mio_strategies.harness._loop import (
    CHECKPOINT_NAME,
    EMA,
    LOG_NAME,
    LoopOptions,
    TrainingInterrupted,
    TrainResult,
    default_dataset,
    default_validation_set,
    ema_weights,
    log_record,
    make_curriculum,
    make_loader,
    make_optimizer,
    make_scheduler,
    resolve_device,
    seed_iteration,
    train_record,
    truncate_log,
    validation_record,
    yaml_text,
)
from mio_strategies.harness._resume import check_compatible
from mio_strategies.models import Restorer, build_restorer
from mio_strategies.utils.outputs import atomic_file, check_output_dir, remove_stale_tmp_files
from mio_strategies.utils.signals import stop_on_signals
from mio_strategies.utils.validation import non_negative_int

__all__ = ["TrainResult", "TrainingInterrupted", "load_restorer", "train"]

# -- distributed -------------------------------------------------------------------------------------
def _init_distributed(device_kind: str) -> tuple[int, int, bool]:
    """(rank, world_size, we_initialised) from torchrun's environment (``WORLD_SIZE``/``RANK``)."""
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


# -- the loop ------------------------------------------------------------------------------------------
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
        device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        # Everything that can still fail on this config is built before an existing folder is replaced.
        if dataset is None:
            dataset = default_dataset(cfg, world, saved)
        if val_dataset is None and cfg.val_images is not None:
            list_images(cfg.val_images)
        options = LoopOptions(stop_after=stop_after, progress=progress and rank == 0, callback=callback,
                              overwrite=overwrite, resume=resume, extend=extend)
        ctx = _RunContext(cfg, out, saved, dataset, val_dataset, rank, world, device, options)
        with run_folder_lock(out) if rank == 0 else contextlib.nullcontext():  # one trainer per folder
            return _run(ctx)
    finally:
        if own_pg:
            dist.destroy_process_group()


@dataclass(frozen=True)
class _RunContext:
    """One call of :func:`train`, checked and placed: what :func:`_run` trains, where, and on which process.

    Attributes:
        cfg: the validated config.
        out: the run folder.
        saved: the checkpoint resumed from (None: a fresh run).
        dataset: the training set.
        val_dataset: the validation set (None: the config's default, built on rank 0).
        rank: this process's rank; ``world`` the number of processes.
        device: the training device.
        options: where the call stops, what it reports, what it does with the folder.
    """

    cfg: TrainConfig
    out: Path
    saved: dict[str, Any] | None
    dataset: Any
    val_dataset: Any
    rank: int
    world: int
    device: torch.device
    options: LoopOptions


def _run(ctx: _RunContext) -> TrainResult:
    """The training loop of one run (on one rank), from ``ctx.saved``'s iteration to the stop."""
    cfg, out, saved, dataset, val_dataset = ctx.cfg, ctx.out, ctx.saved, ctx.dataset, ctx.val_dataset
    rank, world, device, callback = ctx.rank, ctx.world, ctx.device, ctx.options.callback
    t_start = time.perf_counter()
    restorer = build_restorer(
        cfg.backbone, cfg.strategy_prompt, backbone_kwargs=cfg.backbone_kwargs,
        seed=cfg.seed, prompt_size=cfg.prompt_size, prompt_init=cfg.prompt_init, prompt_maps=cfg.prompt_maps,
    ).to(device)
    accel = Acceleration(cfg.precision, cfg.compile, cfg.channels_last, device)
    accel.prepare(restorer)  # channels-last, compile: before the optimizer and EMA see the parameters
    params = restorer.parameters()
    optimizer = make_optimizer(cfg, params)
    scheduler = make_scheduler(cfg, optimizer)
    ema = EMA(restorer, cfg.ema_decay) if cfg.ema_decay > 0 else None

    curriculum = make_curriculum(cfg)
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
        sampler.load_state_dict(saved["sampler"], extend=ctx.options.extend)
        if saved.get("precision", "fp32") == cfg.precision:  # another precision's run starts a fresh scaler
            accel.load_state_dict(saved.get("grad_scaler"))
        start = int(saved["iteration"])
        history = list(saved.get("history", []))
        validation = list(saved.get("validation", []))

    loader = make_loader(cfg, dataset, sampler, device, rank)
    stop = ctx.options.stop(start, total)
    if rank == 0:
        if val_dataset is None:
            val_dataset = default_validation_set(cfg)
        # only now, with the model, optimizer, data and validation set built, is an existing folder replaced
        prepare_output_dir(out, overwrite=ctx.options.overwrite, resume=ctx.options.resume)
        if saved is not None:  # records logged after the checkpoint belong to the lost part of the run
            # half-written files of this run's own earlier kills (we hold the folder's lock)
            remove_stale_tmp_files(out, (CHECKPOINT_NAME, LOG_NAME, "config.yaml"))
            truncate_log(out, start)
        with atomic_file(out / "config.yaml", "w") as fh:
            fh.write(yaml_text(cfg.to_dict()))

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
        with ema_weights(restorer, ema if cfg.eval_weights == "ema" else None):
            res = evaluate(restorer, val_dataset, device=device, progress=False)
        rec = validation_record(iteration, res)
        validation.append(rec)
        log_record(out, {"kind": "val", **rec})
        if callback is not None:
            callback({"kind": "val", **rec})

    bar = None
    if ctx.options.progress and stop > start:
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
            seed_iteration(cfg.seed, rank, t, device)  # before the batch: a dataset may draw too
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
                rec = train_record(done, float(loss.detach()), lr_used, t, cfg, curriculum)
                history.append(rec)
                if rank == 0:
                    log_record(out, {"kind": "train", **rec})
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
    if world > 1:  # no rank returns (or tears the group down) before rank 0 has written the checkpoint it names
        # on CUDA each rank's own GPU (NCCL would otherwise take the current device, GPU 0 unless set)
        dist.barrier(device_ids=[device.index] if device.type == "cuda" and device.index is not None else None)
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


_TIMING_STEPS = 5  # the time per iteration is estimated over the steps after the first, up to this many


def _stop_requested(request: Any, world: int, device: torch.device) -> bool:
    """Whether this step is the last: a signal arrived here, or (data-parallel) on any rank, so that every
    rank stops after the same step."""
    if world <= 1:
        return bool(request)
    flag_t = torch.tensor([1.0 if request else 0.0], device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(flag_t, op=dist.ReduceOp.MAX)
    return bool(flag_t.item() > 0)


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
        e = EMA(restorer, cfg.ema_decay or 0.5)
        e.load_state_dict(state["ema"])
        e.copy_to(restorer)
    return restorer.to(device).eval(), cfg, state
