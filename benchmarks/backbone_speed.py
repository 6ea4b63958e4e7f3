"""Training speed of the paper's presets and the hours their full protocol takes per strategy.

Trains each preset for a few iterations (strategy M unless --set says otherwise, no validation, one
checkpoint at the end), measures the steady-state wall-clock iterations per second
(data synthesis included, the first logged interval left out as warm-up) and prints, for the preset's
own iteration count, the hours one strategy takes at that speed. Medians over the logged intervals.
The second figure printed (the train loop's own steps per second: data waits left out, but the warm-up
iterations counted) can be the lower one in short runs.

    python benchmarks/backbone_speed.py --device cuda                    # srresnet, swinir, restormer, promptir
    python benchmarks/backbone_speed.py --presets swinir --iters 40 --device cuda --set num_workers=12
    python benchmarks/backbone_speed.py --presets srresnet --device cpu --iters 6 --log-every 2 \\
        --set backbone=srresnet_tiny --set patch_size=32                   # a smoke run on a CPU
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

try:  # run from a clone without installing: use the working tree's package
    import mio_strategies  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PRESETS = ("srresnet", "swinir", "restormer", "promptir")


def measure(preset: str, iters: int, log_every: int, device: str, overrides: list[str], output: Path) -> dict:
    """Train ``preset`` for ``iters`` iterations; return wall it/s (median of logged intervals) and hours."""
    from mio_strategies.harness import load_config, train

    base = load_config(preset)
    full = base.total_iters
    # the preset's periods, each just long enough; the run stops after `iters` (a resumable checkpoint)
    cfg = load_config(preset, [f"period_iters={-(-iters // base.periods)}", f"device={device}", "val_every=0",
                               "checkpoint_every=0", f"log_every={log_every}", *overrides])
    marks: list[tuple[int, float]] = []

    def on_record(rec: dict) -> None:
        if rec["kind"] == "train":
            marks.append((rec["iteration"], time.perf_counter()))

    res = train(cfg, output / preset, overwrite=True, progress=False, callback=on_record, stop_after=iters)
    rates = [(b[0] - a[0]) / (b[1] - a[1]) for a, b in itertools.pairwise(marks)]  # first interval: warm-up
    if not rates:
        raise ValueError(f"--iters {iters} with --log-every {log_every} leaves no interval to time: raise --iters")
    wall = statistics.median(rates)
    return {"preset": preset, "backbone": cfg.backbone, "wall_its": wall, "compute_its": res.iters_per_second,
            "protocol_iters": full, "hours": full / wall / 3600}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=list(PRESETS), help=f"presets to time (default: {' '.join(PRESETS)})")
    p.add_argument("--iters", type=int, default=60, help="iterations per preset (default 60)")
    p.add_argument("--log-every", type=int, default=10, help="timing interval in iterations (default 10)")
    p.add_argument("--device", default="auto")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if args.iters < 3 * args.log_every:
        p.error(f"--iters must be at least 3 x --log-every ({3 * args.log_every}) to time two intervals after warm-up")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            try:
                rows.append(measure(preset, args.iters, args.log_every, args.device, args.overrides, Path(tmp)))
            except ImportError as exc:
                print(f"{preset}: skipped ({exc})", flush=True)
                continue
            r = rows[-1]
            print(f"{preset:10s} ({r['backbone']}): {r['wall_its']:.1f} it/s wall-clock ({r['compute_its']:.1f} it/s "
                  f"in the training steps alone, warm-up included); the protocol's {r['protocol_iters']:,} iterations = "
                  f"{r['hours']:.1f} h per strategy",
                  flush=True)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
