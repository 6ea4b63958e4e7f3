"""What a sweep's results folder holds, read without training: run folder names, the cached-result and
unfinished-run checks against a requested configuration, the adoption of runs trained elsewhere, the
training logs, and the reports drawn from them (where each run stands, the learning curves). Public
through :mod:`mio_strategies.harness.sweep`."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mio_strategies.checkpoints import CheckpointMismatchError, load_checkpoint
from mio_strategies.harness._config import TrainConfig
from mio_strategies.harness._loop import CHECKPOINT_NAME as _CHECKPOINT_NAME
from mio_strategies.harness._loop import LOG_NAME as _LOG_NAME
from mio_strategies.harness._loop import read_record
from mio_strategies.harness._resume import adds_periods, check_compatible, differing_keys, with_defaults

__all__ = [
    "CHECKPOINT_NAME",
    "LOG_NAME",
    "RESULT_NAME",
    "RunSpec",
    "adopt_runs",
    "check_cached_result",
    "check_unfinished_run",
    "curve_table",
    "log_records",
    "peek",
    "read_curve",
    "run_dir_name",
    "run_status",
    "stored_config",
    "unfinished_mismatch",
]

CHECKPOINT_NAME: str = _CHECKPOINT_NAME
"""A run's checkpoint file in its folder (``checkpoint.pt``), written by training; resumed from."""
LOG_NAME: str = _LOG_NAME
"""A run's training log in its folder (``log.jsonl``): one JSON record per line, ``"train"`` and ``"val"``."""
RESULT_NAME = "result.json"
"""A finished run's scores in its folder, the sweep's cache: present means finished."""


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
        raise unfinished_mismatch(out, exc) from exc


def unfinished_mismatch(out: Path, exc: Exception) -> Exception:
    return CheckpointMismatchError(
        f"{str(out)!r} holds an unfinished run of another configuration ({exc}): use another --output for this "
        "configuration, or the run's own settings to continue it"
    )


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
    records = (read_record(line) for line in log.read_text(encoding="utf-8").splitlines())
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
