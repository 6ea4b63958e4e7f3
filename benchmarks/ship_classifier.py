"""Train, measure and ship the package's task classifier (``mio_strategies/harness/weights/classifier.pt``).

The classifier is trained by the library's own ``train_classifier`` (what ``mio-strategies train-classifier``
runs) on the embedded photos, on the CPU, with a fixed seed, then measured on crops it never saw:

- ``validation``: new crops, degradation parameters and flips of the embedded photos (another dataset seed),
  the split used to choose ``--steps`` and ``--lr``;
- ``test``: the same kind of crops from yet another seed, looked at once for the shipped file;
- ``demo``: the demo's In-Dis test set (``build_testset`` of the embedded photos, seed 1: whole 256 x 256
  images, as ``mio-strategies demo`` scores them).

Held-out crops are rounded to 8 bits first, as every image file the classifier meets is. Every set uses the
same six photographs as the training: the figures are accuracies on new degradations of known pictures,
not on new pictures.

Writes ``classifier.pt`` and ``classifier.log.jsonl`` (the config, the command, the training curve every 50
steps, the wall time, the accuracy and confusion matrix of every set) into ``--dest`` and prints the
per-task table for the weights README.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/ship_classifier.py --steps 3000 --overwrite
    python benchmarks/ship_classifier.py --evaluate mio_strategies/harness/weights/classifier.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

try:  # run from a clone without installing: use the working tree's package
    import mio_strategies  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mio_strategies.checkpoints import load_classifier
from mio_strategies.data import MiODataset, PairedFolderDataset, build_testset, embedded_image_paths
from mio_strategies.harness import train_classifier
from mio_strategies.harness._weights import WEIGHTS_DIR
from mio_strategies.prompts import classifier_accuracy
from mio_strategies.tasks import NUM_TASKS, TASKS

#: dataset seeds of the held-out crop sets (training uses --seed, 0 by default)
VALIDATION_SEED = 101
TEST_SEED = 202
#: the demo's test set: `mio-strategies demo` builds it with seed + 1 for its default seed 0
DEMO_SEED = 1
LOG_EVERY = 50


def crop_set(seed: int, repeat: int, crop: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of degraded crops of the embedded photos, ``repeat`` per (photo, task), rounded to 8 bits."""
    ds = MiODataset(embedded_image_paths(), "SBNJRHL", patch_size=crop, preset="in", seed=seed, repeat=repeat)
    items = [ds[i] for i in range(len(ds))]
    batches = []
    for i in range(0, len(items), 32):
        chunk = items[i : i + 32]
        lq = torch.stack([it["lq"] for it in chunk]).mul(255).round().div(255)
        batches.append((lq, torch.tensor([int(it["task"]) for it in chunk])))
    return batches


def demo_set() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The demo's In-Dis test set (whole images), one image per batch."""
    with tempfile.TemporaryDirectory() as tmp:
        build_testset(embedded_image_paths(), Path(tmp) / "testset", tasks="SBNJRHL", preset="in", seed=DEMO_SEED)
        ds = PairedFolderDataset(Path(tmp) / "testset")
        return [(ds[i]["lq"][None], torch.tensor([int(ds[i]["task"])])) for i in range(len(ds))]


def measure(clf: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
    """Overall and per-task accuracy and the confusion matrix (rows: true task) on ``batches``."""
    acc, confusion = classifier_accuracy(clf, batches)
    rows = confusion.sum(1).clamp(min=1)
    return {
        "accuracy": acc,
        "n": int(confusion.sum()),
        "per_task": {t.name: float(confusion[t.id, t.id] / rows[t.id]) for t in TASKS},
        "confusion": confusion.tolist(),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    """The Markdown per-task accuracy table of the measured sets."""
    lines = [
        "| set | images | " + " | ".join(t.name for t in TASKS) + " | overall |",
        "|---|" + "---:|" * (NUM_TASKS + 2),
    ]
    for name, r in results.items():
        per = " | ".join(f"{r['per_task'][t.name]:.3f}" for t in TASKS)
        lines.append(f"| {name} | {r['n']} | {per} | {r['accuracy']:.3f} |")
    return "\n".join(lines)


def confusion_text(r: dict[str, Any]) -> str:
    letters = [t.letter for t in TASKS]
    out = ["true\\pred " + " ".join(f"{c:>4}" for c in letters)]
    out += [f"{letters[i]:>9} " + " ".join(f"{v:>4}" for v in row) for i, row in enumerate(r["confusion"])]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=20, help="held-out crops per (photo, task) in each crop set")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default: 1)")
    p.add_argument("--dest", default=str(WEIGHTS_DIR), help="folder of classifier.pt (default: the package's weights)")
    p.add_argument("--sets", default="validation,test,demo", help="held-out sets to measure, comma-separated")
    p.add_argument("--evaluate", metavar="FILE", help="measure an existing classifier file; train nothing")
    p.add_argument("--log", help="with --evaluate: append the measurements to this .log.jsonl")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = sorted(set(sets) - {"validation", "test", "demo"})
    if unknown:
        p.error(f"unknown --sets {unknown}: choose from validation, test, demo")

    records: list[dict[str, Any]] = []
    if args.evaluate:
        clf = load_classifier(args.evaluate)
        crop = int(torch.load(args.evaluate, weights_only=True)["config"]["crop"])
    else:
        dest = Path(args.dest)
        out = dest / "classifier.pt"
        log = dest / "classifier.log.jsonl"
        if log.exists() and not args.overwrite:
            print(f"error: {log} exists: pass --overwrite to replace it", file=sys.stderr)
            return 2
        command = (
            f"mio-strategies train-classifier --output classifier.pt --steps {args.steps} --batch-size "
            f"{args.batch_size} --crop {args.crop} --lr {args.lr:g} --seed {args.seed} --device cpu"
        )
        start, cpu_start = time.perf_counter(), time.process_time()
        run = train_classifier(
            out,
            steps=args.steps,
            batch_size=args.batch_size,
            crop=args.crop,
            lr=args.lr,
            seed=args.seed,
            device="cpu",
            overwrite=args.overwrite,
            progress=False,
        )
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        clf, crop = run.classifier, args.crop
        config = torch.load(out, weights_only=True)["config"]
        records.append(
            {
                "kind": "config",
                "command": command,
                "threads": args.threads,
                "config": config,
                "torch": torch.__version__,
            }
        )
        for s in range(LOG_EVERY, len(run.losses) + 1, LOG_EVERY):
            records.append(
                {
                    "kind": "train",
                    "step": s,
                    "loss": sum(run.losses[s - LOG_EVERY : s]) / LOG_EVERY,
                    "accuracy": sum(run.accuracies[s - LOG_EVERY : s]) / LOG_EVERY,
                }
            )
        records.append(
            {
                "kind": "time",
                "wall_seconds": round(seconds, 1),
                "cpu_seconds": round(cpu_seconds, 1),
                "threads": args.threads,
                "note": "wall time on a shared, loaded CPU",
            }
        )
        print(
            f"trained {args.steps} steps in {seconds:.0f} s wall, {cpu_seconds:.0f} s CPU ({args.threads} thread(s)); "
            f"{out} ({out.stat().st_size / 1e6:.2f} MB)",
            flush=True,
        )
    results: dict[str, dict[str, Any]] = {}
    for name in sets:
        if name == "demo":
            label, batches = "demo test set (seed 1, whole images)", demo_set()
        else:
            seed = VALIDATION_SEED if name == "validation" else TEST_SEED
            label, batches = f"{name} crops (seed {seed}, {crop} px)", crop_set(seed, args.repeat, crop)
        results[label] = measure(clf, batches)
        records.append({"kind": "eval", "set": name, "label": label, **results[label]})
        print(f"{label}: accuracy {results[label]['accuracy']:.3f}\n{confusion_text(results[label])}", flush=True)
    print(table(results))
    if not args.evaluate or args.log:
        path = Path(args.log) if args.evaluate else log
        with open(path, "a" if args.evaluate else "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
        print(f"log: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
