"""SequentialCurriculumSampler against torch.utils.data.RandomSampler: speed and peak memory.

Speed: indices per second over the same 10-million-item dataset, median of repeats, printed as a
ratio. Memory: peak resident memory of a fresh process that builds the sampler and draws its indices,
above the memory of the task-id tensor alone, for runs of different lengths (flat in the number of
iterations) and for RandomSampler over one epoch.

Run:  python benchmarks/sampler_overhead.py [--items 10000000] [--draw 2000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEMORY_PROBE = r"""
import json, resource, sys, itertools
import torch

def hwm_kib():
    # VmHWM belongs to this process image; ru_maxrss would inherit the parent's peak across fork/exec
    try:
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmHWM")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
torch.set_num_threads(1)
kind, items, iters, draw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ids = torch.arange(items) % 7
base = hwm_kib()
if kind == "random":
    from torch.utils.data import RandomSampler
    it = iter(RandomSampler(range(items), generator=torch.Generator().manual_seed(0)))
else:
    from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler
    c = Curriculum("SBNJRHL", periods=10, iterations_per_period=iters // 10)
    s = SequentialCurriculumSampler(ids, c, 16, seed=0)
    draw = min(draw, c.total_iterations * 16)
    s.set_iteration(c.total_iterations - draw // 16)   # draw the last indices of the run
    it = iter(s)
for _ in itertools.islice(it, draw):
    pass
peak = hwm_kib()
print(json.dumps({"base_kib": base, "peak_kib": peak}))
"""


def measure_speed(items: int, draw: int, repeats: int) -> tuple[float, float]:
    import itertools

    import torch
    from torch.utils.data import RandomSampler

    from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler

    ids = torch.arange(items) % 7
    curriculum = Curriculum("SBNJRHL", periods=10, iterations_per_period=250_000)
    ours_t, rand_t = [], []
    for rep in range(repeats):
        # RandomSampler: one full epoch over the dataset (its permutation is drawn per epoch)
        rs = RandomSampler(range(items), generator=torch.Generator().manual_seed(rep))
        t = time.perf_counter()
        n = sum(1 for _ in rs)
        rand_t.append(n / (time.perf_counter() - t))
        s = SequentialCurriculumSampler(ids, curriculum, 16, seed=rep)
        s.set_iteration(rep * 100_000)  # a different stretch of the run each repeat, crossing periods
        t = time.perf_counter()
        n = sum(1 for _ in itertools.islice(iter(s), items))
        ours_t.append(n / (time.perf_counter() - t))
    return statistics.median(ours_t), statistics.median(rand_t)


def measure_memory(kind: str, items: int, iters: int, draw: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, kind, str(items), str(iters), str(draw)],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    return (rec["peak_kib"] - rec["base_kib"]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=10_000_000)
    p.add_argument("--draw", type=int, default=2_000_000, help="indices drawn for the memory runs")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    sys.path.insert(0, str(ROOT))
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, dataset of {args.items:,} items, 7 tasks")
    ours, rand = measure_speed(args.items, args.draw, args.repeats)
    print(f"speed (median of {args.repeats}, indices per second over {args.items:,} indices):")
    print(f"  RandomSampler                 {rand:>14,.0f}")
    print(f"  SequentialCurriculumSampler   {ours:>14,.0f}   ratio RandomSampler/ours = {rand / ours:.2f}x")

    print("peak memory above the task-id tensor (MiB), each in a fresh process:")
    rand_mem = measure_memory("random", args.items, 0, args.items)
    print(f"  RandomSampler, one epoch ({args.items:,} indices)            {rand_mem:8.1f}")
    rows = []
    for iters in (100_000, 10_000_000, 1_000_000_000):
        mem = measure_memory("ours", args.items, iters, args.draw)
        rows.append(mem)
        print(f"  curriculum, run of {iters:>11,} iterations, {args.draw:,} drawn   {mem:8.1f}"
              f"   ratio to RandomSampler = {mem / rand_mem:.2f}")
    print(f"  curriculum memory, longest / shortest run = {rows[-1] / rows[0]:.2f} (flat = 1.00)")


if __name__ == "__main__":
    main()
