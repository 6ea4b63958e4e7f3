"""Memory and time of tiled against whole-image restoration, side by side, with the shipped S+EP weights.

    python benchmarks/restore_tiling.py              # a 1024 x 1024 image, tiles of 256 (CPU)
    python benchmarks/restore_tiling.py --side 2048 --tile 512 --device cuda

Each variant runs in a fresh process (so its peak memory is its own): the peak resident memory of the
process on the CPU (ru_maxrss, including the interpreter and the library, measured as the rise over the
idle process), or torch's peak allocated CUDA memory on a GPU. Prints one row per variant and the ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _measure(side: int, tile: int | None, overlap: int, device: str) -> dict[str, float]:
    import torch

    from mio_strategies.harness import load_restorer, shipped_weights

    torch.set_num_threads(1)
    restorer, _, _ = load_restorer(shipped_weights()["S+EP"], device=device)
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.no_grad():
        y = restorer.restore(x, torch.tensor([2], device=device), tile=tile, overlap=overlap)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.startswith("cuda")
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    )
    assert y.shape == x.shape
    return {"peak_mib": peak, "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        tile = None if args.child == "whole" else args.tile
        print(json.dumps(_measure(args.side, tile, args.overlap, args.device)))
        return
    rows = {}
    for variant in ("whole", "tiled"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                variant,
                "--side",
                str(args.side),
                "--tile",
                str(args.tile),
                "--overlap",
                str(args.overlap),
                "--device",
                args.device,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    what = "peak CUDA memory" if args.device.startswith("cuda") else "peak RSS rise"
    print(
        f"{args.side} x {args.side} image, shipped S+EP U-Net, device {args.device}; tiles {args.tile}, "
        f"overlap {args.overlap}"
    )
    for name, r in rows.items():
        print(f"  {name:6s} {what} {r['peak_mib']:8.1f} MiB   wall {r['seconds']:6.2f} s")
    w, t = rows["whole"], rows["tiled"]
    print(
        f"  tiled / whole: memory {t['peak_mib'] / w['peak_mib']:.2f}x, wall time {t['seconds'] / w['seconds']:.2f}x "
        "(wall times on this machine under its load)"
    )


if __name__ == "__main__":
    main()
