"""On-the-fly degradation throughput vs the reference's precomputed-PNG data path, side by side.

For each of the seven tasks, on 128x128 crops of the embedded photographs:

* on the fly: ``degrade(patch, task, generator=g)`` per patch (B=1, as a dataset calls it per item) and
  on batches of 32, with ``torch.set_num_threads(1)`` and with all cores;
* precomputed (the reference's training-time path): the same LQ/GT pairs written first as PNG crops to a
  temp dir, then read back and decoded into float tensors (one pair = two PNG decodes; the files sit in the
  page cache after the first pass, the most favourable case for reading).

Prints medians over repeats (interleaved, so a busy machine affects all columns alike), patches/s, and the
ratio on-the-fly / precomputed per task and averaged (also with the GT decode added to the on-the-fly side,
since a dataset reads its GT either way). Targets: ratio >= 1.0 on average, and no task below
200 patches/s on one core.

A second table puts the two JPEG implementations side by side in the same run: the library's codec
(Pillow, per image on the CPU) and the reference's model (``implementation="reference"``: the batched torch
DiffJPEG), on the CPU and, when there is one, on the training device (CUDA), at B=1 and batched.

Run: ``python benchmarks/degradation_throughput.py [--patches 64] [--repeats 5] [--device auto]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mio_strategies.degradations import degrade
from mio_strategies.tasks import TASK_NAMES

IMAGES = Path(__file__).resolve().parents[1] / "mio_strategies" / "data" / "images"
PATCH = 128


def gt_patches(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` random 128x128 crops of the embedded images, (n, 3, 128, 128) float32 in [0, 1]."""
    arrays = []
    for f in sorted(IMAGES.glob("*.png")):
        with Image.open(f) as im:
            arrays.append(np.asarray(im.convert("RGB")))
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        a = arrays[i % len(arrays)]
        y = int(torch.randint(0, a.shape[0] - PATCH + 1, (1,), generator=g))
        x = int(torch.randint(0, a.shape[1] - PATCH + 1, (1,), generator=g))
        out.append(torch.from_numpy(a[y : y + PATCH, x : x + PATCH].copy()).permute(2, 0, 1))
    return torch.stack(out).float() / 255.0


def to_png(t: torch.Tensor, path: Path) -> None:
    Image.fromarray(torch.round(t * 255).to(torch.uint8).permute(1, 2, 0).numpy()).save(path)


def read_png(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float().div_(255.0)


def time_on_the_fly(gt: torch.Tensor, task: str, batch: int, threads: int, g: torch.Generator) -> float:
    torch.set_num_threads(threads)
    n = gt.shape[0]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        degrade(gt[i : i + batch], task, generator=g)
    return n / (time.perf_counter() - t0)


def time_jpeg(gt: torch.Tensor, implementation: str, batch: int, threads: int, g: torch.Generator) -> float:
    """JPEG patches/s of one implementation on ``gt``'s device (CUDA timings synchronised)."""
    torch.set_num_threads(threads)
    n = gt.shape[0]
    cuda = gt.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        degrade(gt[i : i + batch], "jpeg", generator=g, implementation=implementation)
    if cuda:
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def jpeg_side_by_side(gt: torch.Tensor, batch: int, repeats: int, cores: int, device: str) -> None:
    """The library's JPEG (Pillow) and the reference's (batched torch DiffJPEG) measured in one run."""
    g = torch.Generator().manual_seed(0)
    rows = [("library (Pillow), cpu", "library", gt, 1, 1), (f"library (Pillow), cpu, B={batch}", "library", gt, batch, 1),
            ("reference (DiffJPEG), cpu", "reference", gt, 1, 1),
            (f"reference (DiffJPEG), cpu, B={batch}", "reference", gt, batch, 1)]
    if cores > 1:
        rows.append((f"reference (DiffJPEG), cpu {cores} cores, B={batch}", "reference", gt, batch, cores))
    if device.startswith("cuda"):
        gd = gt.to(device)
        rows += [(f"reference (DiffJPEG), {device}", "reference", gd, 1, 1),
                 (f"reference (DiffJPEG), {device}, B={batch}", "reference", gd, batch, 1),
                 (f"reference (DiffJPEG), {device}, B={gt.shape[0]}", "reference", gd, gt.shape[0], 1)]
    for _, impl, x, b, th in rows:  # warm-up
        time_jpeg(x[: max(b, 4)], impl, b, th, g)
    res: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, impl, x, b, th in rows:
            res.setdefault(name, []).append(time_jpeg(x, impl, b, th, g))
    torch.set_num_threads(cores)
    base = statistics.median(res[rows[0][0]])
    print(f"\nJPEG, {gt.shape[0]} patches of {PATCH}x{PATCH} (1 core unless said), median of {repeats} repeats:")
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'implementation':<{width}}{'patches/s':>12}{'x Pillow B=1':>15}")
    for name, *_ in rows:
        m = statistics.median(res[name])
        print(f"{name:<{width}}{m:>12.0f}{m / base:>15.2f}")


def time_precomputed(pairs: list[tuple[Path, Path]], gt_only: bool = False) -> float:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    for lq, gt in pairs:
        if not gt_only:
            read_png(lq)
        read_png(gt)
    return len(pairs) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patches", type=int, default=64, help="patches per measurement (default 64)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported (default 5)")
    ap.add_argument("--batch", type=int, default=32, help="batch size of the batched column (default 32)")
    ap.add_argument("--device", default="auto",
                    help="training device of the reference JPEG row: auto (CUDA when available), cpu, cuda[:N]")
    ap.add_argument("--jpeg-only", action="store_true", help="only the JPEG side-by-side table")
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    cores = os.cpu_count() or 1
    gt = gt_patches(args.patches)
    g = torch.Generator().manual_seed(0)
    if args.jpeg_only:
        jpeg_side_by_side(gt, args.batch, args.repeats, cores, device)
        return

    with tempfile.TemporaryDirectory() as tmp:
        pairs: dict[str, list[tuple[Path, Path]]] = {}
        for task in TASK_NAMES:
            d = Path(tmp) / task
            d.mkdir()
            pairs[task] = []
            for i in range(gt.shape[0]):
                lq, _ = degrade(gt[i : i + 1], task, generator=g)
                to_png(lq[0], d / f"{i:04d}_lq.png")
                to_png(gt[i], d / f"{i:04d}_gt.png")
                pairs[task].append((d / f"{i:04d}_lq.png", d / f"{i:04d}_gt.png"))

        configs = [("B=1, 1 core", 1, 1), (f"B={args.batch}, 1 core", args.batch, 1)]
        if cores > 1:
            configs += [(f"B=1, {cores} cores", 1, cores), (f"B={args.batch}, {cores} cores", args.batch, cores)]
        results: dict[tuple[str, str], list[float]] = {}
        for task in TASK_NAMES:  # warm-up: caches, lazy imports, page cache
            for _, b, th in configs:
                time_on_the_fly(gt[: max(b, 4)], task, b, th, g)
            time_precomputed(pairs[task][:4])
        for _ in range(args.repeats):
            for task in TASK_NAMES:
                for name, b, th in configs:
                    results.setdefault((task, name), []).append(time_on_the_fly(gt, task, b, th, g))
                results.setdefault((task, "precomputed"), []).append(time_precomputed(pairs[task]))
                results.setdefault((task, "gt read"), []).append(time_precomputed(pairs[task], gt_only=True))
        torch.set_num_threads(cores)

    med = {k: statistics.median(v) for k, v in results.items()}
    names = [c[0] for c in configs]
    print(
        f"torch {torch.__version__}, {cores} CPU cores, {args.patches} patches of {PATCH}x{PATCH}, median of "
        f"{args.repeats} repeats, patches/s.\n"
        f"on the fly: degrade() from GT tensors in memory; precomputed: read+decode LQ+GT PNG pairs (page cache "
        f"warm, one core);\n+GT read: on the fly at B=1 plus decoding the GT PNG, against precomputed "
        f"(both then read the GT)"
    )
    cols = names + ["precomputed", "ratio B=1", f"ratio B={args.batch}", "ratio +GT read"]
    width = max(len(c) for c in cols) + 2
    print(f"{'task':<9}" + "".join(f"{c:>{width}}" for c in cols))
    ratios: dict[str, list[float]] = {"b1": [], "bb": [], "gt": []}
    for task in TASK_NAMES:
        pre, gt_rate = med[(task, "precomputed")], med[(task, "gt read")]
        otf1 = med[(task, names[0])]
        r = {
            "b1": otf1 / pre,
            "bb": med[(task, names[1])] / pre,
            "gt": 1.0 / (1.0 / otf1 + 1.0 / gt_rate) / pre,
        }
        for k, v in r.items():
            ratios[k].append(v)
        row = "".join(f"{med[(task, n)]:>{width}.0f}" for n in names) + f"{pre:>{width}.0f}"
        print(f"{task:<9}" + row + "".join(f"{r[k]:>{width}.2f}" for k in ("b1", "bb", "gt")))
    means = {k: statistics.mean(v) for k, v in ratios.items()}
    print(f"{'mean':<9}" + " " * (width * (len(names) + 1)) + "".join(f"{means[k]:>{width}.2f}" for k in ("b1", "bb", "gt")))
    worst_task = min(TASK_NAMES, key=lambda t: med[(t, names[0])])
    worst = med[(worst_task, names[0])]
    print(
        f"slowest task on one core at B=1: {worst_task} {worst:.0f} patches/s (target >= 200: "
        f"{'met' if worst >= 200 else 'NOT met'}); mean ratio on-the-fly/precomputed: B=1 {means['b1']:.2f}, "
        f"B={args.batch} {means['bb']:.2f}, B=1 with GT read {means['gt']:.2f} (target >= 1.0: "
        f"{'met' if min(means.values()) >= 1.0 else 'NOT met'})"
    )
    jpeg_side_by_side(gt, args.batch, args.repeats, cores, device)


if __name__ == "__main__":
    main()
