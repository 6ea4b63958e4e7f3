"""Cost of the DDR analysis on this CPU: capture 700 pooled features (7 tasks x 100) and project them.

A small conv model (the paper's prompt-extractor shape, 64 channels) on 700 synthetic 64x64
inputs; capture with and without skipping the rest of the forward pass, then each projection
method (projections use one native thread unless told otherwise; t-SNE is also timed with the
libraries' default thread count). UMAP compiles with numba on its first call in a process: the first call (and the import)
is reported apart from warm calls. Medians over repeats; ratios against PCA.

Usage:
    python benchmarks/analysis_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mio_strategies.analysis import calinski_harabasz, capture_features, project
from mio_strategies.analysis._deps import require
from mio_strategies.tasks import NUM_TASKS


def build_model(g: torch.Generator) -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
        # a tail the capture can skip (stands in for the rest of a restoration network)
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1),
    )
    with torch.no_grad():
        for p in model.parameters():
            nn.init.uniform_(p, -0.1, 0.1, generator=g)
    return model.eval()


def synthetic_inputs(per_task: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random images, with a different simple corruption per task id."""
    base = torch.nn.functional.interpolate(torch.rand(per_task, 3, size // 8, size // 8, generator=g), size=size, mode="bilinear")
    out = []
    for t in range(NUM_TASKS):
        x = base.clone()
        x = x + (0.04 * t) * torch.randn(x.shape, generator=g)  # noise level grows with the id
        x = x.clamp(0, 1) ** (1.0 + 0.3 * t)  # and a gamma
        out.append(x.clamp(0, 1))
    return torch.cat(out), torch.arange(NUM_TASKS).repeat_interleave(per_task)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-task", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    model = build_model(g)
    images, labels = synthetic_inputs(args.per_task, args.size, g)
    n = images.shape[0]
    print(f"{n} inputs {tuple(images.shape[1:])}, torch threads {torch.get_num_threads()}, repeats {args.repeats}")

    rows: list[tuple[str, float, int]] = []
    t_skip, captured = timed(lambda: capture_features(model, images, "5", labels=labels, batch_size=50), args.repeats)
    rows.append(("capture, stop_forward=True", t_skip, args.repeats))
    t_full, _ = timed(
        lambda: capture_features(model, images, "5", labels=labels, batch_size=50, stop_forward=False), args.repeats
    )
    rows.append(("capture, stop_forward=False", t_full, args.repeats))
    feats = captured.features
    print(f"features {tuple(feats.shape)}, CHI of the features {calinski_harabasz(feats, labels):.1f}")

    start = time.perf_counter()
    require("umap", feature="benchmark")
    rows.append(("import umap", time.perf_counter() - start, 1))
    start = time.perf_counter()
    project(feats, "umap", seed=0)
    rows.append(("project umap, first call (numba JIT)", time.perf_counter() - start, 1))
    t_umap, emb_umap = timed(lambda: project(feats, "umap", seed=0), args.repeats)
    rows.append(("project umap, warm", t_umap, args.repeats))

    start = time.perf_counter()
    require("sklearn.manifold", feature="benchmark")
    project(feats, "tsne", seed=0)
    rows.append(("project tsne, first call", time.perf_counter() - start, 1))
    t_tsne, emb_tsne = timed(lambda: project(feats, "tsne", seed=0), args.repeats)
    rows.append(("project tsne, warm", t_tsne, args.repeats))
    t_tsne_all, _ = timed(lambda: project(feats, "tsne", seed=0, threads=None), args.repeats)
    rows.append(("project tsne, warm, threads=None", t_tsne_all, args.repeats))
    t_pca, emb_pca = timed(lambda: project(feats, "pca", seed=0), max(args.repeats, 5))
    rows.append(("project pca, warm", t_pca, max(args.repeats, 5)))

    width = max(len(r[0]) for r in rows)
    print(f"\n{'step':{width}s}  {'median s':>9s}  {'runs':>4s}  {'x pca':>8s}")
    for name, seconds, runs in rows:
        print(f"{name:{width}s}  {seconds:9.3f}  {runs:4d}  {seconds / t_pca:8.1f}")
    print(f"\ncapture speed-up from stop_forward: {t_full / t_skip:.2f}x")
    print(f"t-SNE with the libraries' default threads vs threads=1 (project's default): {t_tsne_all / t_tsne:.2f}x the time")
    for name, emb in (("umap", emb_umap), ("tsne", emb_tsne), ("pca", emb_pca)):
        print(f"CHI of the {name} embedding: {calinski_harabasz(emb, labels):.1f}")
    print("end to end, warm (capture + project): "
          + ", ".join(f"{m} {t_skip + t:.2f} s" for m, t in (("umap", t_umap), ("tsne", t_tsne), ("pca", t_pca))))


if __name__ == "__main__":
    main()
