"""The Philox stream on the CPU side by side: torch's per-image generators vs the Philox stream as it was
(unchunked, one int64 tensor per word, the multiplications split into 16-bit halves) vs now (one product
per multiplication, rounds in place in L2-sized chunks) vs now with the rounds compiled (``--compile``).

Rows: the random fields alone (the noise's normals, the rain's uniforms) and the whole noise and rain
degradations (``degrade(..., stream=...)``), for a batch and for one patch at a time (as a DataLoader item).
Each cell is the median over ``--repeats`` of the thread's CPU time (``time.thread_time``: a shared,
loaded CPU inflates wall time, not CPU time), one torch thread by default; compare ratios, measured in one
run. Every Philox variant's output is checked equal to the old one's before it is timed.

Usage::

    python benchmarks/philox_speed.py                 # batch 16, 64-px patches, 1 thread
    python benchmarks/philox_speed.py --compile       # also the torch.compile'd rounds (compiles first)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial

import torch

from mio_strategies.degradations import _functional, _philox, _rain, _rain_torch, degrade

MASK32 = 0xFFFFFFFF


# -- the Philox stream as it was before the chunked rounds (the baseline; same words, same normals) --------
def _old_mulhilo(x: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    m_lo, m_hi = m & 0xFFFF, m >> 16
    a = x * m_lo
    b = x * m_hi
    t = a + ((b & 0xFFFF) << 16)
    return (b >> 16) + (t >> 32), t & MASK32


def old_philox_uint32(
    seeds: torch.Tensor, n: int, *, domain: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """The unchunked stream: every round on whole ``(B, blocks)`` int64 tensors, 16-bit split products."""
    dev = torch.device(device) if device is not None else seeds.device
    blocks = math.ceil(n / 4)
    s = seeds.to(dev)
    k0, k1 = (s & MASK32)[:, None], (s >> 32)[:, None]
    j = torch.arange(blocks, device=dev, dtype=torch.int64)[None, :]
    zero = torch.zeros((), device=dev, dtype=torch.int64)
    c0, c1, c2, c3 = j & MASK32, j >> 32, torch.full((), domain, device=dev, dtype=torch.int64), zero
    for r in range(_philox.ROUNDS):
        if r:
            k0 = (k0 + _philox.PHILOX_W[0]) & MASK32
            k1 = (k1 + _philox.PHILOX_W[1]) & MASK32
        hi0, lo0 = _old_mulhilo(c0, _philox.PHILOX_M[0])
        hi1, lo1 = _old_mulhilo(c2, _philox.PHILOX_M[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    out = torch.stack([w.expand(s.shape[0], blocks) for w in (c0, c1, c2, c3)], dim=-1)
    return out.reshape(s.shape[0], blocks * 4)[:, :n]


def old_philox_uniform(
    seeds: torch.Tensor,
    n: int,
    *,
    domain: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    return (old_philox_uint32(seeds, n, domain=domain, device=device) >> 8).to(dtype) * (2.0**-24)


def old_philox_normal(
    seeds: torch.Tensor, n: int, *, domain: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    m = n + (n % 2)
    words = old_philox_uint32(seeds, m, domain=domain, device=device).view(-1, m // 2, 2)
    u1 = (words[..., 0].to(torch.float64) + 1.0) * (2.0**-32)
    u2 = words[..., 1].to(torch.float64) * (2.0**-32)
    r = torch.sqrt(-2.0 * torch.log(u1))
    theta = (2.0 * math.pi) * u2
    z = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1).reshape(words.shape[0], m)
    return z[:, :n].to(torch.float32)


@contextmanager
def old_stream():
    """The degradations draw their Philox fields from the old implementation inside the block."""
    saved = (_functional.philox_normal, _rain.philox_uniform, _rain_torch.philox_uniform)
    _functional.philox_normal = old_philox_normal
    _rain.philox_uniform = _rain_torch.philox_uniform = old_philox_uniform
    try:
        yield
    finally:
        _functional.philox_normal, _rain.philox_uniform, _rain_torch.philox_uniform = saved


@contextmanager
def compiled(enabled: bool):
    previous = _philox.use_compiled_philox(enabled)
    try:
        yield
    finally:
        _philox.use_compiled_philox(previous)


def cpu_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median thread CPU time of ``fn()`` in milliseconds, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return 1e3 * statistics.median(times)


def _degrade_once(x: torch.Tensor, task: str, stream: str) -> torch.Tensor:
    return degrade(x, task, generator=torch.Generator().manual_seed(1), stream=stream)[0]


def rows(batch: int, patch: int, repeats: int, with_compile: bool) -> list[tuple[str, list[float]]]:
    """``(name, [torch, philox before, philox now, philox compiled])`` CPU milliseconds per row."""
    seeds = torch.arange(batch, dtype=torch.int64) * 7919 + 3
    x = torch.rand(batch, 3, patch, patch, generator=torch.Generator().manual_seed(0))
    n_noise, n_rain = 3 * patch * patch, patch * patch
    noise = _philox.DOMAIN_NOISE

    def torch_normals(s: torch.Tensor) -> torch.Tensor:  # one generator per image, as the torch stream
        return torch.stack([torch.randn(n_noise, generator=torch.Generator().manual_seed(int(v))) for v in s])

    def torch_uniforms(s: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.rand(n_rain, generator=torch.Generator().manual_seed(int(v))) for v in s])

    fields = [
        (
            f"noise field, {batch} x 3x{patch}x{patch} normals",
            torch_normals,
            old_philox_normal,
            _philox.philox_normal,
            n_noise,
            noise,
        ),
        (
            f"rain field, {batch} x {patch}x{patch} uniforms",
            torch_uniforms,
            old_philox_uniform,
            _philox.philox_uniform,
            n_rain,
            0,
        ),
    ]
    out: list[tuple[str, list[float]]] = []
    for name, torch_fn, old_fn, new_fn, n, domain in fields:
        expect = old_fn(seeds, n, domain=domain)
        cells = [cpu_ms(partial(torch_fn, seeds), repeats), cpu_ms(partial(old_fn, seeds, n, domain=domain), repeats)]
        for on in (False, True)[: 1 + with_compile]:
            with compiled(on):
                assert torch.equal(new_fn(seeds, n, domain=domain), expect), (name, on)
                cells.append(cpu_ms(partial(new_fn, seeds, n, domain=domain), repeats))
        out.append((name, cells))
    for task in ("noise", "rain"):
        for b in (batch, 1):
            run = {s: partial(_degrade_once, x[:b], task, s) for s in ("torch", "philox")}
            with old_stream():
                expect = run["philox"]()
                cells = [cpu_ms(run["torch"], repeats), cpu_ms(run["philox"], repeats)]
            for on in (False, True)[: 1 + with_compile]:
                with compiled(on):
                    assert torch.equal(run["philox"](), expect), (task, b, on)
                    cells.append(cpu_ms(run["philox"], repeats))
            out.append((f"{task} degradation, batch {b} ({patch} px)", cells))
    return out


def table(results: list[tuple[str, list[float]]], with_compile: bool) -> list[str]:
    head = "| CPU ms (median) | torch stream | Philox before | Philox now | now / before | torch / now |"
    sep = "|---|---|---|---|---|---|"
    if with_compile:
        head += " Philox compiled | torch / compiled |"
        sep += "---|---|"
    lines = [head, sep]
    for name, c in results:
        line = f"| {name} | {c[0]:.2f} | {c[1]:.2f} | {c[2]:.2f} | {c[1] / c[2]:.2f}x | {c[0] / c[2]:.2f}x |"
        if with_compile:
            line += f" {c[3]:.2f} | {c[0] / c[3]:.2f}x |"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16, help="images per batch (default 16)")
    p.add_argument("--patch", type=int, default=64, help="patch side (default 64)")
    p.add_argument("--repeats", type=int, default=15, help="timed calls per cell (default 15)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--compile", action="store_true", help="also time the torch.compile'd rounds (compiles first)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"CPU, {torch.get_num_threads()} thread(s); torch {torch.__version__}", flush=True)
    if args.compile:
        t0 = time.perf_counter()
        with compiled(True):
            _philox.philox_uint32(torch.tensor([0, 1]), 8)
        if _philox._compiled["error"] is not None:
            print(f"compiled rounds unavailable: {_philox._compiled['error']}")
            args.compile = False
        else:
            print(f"compiled the rounds in {time.perf_counter() - t0:.1f} s (wall)", flush=True)
    results = rows(args.batch, args.patch, args.repeats, args.compile)
    print("\n".join(table(results, args.compile)))
    print(
        "ratios > 1x: the second is faster (now / before: the speed-up of the same Philox words; torch / now: "
        "the Philox stream's speed relative to the per-image torch generators)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
