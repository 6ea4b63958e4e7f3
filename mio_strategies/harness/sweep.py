"""Experiment sweeps: a grid of (strategy, seed) training runs in one results folder, trained, resumed,
extended, adopted from elsewhere or scored again, with each run's result cached as ``result.json``.

A :class:`Sweep` holds one configuration: a base :class:`TrainConfig`, the strategies and seeds, the results
folder and the fixed test set (the embedded photos, ``testset_crops`` crops per photo and task). Each run
trains in ``<output>/<strategy with + as _>-seed<seed>`` (``S_EP-seed0``): ``checkpoint.pt``,
``config.yaml``, ``log.jsonl``, then ``result.json`` (its per-task PSNR, the identity's, its configuration,
the test-set size and crops, its learning curve, the standard error of each task's margin). A rerun reuses
a finished run's ``result.json`` and resumes an interrupted run from its checkpoint; a folder holding
another configuration's run is refused before anything trains. Paired seeds: for a seed, every strategy
starts from the same initial weights and draws from the same data seed.

Error messages name the options of ``benchmarks/mini_mio.py`` (``--output``, ``--extend``, ...), the
command this module serves; from Python, the matching :class:`Sweep` fields and arguments are meant.

Example:
    >>> from mio_strategies.harness import load_config
    >>> from mio_strategies.harness.sweep import Sweep
    >>> sweep = Sweep(load_config("mini_quick"), ["M", "S+EP"], [0, 1], "bench-mini", testset_size=96)
    >>> [spec.run_dir.name for spec in sweep.plan()]
    ['M-seed0', 'S_EP-seed0', 'M-seed1', 'S_EP-seed1']
    >>> results = sweep.run(jobs=2)  # doctest: +SKIP
    >>> results["S+EP", 0]["average"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import yaml

from mio_strategies.checkpoints import CheckpointMismatchError, load_checkpoint
from mio_strategies.data import MiODataset, embedded_image_paths
from mio_strategies.harness._config import TrainConfig, load_config
from mio_strategies.harness._eval import evaluate
from mio_strategies.harness._packed import PACKABLE_STRATEGIES, train_packed
from mio_strategies.harness._resume import adds_periods, check_compatible, differing_keys, with_defaults
from mio_strategies.harness._train import CHECKPOINT_NAME as _CHECKPOINT_NAME
from mio_strategies.harness._train import LOG_NAME as _LOG_NAME
from mio_strategies.harness._train import _record, load_restorer, train
from mio_strategies.metrics.statistics import margin_standard_errors
from mio_strategies.utils.validation import is_int, positive_int

__all__ = [
    "CHECKPOINT_NAME",
    "LOG_NAME",
    "RESULT_NAME",
    "TESTSET_SEED",
    "RunSpec",
    "Sweep",
    "adopt_runs",
    "check_cached_result",
    "check_unfinished_run",
    "curve_table",
    "fixed_testset",
    "identity_scores",
    "log_records",
    "peek",
    "read_curve",
    "run_dir_name",
    "run_one",
    "run_status",
    "stored_config",
    "worker_pool",
]

CHECKPOINT_NAME: str = _CHECKPOINT_NAME
"""A run's checkpoint file in its folder (``checkpoint.pt``), written by training; resumed from."""
LOG_NAME: str = _LOG_NAME
"""A run's training log in its folder (``log.jsonl``): one JSON record per line, ``"train"`` and ``"val"``."""
RESULT_NAME = "result.json"
"""A finished run's scores in its folder, the sweep's cache: present means finished."""
TESTSET_SEED = 12345
"""The seed of the fixed test crops' degradation draws (:func:`fixed_testset`)."""

ResultCallback = Callable[[int, "RunSpec", dict[str, Any], "float | None"], None]


def _say(line: str) -> None:
    print(line, flush=True)


def run_dir_name(strategy: str, seed: int) -> str:
    """The folder name of a run: ``"S_EP-seed0"`` for ``("S+EP", 0)``.

    Args:
        strategy: the strategy (``"M"``, ``"S+EP"``, ...).
        seed: the run's seed.

    Returns:
        ``<strategy with + replaced by _>-seed<seed>``.

    Example:
        >>> run_dir_name("S+AP", 2)
        'S_AP-seed2'
    """
    return f"{strategy.replace('+', '_')}-seed{seed}"


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep.

    Attributes:
        strategy: its strategy.
        seed: its seed.
        config: the configuration it trains with.
        run_dir: its folder.
    """

    strategy: str
    seed: int
    config: TrainConfig
    run_dir: Path

    @property
    def key(self) -> tuple[str, int]:
        """``(strategy, seed)``: the run's key in :meth:`Sweep.run`'s results."""
        return self.strategy, self.seed

    @property
    def finished(self) -> bool:
        """Whether the run has its ``result.json`` (trained and scored)."""
        return (self.run_dir / RESULT_NAME).is_file()


def stored_config(out: Path, data: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The configuration a finished run was trained with, and where it was read.

    Args:
        out: the run folder.
        data: its ``result.json``, read.

    Returns:
        ``(config, "result.json")`` from the ``config`` entry of its result.json; for a result.json written
        before that entry existed, ``(config, "config.yaml")`` from the run folder's config.yaml (written
        when training started); ``(None, "")`` when neither records it.

    Example:
        >>> stored_config(Path("nowhere"), {"config": {"periods": 7}})
        ({'periods': 7}, 'result.json')
    """
    if isinstance(data.get("config"), dict):
        return data["config"], "result.json"
    if (out / "config.yaml").is_file():
        saved = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
        if isinstance(saved, dict):
            return saved, "config.yaml"
    return None, ""


def check_cached_result(
    cfg: TrainConfig,
    out: Path,
    data: dict[str, Any],
    testset_size: int | None,
    extend: bool = False,
    testset_crops: int = 1,
    rescore: bool = False,
    curve_crops: int = 1,
) -> bool:
    """Refuse to report a finished run's cached result.json as the result of another configuration.

    The run-defining keys (backbone, strategy and the run setup, as a resume compares them) of the
    configuration the run recorded (:func:`stored_config`) are compared with ``cfg``; a result with no
    recorded configuration is accepted (nothing to compare); a key the recorded configuration does not hold
    (one added to the library later) counts as its default, which that run trained with.

    Args:
        cfg: the configuration requested for this run.
        out: the run folder.
        data: its ``result.json``, read.
        testset_size: the side of the test crops asked for; a result scored on crops of another size is
            refused (its learning curve was scored while training, so it cannot be rescored at another size).
        extend: accept a run recorded with fewer periods than ``cfg`` and otherwise the same, whose
            checkpoint is here, to be continued into the longer schedule.
        testset_crops: test crops per photo and task asked for; a result scored on another number (one
            when it does not record it) is refused unless ``rescore`` or the run is extended (it is scored
            again).
        rescore: the final score is to be computed again from the checkpoint (``--reevaluate``).
        curve_crops: crops per photo and task of the learning curve; a recorded curve on another number
            (its test crops when it does not record them) is refused: the curve is what the run logged
            while it trained.

    Returns:
        True when the run is to be extended (``extend`` and fewer periods recorded), else False.

    Raises:
        ValueError: naming the differing keys (or sizes) and saying to use another --output.

    Example:
        >>> check_cached_result(cfg, run_dir, json.loads((run_dir / "result.json").read_text()), 96)  # doctest: +SKIP
        False
    """
    where = f"{str(out)!r} holds a finished {data.get('strategy', cfg.strategy)} seed {data.get('seed', cfg.seed)} run"
    saved, source = stored_config(out, data)
    longer = False
    if saved is not None:
        requested, recorded = cfg.to_dict(), with_defaults(saved)  # a field recorded before it existed: its default
        keys = differing_keys(saved, requested, resume=True)
        longer = keys == ["periods"] and adds_periods(recorded, requested)
        if longer and extend and not (out / CHECKPOINT_NAME).is_file():
            raise ValueError(
                f"{where} of {recorded['periods']} periods without its checkpoint (adopted from elsewhere?), so it "
                f"cannot be extended to {requested['periods']}: train it with the longer schedule where it was "
                "trained (e.g. on a GPU with gpu_check.sh) and --adopt it, or leave its seed out (--seeds)"
            )
        diffs = [
            f"{key}: {recorded.get(key)!r} in that run, {requested.get(key)!r} requested"
            for key in keys
            if not (longer and extend)
        ]
        if diffs:
            hint = (
                " (or --extend to continue the finished runs into the longer schedule)"
                if longer and (out / CHECKPOINT_NAME).is_file()
                else ""
            )
            raise ValueError(
                f"{where} of another configuration (recorded in its {source}), which would be reported as this "
                f"configuration's result: {'; '.join(diffs)}. Use another --output for this configuration{hint} "
                "(or the run's own settings to reuse it)"
            )
    stored_size = data.get("testset_size")
    if testset_size is not None and stored_size is not None and stored_size != testset_size:
        raise ValueError(
            f"{where} scored on {stored_size}-px test crops, --testset-size {testset_size} requested: pass "
            f"--testset-size {stored_size} to reuse it, or use another --output for the new size"
        )
    stored_crops = data.get("testset_crops", 1)
    stored_curve = data.get("curve_crops", stored_crops)
    if data.get("curve") and stored_curve != curve_crops:
        raise ValueError(
            f"{where} whose learning curve was scored on {stored_curve} test crop(s) per photo and task, "
            f"--curve-crops {curve_crops} requested: pass --curve-crops {stored_curve} to reuse"
            f"{' or extend' if extend else ''} it, or use another --output"
        )
    if stored_crops != testset_crops and not rescore and not (longer and extend):
        raise ValueError(
            f"{where} scored on {stored_crops} test crop(s) per photo and task, --testset-crops {testset_crops} "
            f"requested: pass --testset-crops {stored_crops} to reuse it, --reevaluate to score its checkpoint on "
            "the new crops (its learning curve stays on the old ones), or use another --output"
        )
    return longer and extend


def check_unfinished_run(cfg: TrainConfig, out: Path, extend: bool = False) -> None:
    """Refuse an interrupted run (a checkpoint, no result.json) of another configuration before anything trains.

    Args:
        cfg: the configuration requested for this run.
        out: the run folder, holding a checkpoint.
        extend: a run of fewer periods is accepted, to be continued into ``cfg``'s.

    Raises:
        CheckpointMismatchError (a ValueError): the differing keys, and to use another --output.

    Example:
        >>> check_unfinished_run(cfg, run_dir)  # doctest: +SKIP
    """
    try:
        check_compatible(load_checkpoint(out / CHECKPOINT_NAME), cfg.to_dict(), resume=True, extend=extend)
    except CheckpointMismatchError as exc:
        raise _unfinished_mismatch(out, exc) from exc


def _unfinished_mismatch(out: Path, exc: Exception) -> Exception:
    return CheckpointMismatchError(
        f"{str(out)!r} holds an unfinished run of another configuration ({exc}): use another --output for this "
        "configuration, or the run's own settings to continue it"
    )


def run_one(
    cfg: TrainConfig,
    out: Path,
    testset: Any,
    progress: bool = False,
    reevaluate: bool = False,
    testset_size: int | None = None,
    extend: bool = False,
    testset_crops: int = 1,
    curve_set: Any = None,
    curve_crops: int | None = None,
) -> dict[str, Any]:
    """Train (or resume, or reuse) one run and evaluate it; the result is cached as ``out / "result.json"``.

    Args:
        cfg: the run's configuration.
        out: its folder.
        testset: the dataset it is scored on.
        progress: a progress bar while it trains.
        reevaluate: a finished run's checkpoint is scored again with the current evaluation code (its
            training time and speed are kept from the cached result).
        testset_size: the side of ``testset``'s crops, recorded in result.json with the run's configuration;
            a cached result of another configuration or test-set size is refused (:func:`check_cached_result`),
            and so is an unfinished run of another configuration.
        extend: a finished run of fewer periods (and an interrupted extension) is continued into ``cfg``'s
            schedule; its result.json stays until the extension is scored, then is kept as
            ``result-<periods>periods.json``, and the new one adds its training time to the old one's.
        testset_crops: crops per photo and task of ``testset``, recorded.
        curve_set: what the learning curve is scored on while the run trains (``cfg.val_every``); default
            ``testset``.
        curve_crops: crops per photo and task of ``curve_set`` (with ``curve_set``).

    Returns:
        The result: ``strategy``, ``seed``, ``per_task`` and ``identity`` (PSNR per task), ``average``,
        ``seconds`` (training time over every leg), ``iters_per_second``, ``curve``, ``config``,
        ``testset_size``, ``testset_crops``, ``curve_crops``, ``margin_se``.

    Raises:
        ValueError: the folder holds another configuration's run (finished or not), or a checkpoint that is
            not the finished run its result.json reports: use another --output.

    Example:
        >>> run_one(cfg, Path("bench/M-seed0"), fixed_testset(cfg.order_tasks, 96), testset_size=96)  # doctest: +SKIP
    """
    if curve_crops is None:
        curve_set, curve_crops = testset, testset_crops
    result_path = out / RESULT_NAME
    ckpt = out / CHECKPOINT_NAME
    old = json.loads(result_path.read_text()) if result_path.is_file() else None
    shorter = None  # the result of the shorter run an extension continues (kept when the extension is done)
    kept = out
    if old is not None:
        rescore = reevaluate and ckpt.is_file()
        if check_cached_result(cfg, out, old, testset_size, extend, testset_crops, rescore, curve_crops):
            shorter, old = old, None  # its result.json stays until the extension's replaces it
            periods = (stored_config(out, shorter)[0] or {})["periods"]  # read before config.yaml changes
            kept = out / f"result-{periods}periods.json"
        elif not rescore:
            return old
    t0 = time.perf_counter()
    if old is not None:  # reevaluate a finished run
        seconds, speed, curve = old["seconds"], old["iters_per_second"], old.get("curve", [])
        checkpoint, earlier = ckpt, 0.0
    else:
        val = curve_set if cfg.val_every else None  # the learning curve: the curve's test set every val_every
        try:
            if ckpt.is_file():  # an interrupted run (or one to extend): continue it exactly where it stopped
                res = train(cfg, out, resume=True, extend=extend, progress=progress, val_dataset=val)
            else:
                res = train(cfg, out, overwrite=True, progress=progress, val_dataset=val)
        except CheckpointMismatchError as exc:
            raise _unfinished_mismatch(out, exc) from exc
        # this call's time is added to the earlier legs' (an extension's shorter run among them), as the
        # checkpoint resumed from recorded them; one that predates that record: the shorter run's result's
        seconds, checkpoint = None, res.checkpoint
        earlier = (
            res.run_seconds - res.seconds if res.run_seconds is not None else float((shorter or {}).get("seconds") or 0)
        )
        speed = res.iters_per_second if res.run_iters_per_second is None else res.run_iters_per_second
        curve = read_curve(out / LOG_NAME) if cfg.val_every else []
    restorer, saved_cfg, state = load_restorer(checkpoint)
    if (saved_cfg.strategy, saved_cfg.seed) != (cfg.strategy, cfg.seed):
        raise ValueError(
            f"{str(out)!r} holds a {saved_cfg.strategy} seed {saved_cfg.seed} run, expected "
            f"{cfg.strategy} seed {cfg.seed}: use another --output"
        )
    if old is not None and (not state.get("finished", True) or saved_cfg.periods != cfg.periods):
        raise ValueError(
            f"{str(out)!r}: its checkpoint is not the finished run its result.json reports (iteration "
            f"{state.get('iteration')} of a {saved_cfg.periods}-period run; an interrupted --extend?): finish the "
            "extension (the same command with --extend) before --reevaluate"
        )
    ev = evaluate(restorer, testset, name=cfg.strategy)
    data = {
        "strategy": cfg.strategy,
        "seed": cfg.seed,
        "per_task": {k: v["psnr"] for k, v in ev.per_task().items()},
        "identity": {k: v["psnr"] for k, v in ev.per_task(identity=True).items()},
        "average": ev.average()["psnr"],
        "seconds": seconds if seconds is not None else earlier + time.perf_counter() - t0,  # every leg's
        "iters_per_second": speed,
        "curve": curve,
        "config": (old or {}).get("config") or cfg.to_dict(),
        "testset_size": testset_size,
        "testset_crops": testset_crops,
        "curve_crops": curve_crops,  # a rescored or extended run's curve was checked to be on these
        "margin_se": margin_standard_errors(ev.records),
    }
    if shorter is not None:
        kept.write_text(json.dumps({**shorter, "extended_to": cfg.periods}, indent=1))
    result_path.write_text(json.dumps(data, indent=1))
    return data


def log_records(log: Path, kind: str) -> list[dict[str, Any]]:
    """The records of one kind in a run's ``log.jsonl``, in order.

    Args:
        log: the log file (it need not exist).
        kind: ``"train"`` (loss, lr, period) or ``"val"`` (per-task PSNR).

    Returns:
        The records; none without a log. A cut line (a crash in the middle of a write) is skipped.

    Example:
        >>> log_records(Path("no-such-run") / LOG_NAME, "train")
        []
    """
    if not log.is_file():
        return []
    records = (_record(line) for line in log.read_text(encoding="utf-8").splitlines())
    return [rec for rec in records if rec is not None and rec.get("kind") == kind]


def read_curve(log: Path) -> list[dict[str, Any]]:
    """A run's learning curve from its ``log.jsonl``.

    Args:
        log: the log file.

    Returns:
        ``[{"iteration": i, "per_task": {task: PSNR}}, ...]`` by iteration, one per iteration (a resumed
        run's last).

    Example:
        >>> read_curve(Path("no-such-run") / LOG_NAME)
        []
    """
    by_iter = {r["iteration"]: {"iteration": r["iteration"], "per_task": r["psnr"]} for r in log_records(log, "val")}
    return [by_iter[k] for k in sorted(by_iter)]


def run_status(key: tuple[str, int], run_dir: Path, total: int) -> str:
    """Where a running run stands, from its ``log.jsonl``.

    Args:
        key: ``(strategy, seed)``.
        run_dir: its folder.
        total: the run's total iterations.

    Returns:
        ``"M seed 0: 2750/15000 it, loss 0.0712, period 2 (SB)"``; ``"M seed 0: starting"`` before its first
        record; ``""`` for a run that has not started or has finished (result.json: a cached run, only read
        again).

    Example:
        >>> run_status(("M", 0), Path("no-such-run"), 15000)
        ''
    """
    if not (run_dir / "config.yaml").is_file() or (run_dir / RESULT_NAME).is_file():
        return ""
    steps = log_records(run_dir / LOG_NAME, "train")
    if not steps:
        return f"{key[0]} seed {key[1]}: starting"
    last = steps[-1]
    return (
        f"{key[0]} seed {key[1]}: {last['iteration']}/{total} it, loss {last['loss']:.4f}, "
        f"period {last['period']} ({last['tasks']})"
    )


def peek(out: Path, runs: Iterable[tuple[str, int]], ident: dict[str, float], total: int) -> list[str]:
    """Where each run of a results folder stands, from its folder alone (nothing is trained).

    Works while the runs train in another process: it only reads result.json, config.yaml and log.jsonl.

    Args:
        out: the results folder.
        runs: ``(strategy, seed)`` pairs.
        ident: the identity's PSNR per task on the set the learning curves were scored on.
        total: the runs' total iterations.

    Returns:
        Lines: ``"Runs: M seed 0: 1750/3000 it; S seed 0: finished; ..."``, then a Markdown table of each
        task's margin over the identity after every evaluated period and the average PSNR (runs with a
        learning curve only).

    Example:
        >>> peek(Path("no-such-folder"), [("M", 0)], {"sr": 20.0}, 3000)
        ['Runs: M seed 0: not started']
    """
    tasks = list(ident)
    state, rows = [], []
    for strategy, seed in runs:
        run_dir = out / run_dir_name(strategy, seed)
        steps = log_records(run_dir / LOG_NAME, "train")
        if (run_dir / RESULT_NAME).is_file():
            state.append(f"{strategy} seed {seed}: finished")
        elif not (run_dir / "config.yaml").is_file():
            state.append(f"{strategy} seed {seed}: not started")
        else:
            state.append(f"{strategy} seed {seed}: {steps[-1]['iteration'] if steps else 0}/{total} it")
        for point in read_curve(run_dir / LOG_NAME):
            per = point["per_task"]
            cells = [f"{per[t] - ident[t]:+.2f}" if t in per else "-" for t in tasks]
            avg = statistics.mean(per.values()) if per else float("nan")
            rows.append(f"| {strategy} seed {seed} | {point['iteration']} | " + " | ".join(cells) + f" | {avg:.2f} |")
    lines = ["Runs: " + "; ".join(state)]
    if rows:
        lines += [
            "\nEach task's margin over the identity (dB) after each evaluated period, and the average PSNR:\n",
            "| run | iteration | " + " | ".join(tasks) + " | average |",
            "|" + "---|" * (len(tasks) + 3),
            "| identity | - | "
            + " | ".join(f"{ident[t]:.2f}" for t in tasks)
            + f" | {statistics.mean(ident.values()):.2f} |",
            *rows,
        ]
    return lines


def curve_table(
    results: dict[tuple[str, int], dict[str, Any]],
    strategies: Sequence[str],
    seeds: Sequence[int],
    ident: dict[str, float],
) -> list[str]:
    """The learning curves read: per strategy, the worst task's margin over the identity (mean over seeds)
    after each evaluated iteration, and the first iteration from which the model stays above the identity
    on every task.

    Args:
        results: ``{(strategy, seed): result}`` (:meth:`Sweep.run`); a result's ``curve`` is read.
        strategies: the strategies to report.
        seeds: the seeds to average over (only iterations every seed evaluated are reported).
        ident: the identity's PSNR per task on the set the curves were scored on.

    Returns:
        One line per strategy with a curve: ``"  M: 100: -1.00 sr, 200: +0.50 blur -> above the identity
        on every task from iteration 200 on"``; none for runs without a curve.

    Example:
        >>> curve_table({("M", 0): {"per_task": {}}}, ["M"], [0], {"sr": 20.0})
        []
    """
    lines = []
    for s in strategies:
        curves = [results[(s, seed)].get("curve") or [] for seed in seeds]
        iters = sorted(set.intersection(*({c["iteration"] for c in cv} for cv in curves)))
        if not iters:
            continue
        cells, above = [], []
        for it in iters:
            recs = [next(c for c in cv if c["iteration"] == it)["per_task"] for cv in curves]
            margins = {t: statistics.mean(r[t] for r in recs) - ident[t] for t in ident if all(t in r for r in recs)}
            worst = min(margins, key=lambda t: margins[t])
            cells.append(f"{it}: {margins[worst]:+.2f} {worst}")
            above.append(margins[worst] > 0)
        since = next((iters[i] for i in range(len(iters)) if all(above[i:])), None)
        when = (
            f"above the identity on every task from iteration {since} on"
            if since is not None
            else "not above the identity on every task at the last evaluation"
        )
        lines.append(f"  {s}: " + ", ".join(cells) + f" -> {when}")
    return lines


def fixed_testset(order: Sequence[Any], size: int, crops: int = 1) -> MiODataset:
    """The fixed In-Dis evaluation set of a sweep: every embedded photo x every task x ``crops`` fixed crops.

    Args:
        order: the tasks (``TrainConfig.order_tasks``).
        size: the crops' side in pixels.
        crops: crops per photo and task, each with its own degradation draw (seed :data:`TESTSET_SEED`); the
            first crop of each pair is the same whatever ``crops``.

    Returns:
        The dataset.

    Example:
        >>> from mio_strategies.tasks import TASKS
        >>> len(fixed_testset(TASKS, 24))  # 6 photos x 7 tasks
        42
    """
    return MiODataset(embedded_image_paths(), order, patch_size=size, augment=False, seed=TESTSET_SEED, repeat=crops)


def _test_sets(order: Sequence[Any], size: int, crops: int, curve_crops: int) -> tuple[MiODataset, MiODataset]:
    """(final test set, learning-curve test set): one object when both have as many crops."""
    testset = fixed_testset(order, size, crops)
    return testset, (testset if curve_crops == crops else fixed_testset(order, size, curve_crops))


def identity_scores(dataset: Any) -> dict[str, float]:
    """The identity's (the unrestored input's) PSNR per task on a test set.

    Args:
        dataset: a test set (:func:`fixed_testset`).

    Returns:
        ``{task: PSNR}``.

    Example:
        >>> identity_scores(fixed_testset(TASKS, 24))["sr"]  # doctest: +SKIP
    """
    return {t: v["psnr"] for t, v in evaluate(lambda lq, task: lq, dataset).per_task(identity=True).items()}


def _run_in_child(
    cfg_dict: dict[str, Any],
    run_dir: str,
    testset_size: int,
    reevaluate: bool,
    threads: int,
    extend: bool = False,
    testset_crops: int = 1,
    curve_crops: int = 1,
) -> dict[str, Any]:
    """One run in a worker process of the pool (its own torch threads, its own test set)."""
    torch.set_num_threads(threads)
    cfg = load_config(cfg_dict)
    testset, curve_set = _test_sets(cfg.order_tasks, testset_size, testset_crops, curve_crops)
    return run_one(
        cfg, Path(run_dir), testset, False, reevaluate, testset_size, extend, testset_crops, curve_set, curve_crops
    )


def adopt_runs(
    source: Path, runs: Sequence[RunSpec], testset_size: int, testset_crops: int = 1, curve_crops: int = 1
) -> list[Path]:
    """Copy finished runs trained elsewhere (a GPU, another machine) into a results folder, after checking
    every one of them, so that the sweep reports them as its own.

    Every requested run must be finished in ``source / <its folder name>`` (a seed's strategies stay paired:
    same device and code), recorded with this configuration and test-crop size, and absent here (or an
    empty folder); nothing is copied unless all of them pass. Each run is copied to a temporary sibling,
    then renamed into place.

    Args:
        source: the other results folder.
        runs: the runs to adopt (their ``run_dir`` is the destination).
        testset_size: the test crops' side this sweep scores on.
        testset_crops: test crops per photo and task.
        curve_crops: crops per photo and task of the learning curves.

    Returns:
        The destination folders.

    Raises:
        ValueError: a run unfinished or missing in ``source``, or of another configuration or crop size.
        FileExistsError: this folder already holds one of the runs (started or finished).

    Example:
        >>> adopt_runs(Path("gpu/mini-converged"), sweep.plan(), 96, 8)  # doctest: +SKIP
    """
    checked = []
    for spec in runs:
        dst = spec.run_dir
        src = source / dst.name
        if not (src / RESULT_NAME).is_file():
            raise ValueError(
                f"--adopt: {str(src)!r} holds no finished {spec.strategy} seed {spec.seed} run (no result.json): the "
                "strategies of a seed are adopted together, so that the seed stays paired (one device, one code "
                "version); finish them there first, or adopt other --seeds / --strategies"
            )
        check_cached_result(
            spec.config,
            src,
            json.loads((src / RESULT_NAME).read_text()),
            testset_size,
            testset_crops=testset_crops,
            curve_crops=curve_crops,
        )
        if dst.exists() and any(dst.iterdir()):
            raise FileExistsError(
                f"--adopt: {str(dst)!r} already holds a {spec.strategy} seed {spec.seed} run (started or finished "
                "here); adopting would mix two runs: move it aside first, or adopt other seeds"
            )
        checked.append((src, dst))
    for src, dst in checked:
        tmp = dst.with_name(f".{dst.name}.adopt-tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        if dst.exists():
            dst.rmdir()  # empty (checked above)
        os.replace(tmp, dst)
    return [dst for _src, dst in checked]


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """Worker initializer of :func:`worker_pool`: end this worker when its parent is gone.

    A pool worker outlives a parent killed by a signal (``kill PID`` rather than ``kill -- -PGID``) and keeps
    training its run; a relaunch then resumed the same run in a second process. A daemon thread polls the
    parent's PID and ends the worker (its checkpoints are written by rename: none is left half-written).
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    """The process pool of a sweep's parallel runs: spawned workers (no forked torch state) that end with their
    parent, even one killed by a signal.

    Args:
        jobs: the number of workers.

    Returns:
        The pool (a context manager).

    Example:
        >>> with worker_pool(2) as pool:  # doctest: +SKIP
        ...     pool.submit(os.getpid).result()
    """
    return ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


@dataclass(frozen=True)
class Sweep:
    """A grid of (strategy, seed) runs of one configuration in one results folder, and its fixed test set.

    Attributes:
        base: the configuration every run starts from; each run sets its strategy, seed, name and
            ``val_every``.
        strategies: the strategies.
        seeds: the seeds (paired: every strategy of a seed starts from the same weights and data seed).
        output: the results folder (one run folder per strategy and seed, :func:`run_dir_name`).
        testset_size: the side of the fixed test crops (pixels).
        testset_crops: test crops per photo and task.
        curve_crops: crops per photo and task the learning curve is scored on while a run trains.
        curve: score the learning curve after every period (``val_every = base.period_iters``).
        name: each run's config name is ``<name>-<strategy>-<seed>``.

    Raises:
        TypeError: ``base`` is not a TrainConfig, or a strategy or seed of the wrong type.
        ValueError: no strategies or seeds, a strategy or seed the configuration refuses, or a size or crop
            count that is not a positive integer.

    Example:
        >>> from mio_strategies.harness import load_config
        >>> sweep = Sweep(load_config("mini_quick"), ["M", "S"], [0], "bench", name="mini")
        >>> sweep.plan()[1].config.name, str(sweep.plan()[1].run_dir)
        ('mini-S-0', 'bench/S-seed0')
    """

    base: TrainConfig
    strategies: Sequence[str]
    seeds: Sequence[int]
    output: Path
    testset_size: int = 96
    testset_crops: int = 1
    curve_crops: int = 1
    curve: bool = False
    name: str = "sweep"

    def __post_init__(self) -> None:
        if not isinstance(self.base, TrainConfig):
            raise TypeError(f"Sweep base must be a TrainConfig (load_config(...)), got {type(self.base).__name__}")
        strategies, seeds = tuple(self.strategies), tuple(self.seeds)
        if not strategies or not seeds:
            raise ValueError(f"a Sweep needs at least one strategy and one seed, got {strategies} and {seeds}")
        bad = [s for s in strategies if not isinstance(s, str)] + [s for s in seeds if not is_int(s)]
        if bad:
            raise TypeError(f"Sweep strategies are names (str) and seeds integers: {bad!r} are not")
        for field in ("testset_size", "testset_crops", "curve_crops"):
            positive_int(field, getattr(self, field))
        object.__setattr__(self, "strategies", strategies)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "output", Path(self.output))
        self.plan()  # every run's configuration is valid (a strategy the library does not know is refused)

    @property
    def val_every(self) -> int:
        """How often a run scores its learning curve: every period with ``curve``, else never (0)."""
        return self.base.period_iters if self.curve else 0

    def spec(self, strategy: str, seed: int) -> RunSpec:
        """One run of the grid.

        Args:
            strategy: its strategy.
            seed: its seed.

        Returns:
            Its :class:`RunSpec` (configuration validated).

        Raises:
            ValueError: the strategy or seed is refused by the configuration.
        """
        cfg = self.base.replace(
            strategy=strategy, seed=seed, name=f"{self.name}-{strategy}-{seed}", val_every=self.val_every
        )
        return RunSpec(strategy, seed, cfg, self.output / run_dir_name(strategy, seed))

    def plan(self) -> list[RunSpec]:
        """The runs, seed by seed (every strategy of a seed, then the next seed).

        Returns:
            One :class:`RunSpec` per strategy and seed.
        """
        return [self.spec(s, seed) for seed in self.seeds for s in self.strategies]

    @cached_property
    def test_sets(self) -> tuple[MiODataset, MiODataset]:
        """``(final test set, learning-curve test set)``: one object when both have as many crops."""
        return _test_sets(self.base.order_tasks, self.testset_size, self.testset_crops, self.curve_crops)

    def check(self, *, extend: bool = False, reevaluate: bool = False) -> None:
        """Refuse a folder holding another configuration's runs, before anything is trained or written.

        Args:
            extend: finished runs of fewer periods may be continued (see :func:`check_cached_result`).
            reevaluate: finished runs with a checkpoint will be scored again (another crop count is accepted).

        Raises:
            ValueError: a finished or unfinished run of another configuration or test set, named.
        """
        for spec in self.plan():
            ckpt = spec.run_dir / CHECKPOINT_NAME
            if spec.finished:
                data = json.loads((spec.run_dir / RESULT_NAME).read_text())
                rescore = reevaluate and ckpt.is_file()
                check_cached_result(
                    spec.config,
                    spec.run_dir,
                    data,
                    self.testset_size,
                    extend,
                    self.testset_crops,
                    rescore=rescore,
                    curve_crops=self.curve_crops,
                )
            elif ckpt.is_file():
                check_unfinished_run(spec.config, spec.run_dir, extend)

    def adopt(self, source: str | Path) -> list[Path]:
        """Copy this grid's finished runs from another results folder (:func:`adopt_runs`), all checked first.

        Args:
            source: the other results folder.

        Returns:
            The adopted run folders.

        Raises:
            ValueError: a run unfinished or missing there, or of another configuration or crop size.
            FileExistsError: this folder already holds one of the runs.
        """
        return adopt_runs(Path(source), self.plan(), self.testset_size, self.testset_crops, self.curve_crops)

    def peek(self) -> list[str]:
        """Where each run stands and its learning curve so far (:func:`peek`); nothing is trained or written.

        Returns:
            The report's lines (margins over the identity of the learning curve's test set).
        """
        ident = identity_scores(self.test_sets[1])
        return peek(self.output, [s.key for s in self.plan()], ident, self.base.total_iters)

    def pack_runs(self, *, progress: bool = False, log: Callable[[str], None] = _say) -> None:
        """Train the unfinished M and S runs together in this process, their weights stacked (``train_packed``).

        All are started from scratch, or all resumed from checkpoints of one iteration; other mixes (and
        fewer than two such runs) are left to :meth:`run`, which then scores them.

        Args:
            progress: a progress bar.
            log: where the notes go (default: printed).
        """
        todo = [spec for spec in self.plan() if spec.strategy in PACKABLE_STRATEGIES and not spec.finished]
        if len(todo) < 2:
            return
        saved = [spec.run_dir / CHECKPOINT_NAME for spec in todo]
        if all(c.is_file() for c in saved):
            iters = {int(torch.load(c, map_location="cpu", weights_only=True)["iteration"]) for c in saved}
            if len(iters) > 1:
                log(
                    f"(--pack: the M and S runs were saved at different iterations {sorted(iters)}: trained one by one)"
                )
                return
            resume = True
        elif any(c.is_file() for c in saved):
            log("(--pack: some M and S runs have checkpoints and some not: trained one by one)")
            return
        else:
            resume = False
        t0 = time.perf_counter()
        log(f"packed: {', '.join(spec.run_dir.name for spec in todo)} together")
        curve_set = self.test_sets[1] if self.val_every else None
        res = train_packed(
            [spec.config for spec in todo],
            [spec.run_dir for spec in todo],
            overwrite=not resume,
            resume=resume,
            val_datasets=None if curve_set is None else [curve_set] * len(todo),
            progress=progress,
        )
        rate = res[0].iters_per_second
        log(
            f"packed: {len(todo)} runs to iteration {res[0].iteration} in {time.perf_counter() - t0:.0f} s, "
            f"{rate:.1f} it/s each ({rate * len(todo):.1f} run-iterations/s)"
        )

    def run(
        self,
        *,
        jobs: int = 1,
        reevaluate: bool = False,
        extend: bool = False,
        pack: bool = False,
        progress: bool = False,
        status_every: float = 300.0,
        on_result: ResultCallback | None = None,
        on_status: Callable[[list[str]], None] | None = None,
        log: Callable[[str], None] = _say,
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """Train, resume, extend or reuse every run of the grid and score it; results cached per run.

        The folder is checked first (:meth:`check`): another configuration's run is refused before anything
        trains. Then, with ``pack``, the unfinished M and S runs train together (:meth:`pack_runs`); then
        each run goes through :func:`run_one`, one after the other or in ``jobs`` worker processes
        (:func:`worker_pool`, each with ``cores // jobs`` torch threads).

        Args:
            jobs: runs trained at once in separate processes.
            reevaluate: score finished runs again from their checkpoints (no training).
            extend: continue finished runs of fewer periods into ``base.periods``.
            pack: train the unfinished M and S runs packed first (not with ``reevaluate`` or ``extend``).
            progress: a progress bar per run (``jobs == 1`` only: workers print nothing).
            status_every: with ``jobs > 1``, seconds between status reports of the running runs (0: never).
            on_result: called as each run is done: ``(k, spec, result, started)``, ``k`` counting from 1;
                ``started`` is the ``time.perf_counter()`` at which this run was taken up with ``jobs == 1``,
                ``None`` with a pool (the run trained in a worker).
            on_status: called with the running runs' :func:`run_status` lines every ``status_every`` seconds
                without a finished run (default: ``log`` prints them after the seconds since the call).
            log: where notes go (default: printed).

        Returns:
            ``{(strategy, seed): result}`` (:func:`run_one`'s result) for every run of the grid.

        Raises:
            ValueError: ``extend`` with ``reevaluate``, a bad ``jobs`` or ``status_every``, or a run of another
                configuration in the folder.
        """
        positive_int("jobs", jobs)
        if isinstance(status_every, bool) or not isinstance(status_every, (int, float)) or not status_every >= 0:
            raise ValueError(f"status_every must be 0 (never) or a number of seconds, got {status_every!r}")
        if extend and reevaluate:
            raise ValueError("extend trains: it cannot go with reevaluate (run them separately)")
        self.check(extend=extend, reevaluate=reevaluate)
        if pack and not reevaluate and not extend:
            self.pack_runs(progress=progress, log=log)
        testset, curve_set = self.test_sets
        specs = self.plan()
        results: dict[tuple[str, int], dict[str, Any]] = {}
        if jobs == 1:
            for k, spec in enumerate(specs, 1):
                t0 = time.perf_counter()
                results[spec.key] = r = run_one(
                    spec.config,
                    spec.run_dir,
                    testset,
                    progress,
                    reevaluate,
                    self.testset_size,
                    extend,
                    self.testset_crops,
                    curve_set,
                    self.curve_crops,
                )
                if on_result is not None:
                    on_result(k, spec, r, t0)
            return results
        t_all = time.perf_counter()
        status = on_status or (lambda lines: log(f"[{time.perf_counter() - t_all:.0f} s] " + "; ".join(lines)))

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with worker_pool(jobs) as pool:
            futures: dict[Future[dict[str, Any]], RunSpec] = {}
            queue = list(specs)

            def submit_next() -> Future[dict[str, Any]]:
                # one run per free worker: the pool would hand queued runs to its call queue (and mark them
                # running) ahead of a free worker, and the status lines would name runs not yet training
                spec = queue.pop(0)
                fut = pool.submit(
                    _run_in_child,
                    spec.config.to_dict(),
                    str(spec.run_dir),
                    self.testset_size,
                    reevaluate,
                    threads,
                    extend,
                    self.testset_crops,
                    self.curve_crops,
                )
                futures[fut] = spec
                return fut

            pending, k = {submit_next() for _ in range(min(jobs, len(queue)))}, 0
            while pending:
                done, pending = wait(pending, timeout=status_every or None, return_when=FIRST_COMPLETED)
                for fut in done:
                    k += 1
                    spec = futures[fut]
                    results[spec.key] = fut.result()
                    if on_result is not None:
                        on_result(k, spec, results[spec.key], None)
                    if queue:
                        pending.add(submit_next())
                if not done:  # the workers print nothing while they train: say where each running run is
                    lines = [
                        x
                        for f in pending
                        if f.running() and (x := run_status(futures[f].key, futures[f].run_dir, self.base.total_iters))
                    ]
                    if lines:
                        status(lines)
        return {spec.key: results[spec.key] for spec in specs}
