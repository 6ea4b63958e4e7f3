"""Render the example figures of docs/analysis.md from the embedded images.

700 inputs (100 crops of the six embedded photographs x 7 degradations) go through a small prompt
extractor with the paper's shape (conv 7x7/2, conv 3x3/2, conv 3x3/2, ReLU, global mean -> 64
values), once freshly initialised and once after a short task-classification training; the
pooled 64-vectors are projected with DDR and scored with the Calinski-Harabasz index, side by side.
A second figure draws per-task PSNR bars from the paper's SRResNet table.

The degradations here are simple in-file versions with the paper's In-Dis parameter ranges (haze
uses a vertical ramp as depth instead of a depth network's map); once ``mio_strategies.degradations``
is merged they can be swapped for the library's.

Usage:
    python examples/ddr_figure.py --out docs/figures --method umap
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import mio_strategies  # noqa: E402
from mio_strategies.analysis import DDRResult, ddr, plot_ddr_comparison, plot_psnr_bars  # noqa: E402
from mio_strategies.tasks import TASKS, Task  # noqa: E402

IMAGES = Path(mio_strategies.__file__).parent / "data" / "images"


def load_images() -> list[torch.Tensor]:
    out = []
    for path in sorted(IMAGES.glob("*.png")):
        with Image.open(path) as img:
            out.append(torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).float() / 255)
    return out


def random_crops(images: list[torch.Tensor], n: int, size: int, g: torch.Generator) -> torch.Tensor:
    crops = []
    for _ in range(n):
        img = images[int(torch.randint(len(images), (1,), generator=g))]
        top = int(torch.randint(img.shape[1] - size + 1, (1,), generator=g))
        left = int(torch.randint(img.shape[2] - size + 1, (1,), generator=g))
        crops.append(img[:, top : top + size, left : left + size])
    return torch.stack(crops)


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _gaussian_kernel(sigma: float, size: int) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float32) - size // 2
    k = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    return k / k.sum()


def _conv_same(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    k = kernel[None, None].expand(3, 1, *kernel.shape)
    pad = (kernel.shape[-1] // 2, kernel.shape[-1] // 2, kernel.shape[-2] // 2, kernel.shape[-2] // 2)
    return F.conv2d(F.pad(x[None], pad, mode="reflect"), k, groups=3)[0]


def degrade(gt: torch.Tensor, task: Task, g: torch.Generator) -> torch.Tensor:
    """One (3, H, W) GT image in 0..1 degraded by ``task`` with In-Dis parameter ranges, 8-bit rounded."""
    h, w = gt.shape[1:]
    if task.letter == "S":
        small = F.interpolate(gt[None], scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False)
        out = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)[0]
    elif task.letter == "B":
        size = 7 + 2 * int(torch.randint(8, (1,), generator=g))  # odd 7..21
        out = _conv_same(gt, _gaussian_kernel(_uniform(1, 3, g), size))
    elif task.letter == "N":
        sigma = _uniform(15, 50, g) / 255
        out = gt + sigma * torch.randn(gt.shape, generator=g)
    elif task.letter == "J":
        quality = int(round(_uniform(30, 70, g)))
        arr = (gt.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as img:
            out = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).float() / 255
    elif task.letter == "R":
        amount = int(torch.randint(50, 101, (1,), generator=g))
        seeds = (torch.rand((1, h, w), generator=g) > 1 - amount * 0.0004).float()
        length = int(torch.randint(20, 41, (1,), generator=g)) // 2 * 2 + 1
        angle = math.radians(_uniform(-45, 44, g) + 90)
        line = torch.zeros(length, length)
        c = length // 2
        for t in torch.linspace(-c, c, 4 * length):
            line[int(round(c - float(t) * math.sin(angle))), int(round(c + float(t) * math.cos(angle)))] = 1
        streaks = F.conv2d(F.pad(seeds[None], (c, c, c, c)), (line / line.sum())[None, None])[0]
        streaks = streaks / streaks.max().clamp_min(1e-6)
        out = gt + 0.8 * streaks.expand(3, h, w)
    elif task.letter == "H":
        depth = torch.linspace(1, 0.1, h)[:, None].expand(h, w)  # far at the top
        t = torch.exp(-_uniform(0.5, 2.5, g) * depth)
        a = _uniform(0.8, 1.0, g)
        out = gt * t + a * (1 - t)
    else:  # L
        out = gt.clamp(0, 1) ** _uniform(1, 3, g)
    return (out.clamp(0, 1) * 255).round() / 255


def degraded_set(gts: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Every GT crop degraded by every task: (7 * n, 3, H, W) inputs and their task ids, task-major."""
    lq = torch.stack([degrade(gt, task, g) for task in TASKS for gt in gts])
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
    """Mean PSNR of the degraded inputs against their GT per task (4-pixel border crop)."""
    err = ((lq - gt) ** 2)[..., 4:-4, 4:-4].mean(dim=(1, 2, 3)).clamp_min(1e-10)
    psnr = 10 * torch.log10(1 / err)
    return {t.name: float(psnr[labels == t.id].mean()) for t in TASKS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--method", default="umap", choices=("umap", "tsne", "pca"))
    parser.add_argument("--crops", type=int, default=100, help="GT crops per task (100 gives 700 inputs)")
    parser.add_argument("--steps", type=int, default=100, help="classification steps of the trained extractor")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    images = load_images()
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
    print("identity PSNR of these demo inputs (dB):", {k: round(v, 2) for k, v in identity_psnr(lq, gts.repeat(len(TASKS), 1, 1, 1), labels).items()})
    print(f"wrote {args.out / 'ddr_comparison.png'} and {args.out / 'psnr_bars.png'}")


if __name__ == "__main__":
    main()
