"""Ship a mini-benchmark tier's trained weights with the package, for `mio-strategies demo --pretrained`.

Issue 6's rule: weights are shipped only when they beat the identity (the unrestored input) on every task.
This script reads each run's result.json in a tier's results folder (benchmarks/mini_mio.py --output), refuses
if any of the chosen models is at or below the identity on a task (and names the tasks), and otherwise writes
``<strategy>.pt`` (mio_strategies.harness.export_weights: EMA weights, config, history, validation curve),
``<strategy>.log.jsonl`` (the run's training log) and a README.md with the provenance and the per-task table
into the weights folder.

    python benchmarks/ship_weights.py --results bench-mini-converged --seed 0            # M+EP and S+EP
    python benchmarks/ship_weights.py --results bench-mini-converged --seed 0 --dest /tmp/w --overwrite
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

try:  # run from a clone without installing: use the working tree's package
    import mio_strategies  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mio_strategies.checkpoints import load_checkpoint
from mio_strategies.harness import export_weights, shipped_weights
from mio_strategies.harness._weights import WEIGHTS_DIR, weights_file_name  # the package's own weights folder and names
from mio_strategies.harness.sweep import CHECKPOINT_NAME, LOG_NAME, run_dir_name, stored_config


def _log_name(strategy: str) -> str:
    return weights_file_name(strategy).replace(".pt", ".log.jsonl")


def below_identity(result: dict) -> list[str]:
    """The tasks on which a run's result.json scores at or below the identity."""
    return [t for t, v in result["per_task"].items() if v <= result["identity"][t]]


def ship(results: Path, seed: int, strategies: list[str], dest: Path, overwrite: bool = False) -> list[Path]:
    """Check, then export; nothing is written unless every chosen run is finished, has its log and beats
    the identity on every task, and no file would be replaced without ``overwrite``.

    Raises:
        FileNotFoundError: a run has no result.json (not finished), checkpoint or log.
        ValueError: a run is unfinished, or at or below the identity on some task.
        FileExistsError: ``dest`` already holds one of the files, or weights of other strategies (which
            ``overwrite`` removes), and ``overwrite`` is false.
    """
    strategies = [s.strip().upper() for s in strategies]
    runs = {s: results / run_dir_name(s, seed) for s in strategies}
    loaded = {}
    for s, run in runs.items():
        for name in ("result.json", CHECKPOINT_NAME):
            if not (run / name).is_file():
                raise FileNotFoundError(f"{str(run / name)!r} does not exist: finish the run first "
                                        f"(benchmarks/mini_mio.py with --output {results})")
        if not (run / LOG_NAME).is_file():
            raise FileNotFoundError(f"{str(run / LOG_NAME)!r} does not exist: the run's training log ships with it")
        if not load_checkpoint(run / CHECKPOINT_NAME).get("finished"):
            raise ValueError(f"{str(run / CHECKPOINT_NAME)!r} is an unfinished run: finish it first "
                             f"(benchmarks/mini_mio.py with --output {results})")
        loaded[s] = json.loads((run / "result.json").read_text(encoding="utf-8"))
        bad = below_identity(loaded[s])
        if bad:
            raise ValueError(f"{s} seed {seed} is at or below the identity on {', '.join(bad)}: "
                             "issue 6 ships only weights that beat the identity on every task")
    files = [dest / n for s in strategies for n in (weights_file_name(s), _log_name(s))] + [dest / "README.md"]
    clash = [str(f) for f in files if f.exists()]
    # weights of other strategies would stay beside the new ones, undescribed, and `demo --pretrained` shows them all
    stale = [f for s, w in shipped_weights(dest).items() if s not in strategies for f in (w, dest / _log_name(s))]
    if (clash or stale) and not overwrite:
        found = ([f"{', '.join(clash)} exist"] if clash else []) + (
            [f"{', '.join(str(f) for f in stale if f.exists())} (weights of other strategies, which demo --pretrained "
             "would show beside the new ones) exist"] if stale else [])
        raise FileExistsError("; ".join(found) + ": pass --overwrite to replace them (and remove the other strategies' "
                              "weights), or ship those strategies too")
    for f in stale:
        f.unlink(missing_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for s, run in runs.items():
        written.append(export_weights(run / CHECKPOINT_NAME, dest / weights_file_name(s), overwrite=True))
        log = dest / _log_name(s)
        shutil.copyfile(run / LOG_NAME, log)
        written.append(log)
    kept = _kept_sections(dest / "README.md")  # the classifier's section (benchmarks/ship_classifier.py) stays
    (dest / "README.md").write_text(_readme(results, seed, loaded) + kept, encoding="utf-8")
    written.append(dest / "README.md")
    return written


#: a section of the weights README that this script does not write, kept when it rewrites the README
KEPT_HEADING = "## Task classifier"


def _kept_sections(readme: Path) -> str:
    """The README's part from :data:`KEPT_HEADING` on (the shipped classifier's section), or ``""``."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    at = text.find("\n" + KEPT_HEADING)
    return "" if at < 0 else text[at:]


def _readme(results: Path, seed: int, loaded: dict[str, dict]) -> str:
    first = next(iter(loaded.values()))
    tasks = list(first["per_task"])
    ident = first["identity"]
    cfg = stored_config(results / run_dir_name(next(iter(loaded)), seed), first)[0] or {}
    lines = [
        "# Demo weights", "",
        "Trained by `benchmarks/mini_mio.py` (its runs for seed " f"{seed}, results folder `{results.name}`) and "
        "exported by `benchmarks/ship_weights.py`, which ships weights only when they beat the identity on "
        "every task. `mio-strategies demo --pretrained` evaluates them on the embedded photos. Each `.pt` holds the "
        "EMA weights, the training config, history and validation curve (`load_restorer`); each `.log.jsonl` is the "
        "run's training log. Trained on the package's embedded photos (public domain / CC0); MIT like the code.", "",
    ]
    if cfg:
        lines += [f"Config: backbone `{cfg.get('backbone')}` {cfg.get('backbone_kwargs')}, {cfg.get('periods')} periods x "
                  f"{cfg.get('period_iters')} iterations, batch {cfg.get('batch_size')}, {cfg.get('patch_size')} px, "
                  f"lr {cfg.get('lr')}, EMA {cfg.get('ema_decay')}, order {cfg.get('order')}, seed {cfg.get('seed')}.", ""]
    lines += ["PSNR (dB, RGB, 4-px border crop) on the benchmark's fixed crops of the embedded photos (In-Dis):", "",
              "| model | " + " | ".join(tasks) + " | average |", "|" + "---|" * (len(tasks) + 2),
              "| identity | " + " | ".join(f"{ident[t]:.2f}" for t in tasks) + f" | {statistics.mean(ident.values()):.2f} |"]
    for s, r in loaded.items():
        lines.append(f"| {s} | " + " | ".join(f"{r['per_task'][t]:.2f}" for t in tasks) + f" | {r['average']:.2f} |")
    others = []
    for run in sorted(results.glob(f"*-seed{seed}")):
        res = run / "result.json"
        if not res.is_file():
            continue
        other = json.loads(res.read_text(encoding="utf-8"))
        if other.get("strategy") in loaded:
            continue
        bad = below_identity(other)
        others.append(f"{other.get('strategy', run.name)} (average {other['average']:.2f} dB; "
                      + (f"at or below the identity on {', '.join(bad)})" if bad else "above the identity on every task)"))
    if others:
        lines += ["", "Other finished runs of this seed, not shipped: " + "; ".join(others) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True, help="the tier's results folder (mini_mio.py --output)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategies", nargs="+", default=["M+EP", "S+EP"],
                   help="the runs to ship (default: M+EP S+EP, the mixed and the sequential model with explicit "
                        "prompts; `demo --pretrained` compares whatever is shipped). Seed 0 of the converged tier "
                        "shipped these two: its blind M stayed 0.07 dB under the identity on JPEG")
    p.add_argument("--dest", default=str(WEIGHTS_DIR), help="weights folder (default: the package's)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    try:
        written = ship(Path(args.results), args.seed, args.strategies, Path(args.dest), args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for f in written:
        print(f"{f} ({f.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
