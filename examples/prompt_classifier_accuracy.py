"""Train the TaskClassifier on degraded crops and report its In-Dis accuracy (paper: 0.997).

Train and test use different photographs: the embedded images are split by name (the last
``--test-images`` of them, sorted, are held out), and the streams draw crops, tasks and
degradation parameters from different seeded generators. For comparison it also reports the
accuracy on new crops and parameters of the training photographs (another seed). Degradations are the library's
:func:`mio_strategies.degradations.degrade` with the In-Dis preset. Note that this measures the
classifier on the six embedded photographs, not on MiO100.

Run: ``python examples/prompt_classifier_accuracy.py --steps 2000`` (defaults are a quick check).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mio_strategies.data import load_embedded_images
from mio_strategies.degradations import degrade
from mio_strategies.prompts import TaskClassifier, classifier_accuracy, train_task_classifier
from mio_strategies.tasks import NUM_TASKS, TASKS


def batches(
    images: Sequence[torch.Tensor], steps: int, batch: int, crop: int, preset: str, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` batches of random crops of ``images``, each degraded by a random task (all from ``generator``)."""
    for _ in range(steps):
        crops, ids = [], []
        for _ in range(batch):
            img = images[int(torch.randint(len(images), (1,), generator=generator))]
            h, w = img.shape[-2:]
            top = int(torch.randint(h - crop + 1, (1,), generator=generator))
            left = int(torch.randint(w - crop + 1, (1,), generator=generator))
            crops.append(img[:, top:top + crop, left:left + crop])
            ids.append(int(torch.randint(NUM_TASKS, (1,), generator=generator)))
        gt = torch.stack(crops)
        ids_t = torch.tensor(ids)
        lq = torch.empty_like(gt)
        for t in range(NUM_TASKS):
            sel = ids_t == t
            if sel.any():
                lq[sel], _ = degrade(gt[sel], TASKS[t], preset=preset, generator=generator)
        yield lq, ids_t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128, help="crop size (the reference uses 256)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--test-batches", type=int, default=20)
    ap.add_argument("--test-images", type=int, default=2, help="embedded images held out for testing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    named = load_embedded_images()
    names = sorted(named)
    if not 1 <= args.test_images < len(names):
        ap.error(f"--test-images must be 1..{len(names) - 1}, got {args.test_images}")
    train_names, test_names = names[: -args.test_images], names[-args.test_images :]
    print(f"train images: {train_names}; held-out test images: {test_names}")
    train_images = [named[n] for n in train_names]
    test_images = [named[n] for n in test_names]

    clf = TaskClassifier(generator=torch.Generator().manual_seed(args.seed))
    train_gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    hist = train_task_classifier(
        clf, batches(train_images, args.steps, args.batch, args.crop, "in", train_gen), lr=args.lr,
        callback=lambda s, loss, acc: s % 50 == 0 and print(f"step {s}: loss {loss:.3f} acc {acc:.2f}", flush=True),
    )
    train_s = time.perf_counter() - start
    print(f"trained {hist.steps} steps (batch {args.batch}, crop {args.crop}, lr {args.lr}, {train_s:.0f} s)")
    for label, imgs, offset in (
        ("held-out images", test_images, 1000),
        ("training images, new crops and seed", train_images, 2000),
    ):
        test_gen = torch.Generator().manual_seed(args.seed + offset)
        acc, confusion = classifier_accuracy(clf, batches(imgs, args.test_batches, args.batch, args.crop, "in", test_gen))
        print(f"In-Dis accuracy, {label} ({int(confusion.sum())} crops): {acc:.3f} (paper, MiO100: 0.997)")
        print("confusion (rows: true task, columns: predicted;", ", ".join(t.letter for t in TASKS) + "):")
        print(confusion)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
