"""Train the TaskClassifier on degraded crops and report its In-Dis accuracy (paper: 0.997).

Needs ``mio_strategies.degradations.degrade(images, task, *, preset, generator) -> (degraded, params)``.
Run: ``python examples/prompt_classifier_accuracy.py --steps 2000`` (defaults are a quick check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mio_strategies.prompts import TaskClassifier, classifier_accuracy, train_task_classifier  # noqa: E402
from mio_strategies.tasks import NUM_TASKS, TASKS  # noqa: E402


def load_images() -> list[torch.Tensor]:
    """The embedded CC0 images, each (3, H, W) in [0, 1]."""
    import numpy as np
    from PIL import Image

    folder = Path(__file__).resolve().parents[1] / "mio_strategies" / "data" / "images"
    out = []
    for path in sorted(folder.glob("*.png")):
        img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        out.append(torch.from_numpy(img).permute(2, 0, 1))
    return out


def batches(images, steps: int, batch: int, crop: int, preset: str, generator: torch.Generator):
    from mio_strategies.degradations import degrade

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
    ap.add_argument("--test-batches", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    images = load_images()
    clf = TaskClassifier(generator=torch.Generator().manual_seed(args.seed))
    train_gen = torch.Generator().manual_seed(args.seed)
    hist = train_task_classifier(clf, batches(images, args.steps, args.batch, args.crop, "in", train_gen),
                                 callback=lambda s, loss, acc: s % 50 == 0 and print(f"step {s}: loss {loss:.3f} acc {acc:.2f}"))
    test_gen = torch.Generator().manual_seed(args.seed + 1000)
    acc, confusion = classifier_accuracy(clf, batches(images, args.test_batches, args.batch, args.crop, "in", test_gen))
    print(f"trained {hist.steps} steps; In-Dis accuracy {acc:.3f} (paper: 0.997)")
    print("confusion (rows: true task", ", ".join(t.letter for t in TASKS) + "):")
    print(confusion)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
