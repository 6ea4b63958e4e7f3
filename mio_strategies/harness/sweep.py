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

import contextlib
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from mio_strategies.checkpoints import CheckpointMismatchError
from mio_strategies.data import MiODataset, embedded_image_paths
from mio_strategies.harness._config import TrainConfig, load_config
from mio_strategies.harness._eval import evaluate
from mio_strategies.harness._packed import PACKABLE_STRATEGIES, train_packed
from mio_strategies.harness._sweep_folder import (
    CHECKPOINT_NAME,
    LOG_NAME,
    RESULT_NAME,
    RunSpec,
    adopt_runs,
    check_cached_result,
    check_unfinished_run,
    curve_table,
    log_records,
    peek,
    read_curve,
    run_dir_name,
    run_status,
    stored_config,
    unfinished_mismatch,
)
from mio_strategies.harness._train import load_restorer, train
from mio_strategies.metrics.statistics import margin_standard_errors
from mio_strategies.utils.signals import Interrupted, interrupt_on_signals
from mio_strategies.utils.validation import finite_float, is_int, positive_int

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

TESTSET_SEED = 12345
"""The seed of the fixed test crops' degradation draws (:func:`fixed_testset`)."""

ResultCallback = Callable[[int, "RunSpec", dict[str, Any], "float | None"], None]


def _say(line: str) -> None:
    print(line, flush=True)


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
            raise unfinished_mismatch(out, exc) from exc
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


#: seconds the parent of a sweep's workers waits, after a signal, for runs that got it too to save and end,
#: before it passes the signal on to those still running (a second signal would stop a run without saving)
SIGNAL_GRACE_SECONDS = 20.0


def _stop_workers(pending: set[Future[dict[str, Any]]], signum: int, grace: float = SIGNAL_GRACE_SECONDS) -> None:
    """Stop a sweep's running workers with their checkpoints saved after the parent got ``signum``.

    A signal sent to the process group (Ctrl-C in a terminal, ``kill -- -PGID``) reaches the workers too: each
    finishes its step, saves and ends. One sent to the parent alone (``kill PID``) does not: the runs still
    running after ``grace`` seconds get it passed on, once, and are waited for.
    """
    running = {f for f in pending if f.running()}
    if not running:
        return
    _done, still = wait(running, timeout=grace)
    if still:
        for child in multiprocessing.active_children():  # the pool's workers, spawned by this process
            if child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)
        wait(still, timeout=max(grace, 60.0))


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
        finite_float("status_every", status_every, low=0, note=" (seconds; 0: never)", type_error=False)
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

            pending: set[Future[dict[str, Any]]] = set()
            try:  # a signal to this process stops the workers' runs with their checkpoints saved
                with interrupt_on_signals():
                    for _ in range(min(jobs, len(queue))):
                        pending.add(submit_next())
                    k = 0
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
                                if f.running()
                                and (x := run_status(futures[f].key, futures[f].run_dir, self.base.total_iters))
                            ]
                            if lines:
                                status(lines)
            except Interrupted as exc:
                _stop_workers(pending, exc.signum)
                raise
        return {spec.key: results[spec.key] for spec in specs}
