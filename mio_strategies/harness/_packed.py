"""Several runs of one small backbone trained in one process, their weights stacked and stepped together.

A sweep of paired seeds x strategies of a tiny model leaves a GPU idle: each step is a few hundred small
kernel launches. Packing stacks the runs' parameters (``torch.func.stack_module_state``) and runs every
forward, backward and optimizer step once for all of them (``torch.func.vmap`` of
``torch.func.functional_call``: the convolutions become grouped convolutions). Each run keeps its own
data stream, sampler, learning-rate schedule, EMA and checkpoint, written in the format of
:func:`~mio_strategies.harness.train`, so a packed run can be resumed, extended, evaluated or exported
like a separate one.

Packed runs train what separate runs train (same initial weights, same batches, same optimizer
arithmetic, elementwise on the stacked tensors); only the order of floating-point sums inside the
batched convolutions differs, so the weights agree to floating-point tolerance, not bit for bit.

Bare-backbone strategies only (``M``, ``S``): the prompt injector keeps its prompt in Python state set
around each call and validates task ids with data-dependent checks, which ``vmap`` cannot trace across
runs whose batches hold different tasks.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call, stack_module_state, vmap

from mio_strategies.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    prepare_output_dir,
    run_folder_lock,
    save_checkpoint,
)
from mio_strategies.curriculum import SequentialCurriculumSampler
from mio_strategies.data import degrade_deferred
from mio_strategies.harness._config import TrainConfig, load_config
from mio_strategies.harness._eval import evaluate
from mio_strategies.harness._loop import (
    CHECKPOINT_NAME,
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
from mio_strategies.utils.outputs import atomic_file
from mio_strategies.utils.signals import stop_on_signals

__all__ = ["PACKABLE_STRATEGIES", "train_packed"]

PACKABLE_STRATEGIES = ("M", "S")
"""Strategies whose runs can be packed (bare backbones)."""
# keys that may differ between packed runs (everything else is one shared setup)
_FREE = ("name", "seed", "strategy")


def _check_pack(configs: Sequence[Any], output_dirs: Sequence[Any]) -> list[TrainConfig]:
    cfgs = [c if isinstance(c, TrainConfig) else load_config(c) for c in configs]
    if not cfgs:
        raise ValueError("train_packed needs at least one config")
    if len(output_dirs) != len(cfgs):
        raise ValueError(f"train_packed got {len(cfgs)} configs but {len(output_dirs)} output folders: give one each")
    if len({str(Path(o).resolve()) for o in output_dirs}) != len(output_dirs):
        raise ValueError("train_packed got the same output folder twice: give each run its own folder")
    for c in cfgs:
        if c.strategy not in PACKABLE_STRATEGIES:
            raise ValueError(
                f"strategy {c.strategy!r} cannot be packed (the prompt injector's per-call state does not vmap): "
                f"pack {list(PACKABLE_STRATEGIES)} and train prompted strategies with train()"
            )
        if c.reset_optimizer_each_period or c.reset_optimizer_each_stage:
            raise ValueError("packed runs share one optimizer: reset_optimizer_each_period/stage must be false")
        if c.precision != "fp32" or c.compile or c.channels_last:
            raise ValueError(
                "packed runs train in fp32, eager, contiguous: set precision=fp32, compile=false, "
                "channels_last=false (or train them separately with train())"
            )
    first = cfgs[0].to_dict()
    for c in cfgs[1:]:
        d = c.to_dict()
        diff = sorted(k for k in first if k not in _FREE and first[k] != d[k])
        if diff:
            raise ValueError(f"packed runs must share every setting but {list(_FREE)}; these differ: {diff}")
    return cfgs


class _Run:
    """One packed run: its config, folder, data stream and records."""

    def __init__(self, cfg: TrainConfig, out: Path, saved: dict[str, Any] | None) -> None:
        self.cfg, self.out, self.saved = cfg, out, saved
        self.history: list[dict[str, Any]] = list((saved or {}).get("history", []))
        self.validation: list[dict[str, Any]] = list((saved or {}).get("validation", []))


def train_packed(
    configs: Sequence[TrainConfig | str | dict[str, Any]],
    output_dirs: Sequence[str | Path],
    *,
    datasets: Sequence[Any] | None = None,
    val_datasets: Sequence[Any] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
) -> list[Any]:
    """Train several runs of one backbone together, their weights stacked (``torch.func``); one folder each.

    Every run is what :func:`~mio_strategies.harness.train` would train with its config (its seed,
    strategy ``M`` or ``S``, its own data, sampler, EMA and schedule); they must share every other setting.
    Each folder gets the same ``checkpoint.pt``, ``config.yaml`` and ``log.jsonl`` as a separate run.

    Args:
        configs: one config per run (:class:`TrainConfig`, preset name or mapping).
        output_dirs: one run folder per config.
        datasets: one training dataset per run (default: what ``train`` builds).
        val_datasets: one validation dataset per run (default: what ``train`` builds).
        overwrite: replace existing folders.
        resume: continue the runs saved in the folders (all at the same iteration, e.g. written by an
            earlier ``train_packed``).
        stop_after: stop (resumable) once this many iterations are done.
        progress: show a progress bar.

    Returns:
        One :class:`~mio_strategies.harness.TrainResult` per run, in order.

    Raises:
        ValueError: a strategy with prompts, settings that differ beyond seed/strategy/name, a repeated
            folder, runs saved at different iterations.
        TrainingInterrupted: SIGINT or SIGTERM arrived; every run's checkpoint of the last finished step is
            written (resume with ``resume=True``).

    Example:
        >>> cfgs = [load_config("mini_converged", [f"strategy={s}", f"seed={k}"]) for s in "MS" for k in (0, 1)]  # doctest: +SKIP
        >>> results = train_packed(cfgs, [f"runs/{c.strategy}-seed{c.seed}" for c in cfgs])  # doctest: +SKIP
    """
    cfgs = _check_pack(configs, output_dirs)
    options = LoopOptions(stop_after=stop_after, progress=progress, overwrite=overwrite, resume=resume)
    for what, given in (("datasets", datasets), ("val_datasets", val_datasets)):
        if given is not None and len(given) != len(cfgs):
            raise ValueError(f"train_packed got {len(cfgs)} configs but {len(given)} {what}: give one each")
    outs = [Path(o) for o in output_dirs]
    saved: list[dict[str, Any] | None] = [None] * len(cfgs)
    if options.resume:
        for i, (c, o) in enumerate(zip(cfgs, outs)):
            if not (o / CHECKPOINT_NAME).is_file():
                raise FileNotFoundError(f"cannot resume: no {CHECKPOINT_NAME} in {str(o)!r}")
            state = saved[i] = load_checkpoint(o / CHECKPOINT_NAME)
            check_compatible(state, c.to_dict(), resume=True)
        iters = {int(s["iteration"]) for s in saved if s is not None}
        if len(iters) > 1:
            raise ValueError(
                f"cannot resume packed runs saved at different iterations {sorted(iters)}: "
                "resume them separately with train(..., resume=True)"
            )
    cfg0 = cfgs[0]
    device = resolve_device(cfg0.device, 0)
    runs = [_Run(c, o, s) for c, o, s in zip(cfgs, outs, saved)]
    t_start = time.perf_counter()
    with contextlib.ExitStack() as locks:
        for o in outs:
            locks.enter_context(run_folder_lock(o))
        # -- the runs' models, stacked -------------------------------------------------------------
        restorers: list[Restorer] = []
        for r in runs:
            rest = build_restorer(
                r.cfg.backbone,
                None,
                backbone_kwargs=r.cfg.backbone_kwargs,
                seed=r.cfg.seed,
                prompt_size=r.cfg.prompt_size,
                prompt_init=r.cfg.prompt_init,
            ).to(device)
            if r.saved is not None:
                rest.load_state_dict(r.saved["model"])
            restorers.append(rest)
        nets = [r.backbone for r in restorers]
        params, buffers = stack_module_state(nets)
        base = copy.deepcopy(nets[0]).to("meta")
        names = list(params)
        flat = [params[k] for k in names]
        optimizer = make_optimizer(cfg0, flat)
        scheduler = make_scheduler(cfg0, optimizer)
        float_keys = [k for k, v in nets[0].state_dict().items() if v.is_floating_point()]
        stacked_state = {**params, **buffers}
        ema = None
        if cfg0.ema_decay > 0:
            ema = {
                k: torch.stack(
                    [
                        (
                            r.saved["ema"][f"backbone.{k}"].to(device)
                            if r.saved is not None
                            else stacked_state[k][i].detach()
                        )
                        for i, r in enumerate(runs)
                    ]
                ).clone()
                for k in float_keys
            }
        start = 0
        if saved[0] is not None:
            start = int(saved[0]["iteration"])
            optimizer.load_state_dict(_stack_optimizer([s["optimizer"] for s in saved]))  # type: ignore[index]
            scheduler.load_state_dict(saved[0]["scheduler"])
        total = cfg0.total_iters
        stop = options.stop(start, total)
        # -- each run's data ------------------------------------------------------------------------
        loaders, samplers, curricula = [], [], []
        for i, r in enumerate(runs):
            ds = datasets[i] if datasets is not None else default_dataset(r.cfg, 1, r.saved)
            cur = make_curriculum(r.cfg)
            smp = SequentialCurriculumSampler(ds, cur, r.cfg.batch_size, seed=r.cfg.seed, balance=r.cfg.balance)
            if r.saved is not None:
                smp.load_state_dict(r.saved["sampler"])
            samplers.append(smp)
            curricula.append(cur)
            loaders.append(make_loader(r.cfg, ds, smp, device, 0))
        val_sets = list(val_datasets) if val_datasets is not None else [default_validation_set(r.cfg) for r in runs]
        for r in runs:
            prepare_output_dir(r.out, overwrite=options.overwrite, resume=options.resume)
            if r.saved is not None:
                truncate_log(r.out, start)
            with atomic_file(r.out / "config.yaml", "w") as fh:
                fh.write(yaml_text(r.cfg.to_dict()))

        def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (p, b), (x,))

        batched = vmap(forward, randomness="error")

        def write_back(with_ema: bool) -> None:
            """Copy each run's slice of the stacked weights into its own backbone (EMA weights if asked)."""
            with torch.no_grad():
                for i, net in enumerate(nets):
                    live = net.state_dict(keep_vars=True)
                    for k, v in stacked_state.items():
                        live[k].copy_(v[i])
                    if with_ema and ema is not None:
                        for k in float_keys:
                            live[k].copy_(ema[k][i])

        step_time, steps = 0.0, 0
        # the time of the legs before this one, per run, as its checkpoint recorded it (None: not recorded)
        before = [
            dict(r.saved["timing"])
            if r.saved is not None and isinstance(r.saved.get("timing"), dict)
            else (None if r.saved is not None else {"seconds": 0.0, "step_seconds": 0.0, "steps": 0})
            for r in runs
        ]

        def timing(i: int) -> dict[str, float] | None:
            """Run ``i``'s time so far: the packed legs' wall and step time count for each run packed in them."""
            b = before[i]
            if b is None:
                return None
            return {
                "seconds": b["seconds"] + time.perf_counter() - t_start,
                "step_seconds": b["step_seconds"] + step_time,
                "steps": b["steps"] + steps,
            }

        def checkpoint(iteration: int) -> None:
            write_back(False)
            opt_states = _unstack_optimizer(optimizer.state_dict(), len(runs))
            for i, r in enumerate(runs):
                state = {
                    "format": CHECKPOINT_FORMAT,
                    "version": CHECKPOINT_VERSION,
                    "backbone": r.cfg.backbone,
                    "strategy": r.cfg.strategy,
                    "config": r.cfg.to_dict(),
                    "iteration": iteration,
                    "finished": iteration >= total,
                    "model": restorers[i].state_dict(),
                    "ema": None if ema is None else {f"backbone.{k}": ema[k][i].clone() for k in float_keys},
                    "optimizer": opt_states[i],
                    "scheduler": scheduler.state_dict(),
                    "sampler": samplers[i].state_dict(iteration=iteration),
                    "precision": "fp32",
                    "grad_scaler": None,
                    "history": r.history,
                    "validation": r.validation,
                    "timing": timing(i),
                    "packed": len(runs),
                }
                save_checkpoint(state, r.out / CHECKPOINT_NAME)

        def validate(iteration: int) -> None:
            write_back(False)
            for i, r in enumerate(runs):
                e = _EMAView(ema, float_keys, i) if ema is not None and r.cfg.eval_weights == "ema" else None
                with ema_weights(restorers[i], e):
                    res = evaluate(restorers[i].eval(), val_sets[i], device=device, progress=False)
                restorers[i].train()
                rec = validation_record(iteration, res)
                r.validation.append(rec)
                log_record(r.out, {"kind": "val", **rec})

        bar = None
        if options.progress and stop > start:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=start, desc=f"{cfg0.backbone} x{len(runs)} packed", unit="it")
        for net in nets:
            net.train()
        base.train()
        end = stop
        # SIGINT / SIGTERM finish the current step and write every run's checkpoint, as train() does
        with (
            stop_on_signals() as stop_request,
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        ):
            its = [iter(ld) for ld in loaders]
            for t in range(start, stop):
                batches = []
                for r, it in zip(runs, its):  # each run's batch after its own iteration seed, as train() draws it
                    seed_iteration(r.cfg.seed, 0, t, device)
                    batches.append(next(it))
                t0 = time.perf_counter()
                lq = torch.stack([degrade_deferred(b, device) for b in batches])  # synthesis 'device': here
                gt = torch.stack([b["gt"] for b in batches]).to(device, non_blocking=True)
                out = batched(params, buffers, lq)
                per_run = (out - gt).abs().flatten(1).mean(1)  # each run's L1 loss
                optimizer.zero_grad(set_to_none=True)
                per_run.sum().backward()  # the runs' parameters are disjoint: each gets its own run's gradient
                lr_used = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                if ema is not None:
                    with torch.no_grad():
                        keys = list(ema)
                        torch._foreach_lerp_(
                            [ema[k] for k in keys], [stacked_state[k].detach() for k in keys], 1.0 - cfg0.ema_decay
                        )
                step_time += time.perf_counter() - t0
                steps += 1
                done = t + 1
                if bar is not None:
                    bar.update(1)
                if cfg0.log_every and (done % cfg0.log_every == 0 or done == stop):
                    losses = per_run.detach().cpu().tolist()
                    for i, r in enumerate(runs):
                        rec = train_record(done, float(losses[i]), lr_used, t, cfg0, curricula[i])
                        r.history.append(rec)
                        log_record(r.out, {"kind": "train", **rec})
                if cfg0.val_every and done % cfg0.val_every == 0 and done < total:
                    validate(done)
                if stop_request and done < stop:
                    end = done
                    break
                if cfg0.checkpoint_every and done % cfg0.checkpoint_every == 0 and done < stop:
                    checkpoint(done)
            if end >= total and start < total:
                validate(end)
            checkpoint(end)
        if bar is not None:
            bar.close()
        if end < stop:
            raise TrainingInterrupted(stop_request.signum or signal.SIGTERM, end, total, outs[0])
        write_back(True)  # each restorer holds its EMA weights, as train() returns it
    elapsed = time.perf_counter() - t_start
    results = []
    for i, r in enumerate(runs):
        whole = timing(i)
        results.append(
            TrainResult(
                output_dir=r.out,
                checkpoint=r.out / CHECKPOINT_NAME,
                iteration=end,
                finished=end >= total,
                history=r.history,
                validation=r.validation,
                seconds=elapsed,
                iters_per_second=steps / step_time if step_time > 0 else 0.0,
                restorer=restorers[i].eval(),
                run_seconds=None if whole is None else whole["seconds"],
                run_iters_per_second=None
                if whole is None or not whole["step_seconds"]
                else whole["steps"] / whole["step_seconds"],
            )
        )
    return results


class _EMAView:
    """Run ``i``'s slice of the stacked EMA, with the ``copy_to`` that ``ema_weights`` calls."""

    def __init__(self, ema: dict[str, torch.Tensor], keys: list[str], i: int) -> None:
        self.ema, self.keys, self.i = ema, keys, i

    @torch.no_grad()
    def copy_to(self, restorer: Restorer) -> None:
        live = restorer.backbone.state_dict(keep_vars=True)
        for k in self.keys:
            live[k].copy_(self.ema[k][self.i])


def _unstack_optimizer(state: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The stacked optimizer's state dict as ``n`` per-run state dicts (what each run's own optimizer holds)."""
    out = []
    for i in range(n):
        per = {}
        for idx, st in state["state"].items():
            per[idx] = {
                k: (
                    v[i].clone()
                    if isinstance(v, torch.Tensor) and v.ndim > 0
                    else (v.clone() if isinstance(v, torch.Tensor) else v)
                )
                for k, v in st.items()
            }
        out.append({"state": per, "param_groups": copy.deepcopy(state["param_groups"])})
    return out


def _stack_optimizer(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The inverse of :func:`_unstack_optimizer` (steps are shared: the runs are at one iteration)."""
    first = states[0]
    stacked: dict[Any, Any] = {}
    for idx, st in first["state"].items():
        stacked[idx] = {
            k: (torch.stack([s["state"][idx][k] for s in states]) if isinstance(v, torch.Tensor) and v.ndim > 0 else v)
            for k, v in st.items()
        }
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}
