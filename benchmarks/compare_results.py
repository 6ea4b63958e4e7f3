"""Paired differences between results folders of benchmarks/mini_mio.py that differ in one setting.

Each variant folder holds the same strategy and seeds as the baseline folder, trained with some setting
changed (``--set data.implementation=reference``, ``--set prompt_init=reference``, ...). For every seed
present in both, the variant's per-task PSNR minus the baseline's is one paired difference; the table
gives their mean +/- standard deviation over the seeds, per task and on the average, and the settings in
which the paired runs' configurations differ (so that a table cannot silently compare other things).

    python benchmarks/compare_results.py bench-ref-base bench-ref-data bench-ref-init --strategy S+EP
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:  # run from a clone without installing: use the working tree's package
    import mio_strategies  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mio_strategies.harness.sweep import run_dir_name, stored_config
from mio_strategies.metrics.statistics import paired_differences, summarize

# settings that record where or how fast a run went, not what it trained
_NOT_RUN_DEFINING = {"name", "device", "num_workers", "log_every", "checkpoint_every", "val_every"}


def load_results(folder: Path, strategy: str) -> dict[int, tuple[dict, dict]]:
    """The finished runs of ``strategy`` in a results folder: ``{seed: (result.json, config)}``.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    if not folder.is_dir():
        raise FileNotFoundError(
            f"results folder {str(folder)!r} does not exist (the --output of benchmarks/mini_mio.py)"
        )
    prefix = run_dir_name(strategy, 0)[: -len("0")]
    runs = {}
    for run in sorted(folder.glob(f"{prefix}*")):
        seed_text = run.name[len(prefix) :]
        if not seed_text.isdigit() or not (run / "result.json").is_file():
            continue
        result = json.loads((run / "result.json").read_text(encoding="utf-8"))
        config, _ = stored_config(run, result)
        runs[int(seed_text)] = (result, config or {})
    return runs


def config_difference(a: dict, b: dict) -> dict[str, tuple]:
    """The run-defining settings in which two stored configurations differ: ``{key: (a's, b's)}``."""
    keys = (set(a) | set(b)) - _NOT_RUN_DEFINING - {"seed"}
    return {k: (a.get(k), b.get(k)) for k in sorted(keys) if a.get(k) != b.get(k)}


def compare(baseline: Path, variants: list[Path], strategy: str) -> list[str]:
    """The table's lines (markdown).

    Raises:
        ValueError: a variant shares no finished seed with the baseline, or two paired runs differ in their
            seed-independent settings from one seed to the next (the folder mixes configurations).
    """
    base = load_results(baseline, strategy)
    if not base:
        raise ValueError(f"{str(baseline)!r} holds no finished {strategy} run")
    tasks = list(next(iter(base.values()))[0]["per_task"])
    lines = [
        f"| {strategy}: variant - baseline (dB, paired seeds) | seeds | changed | "
        + " | ".join(tasks)
        + " | average |",
        "|---|---|---|" + "---|" * (len(tasks) + 1),
    ]
    for folder in variants:
        runs = load_results(folder, strategy)
        seeds = sorted(set(runs) & set(base))
        if not seeds:
            raise ValueError(
                f"{str(folder)!r} and {str(baseline)!r} share no finished {strategy} seed "
                f"(variant seeds {sorted(runs)}, baseline seeds {sorted(base)})"
            )
        changes = {json.dumps(config_difference(base[s][1], runs[s][1]), sort_keys=True) for s in seeds}
        if len(changes) != 1:
            raise ValueError(
                f"the paired runs of {str(folder)!r} differ from the baseline in other settings per seed: {changes}"
            )
        changed = ", ".join(f"{k}={v[1]}" for k, v in json.loads(changes.pop()).items()) or "nothing"
        cells = []
        for t in tasks:
            diff = paired_differences(
                {s: runs[s][0]["per_task"][t] for s in seeds}, {s: base[s][0]["per_task"][t] for s in seeds}
            )
            cells.append(summarize(diff.values()).format())
        avg = paired_differences({s: runs[s][0]["average"] for s in seeds}, {s: base[s][0]["average"] for s in seeds})
        total = summarize(avg.values())
        lines.append(
            f"| {folder.name} | {', '.join(map(str, seeds))} | {changed} | "
            + " | ".join(cells)
            + f" | {total.format()} ({total.ahead}/{total.n} ahead) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("baseline", type=Path, help="results folder of the baseline setting")
    p.add_argument("variants", type=Path, nargs="+", help="results folders of the variants")
    p.add_argument("--strategy", default="S+EP", help="the strategy compared (default: S+EP)")
    args = p.parse_args(argv)
    try:
        print("\n".join(compare(args.baseline, args.variants, args.strategy)))
    except (ValueError, FileNotFoundError) as exc:
        p.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
