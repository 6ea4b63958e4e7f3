"""Render the example figures of docs/analysis.md from the embedded images.

700 inputs (100 crops of the six embedded photographs x 7 degradations) go through a small prompt
extractor with the paper's shape (conv 7x7/2, conv 3x3/2, conv 3x3/2, ReLU, global mean -> 64
values), once freshly initialised and once after a short task-classification training; the
pooled 64-vectors are projected with DDR and scored with the Calinski-Harabasz index, side by side.
A second figure draws per-task PSNR bars from the paper's SRResNet table.

The inputs are degraded by the library's :func:`mio_strategies.degradations.degrade` with the In-Dis
preset, parameters sampled per crop from an explicit seeded generator (haze uses the library's
:func:`~mio_strategies.degradations.estimate_depth`, not the reference's depth maps).

Usage:
    python examples/ddr_figure.py --out docs/figures --method umap
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mio_strategies.analysis import DDRResult, ddr, plot_ddr_comparison, plot_psnr_bars
from mio_strategies.data import load_embedded_images
from mio_strategies.degradations import degrade
from mio_strategies.harness import psnr
from mio_strategies.tasks import TASKS


def random_crops(images: list[torch.Tensor], n: int, size: int, g: torch.Generator) -> torch.Tensor:
    crops = []
    for _ in range(n):
        img = images[int(torch.randint(len(images), (1,), generator=g))]
        top = int(torch.randint(img.shape[1] - size + 1, (1,), generator=g))
        left = int(torch.randint(img.shape[2] - size + 1, (1,), generator=g))
        crops.append(img[:, top : top + size, left : left + size])
    return torch.stack(crops)


def degraded_set(gts: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Every GT crop degraded by every task (library ``degrade``, In-Dis): ``(7 * n, 3, H, W)`` inputs
    and their task ids, task-major. Parameters are sampled per crop from ``g``."""
    lq = torch.cat([degrade(gts, task, preset="in", generator=g)[0] for task in TASKS])
    labels = torch.arange(len(TASKS)).repeat_interleave(gts.shape[0])
    return lq, labels


class PromptExtractor(nn.Module):
    """The paper's prompt extractor shape (3 -> 64 channels, global mean) with a linear task head."""

    def __init__(self, g: torch.Generator, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ZeroPad2d(1), nn.Conv2d(3, width, 7, stride=2), nn.ReLU(),
            nn.ZeroPad2d(1), nn.Conv2d(width, width, 3, stride=2), nn.ReLU(),
            nn.ZeroPad2d(1), nn.Conv2d(width, width, 3, stride=2), nn.ReLU(),
        )
        self.head = nn.Linear(width, len(TASKS))
        with torch.no_grad():  # initialise from the explicit generator, not the global RNG
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_uniform_(m.weight, nonlinearity="relu", generator=g)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def train_classifier(model: PromptExtractor, images: list[torch.Tensor], steps: int, g: torch.Generator) -> None:
    """A short task-classification training on a pool of other crops (never the ones analysed)."""
    pool, pool_labels = degraded_set(random_crops(images, 60, 64, g), g)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for step in range(steps):
        idx = torch.randint(pool.shape[0], (32,), generator=g)
        loss = F.cross_entropy(model(pool[idx]), pool_labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            print(f"  step {step:4d}  cross-entropy {loss.item():.3f}")


def identity_psnr(lq: torch.Tensor, gt: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean PSNR of the degraded inputs against their GT per task (RGB, 4-pixel border crop)."""
    scores = psnr(lq, gt, 4)
    return {t.name: float(scores[labels == t.id].mean()) for t in TASKS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--method", default="umap", choices=("umap", "tsne", "pca"))
    parser.add_argument("--crops", type=int, default=100, help="GT crops per task (100 gives 700 inputs)")
    parser.add_argument("--steps", type=int, default=100, help="classification steps of the trained extractor")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    images = list(load_embedded_images().values())
    data_g = torch.Generator().manual_seed(args.seed)
    gts = random_crops(images, args.crops, 64, data_g)
    lq, labels = degraded_set(gts, data_g)
    print(f"{lq.shape[0]} inputs of {tuple(lq.shape[1:])} from {len(images)} embedded images")

    untrained = PromptExtractor(torch.Generator().manual_seed(args.seed + 1))
    trained = PromptExtractor(torch.Generator().manual_seed(args.seed + 1))
    start = time.perf_counter()
    train_classifier(trained, images, args.steps, torch.Generator().manual_seed(args.seed + 2))
    print(f"trained for {args.steps} steps in {time.perf_counter() - start:.1f} s")

    results: dict[str, DDRResult] = {}
    for name, model in (("untrained extractor", untrained), (f"after {args.steps} classification steps", trained)):
        results[name] = ddr(model, lq, module="body", labels=labels, method=args.method, seed=args.seed, batch_size=100)
        print(f"{name:40s} CHI (2-D) {results[name].chi:9.1f}   CHI (features) {results[name].chi_features:9.1f}")

    args.out.mkdir(parents=True, exist_ok=True)
    fig = plot_ddr_comparison(results, point_size=5)
    fig.savefig(args.out / "ddr_comparison.png", format="png", dpi=80)

    paper = {  # SRResNet, In-Dis PSNR (dB), the paper's section 4 table
        "SRResNet-M": {"S": 25.52, "B": 30.01, "N": 30.49, "J": 32.46, "R": 32.38, "H": 25.57, "L": 30.20},
        "SRResNet-S": {"S": 25.72, "B": 30.49, "N": 30.67, "J": 32.73, "R": 32.81, "H": 25.78, "L": 30.45},
        "SRResNet-S+EP": {"S": 25.90, "B": 31.23, "N": 30.88, "J": 33.16, "R": 34.31, "H": 26.13, "L": 30.91},
    }
    fig = plot_psnr_bars(paper, title="SRResNet, In-Dis (published numbers)")
    fig.savefig(args.out / "psnr_bars.png", format="png", dpi=80)
    ident = identity_psnr(lq, gts.repeat(len(TASKS), 1, 1, 1), labels)
    print("identity PSNR of these demo inputs (dB):", {k: round(v, 2) for k, v in ident.items()})
    print(f"wrote {args.out / 'ddr_comparison.png'} and {args.out / 'psnr_bars.png'}")


if __name__ == "__main__":
    main()
