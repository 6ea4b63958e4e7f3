"""Philox4x32-10, a counter-based random number generator in torch integer ops, on any device.

Salmon, Moraes, Dror & Shaw, *Parallel random numbers: as easy as 1, 2, 3* (SC'11), the generator of the
Random123 library (and of cuRAND's ``curand_Philox4x32_10``). A block of four 32-bit outputs is a pure
function of a 128-bit counter and a 64-bit key: ten rounds of two 32 x 32 -> 64-bit multiplications
(high and low halves) and XORs, the key bumped by the Weyl constants between rounds.

Every value is held in an ``int64`` tensor and every intermediate result stays inside the int64 range
(each 32 x 32-bit multiplication is one int64 product by ``m - 2**32``, see :func:`_mulhilo`), so the
integer stream is exactly the same on the CPU and on CUDA, for any batch size and any chunking of the
counters. On the CPU the counters are processed in chunks of :data:`CPU_CHUNK`, the rounds in place in
preallocated buffers (seven tensor operations per round), so that the operands stay in the L2 cache. Uniform floats are
exact conversions of the integers (bit-identical on every device); normal variates (Box-Muller in
float64, rounded to float32) agree across devices except where a double-precision ``log``/``cos``/``sin``
differs in its last bit and that difference crosses a float32 rounding boundary (a few in ``2**28``).

A field of ``n`` values for one image uses the key ``(seed mod 2**32, seed >> 32)`` and the counters
``(j, 0, domain, 0)`` for blocks ``j = 0 .. ceil(n / 4) - 1``; ``domain`` separates the fields drawn
from one seed (noise and rain-streak seeds differ), and a field depends only on its seed, not on the
batch it is drawn in or the device.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch

__all__ = [
    "PHILOX_M",
    "PHILOX_W",
    "philox4x32",
    "philox4x32_reference",
    "philox_normal",
    "philox_uint32",
    "philox_uniform",
    "use_compiled_philox",
]

MASK32 = 0xFFFFFFFF
PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # round multipliers
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # Weyl key increments (golden ratio, sqrt(3) - 1)
ROUNDS = 10

#: counter word 2 of each field kind (ASCII tags), so that one seed gives independent fields
DOMAIN_NOISE = 0x6E6F6973  # "nois"
DOMAIN_RAIN = 0x7261696E  # "rain"

#: counters per chunk on the CPU: a round's four int64 buffers (2 words x 128 KiB each) stay in the L2 cache
CPU_CHUNK = 1 << 14

Word = torch.Tensor | int  # a 32-bit word of every counter (int64 tensor), or one shared by all (int)
Chunk = tuple[slice, slice, tuple[torch.Tensor, torch.Tensor]]  # rows, blocks, words (see _stream_blocks)


def _mulhilo(x: Word, m: int) -> tuple[Word, Word]:
    """High and low 32-bit words of ``x * m`` (``x`` in [0, 2**32), ``m`` a 32-bit constant above ``2**31``),
    with every intermediate inside the int64 range.

    ``x * m = x * (m - 2**32) + x * 2**32``: the first product lies in (-2**63, 0] and has the low 32 bits
    of ``x * m``, and its arithmetic shift by 32 (floor division) plus ``x`` is the high word.
    """
    if isinstance(x, int):
        return (x * m) >> 32, (x * m) & MASK32
    p = x * (m - (1 << 32))
    return (p >> 32).add_(x), p.bitwise_and_(MASK32)


def _xor3(a: Word, b: Word, key: Word) -> Word:
    """``a ^ b ^ key`` for words computed in this round (``a``, ``b``: overwritten where that saves a
    tensor) and a key word (never overwritten); the smaller operands are combined first."""
    x, y, z = sorted((a, b, key), key=lambda v: v.numel() if isinstance(v, torch.Tensor) else 0)
    xy = x ^ y
    if z is key or not isinstance(z, torch.Tensor):
        return z ^ xy
    full = isinstance(xy, int) or z.shape == torch.broadcast_shapes(z.shape, xy.shape)
    return z.bitwise_xor_(xy) if full else z ^ xy


def _rounds(c0: Word, c1: Word, c2: Word, c3: Word, k0: Word, k1: Word, rounds: int) -> tuple[Word, Word, Word, Word]:
    for r in range(rounds):
        if r:
            k0 = (k0 + PHILOX_W[0]) & MASK32
            k1 = (k1 + PHILOX_W[1]) & MASK32
        hi0, lo0 = _mulhilo(c0, PHILOX_M[0])
        hi1, lo1 = _mulhilo(c2, PHILOX_M[1])
        c0, c1, c2, c3 = _xor3(hi1, c1, k0), lo1, _xor3(hi0, c3, k1), lo0
    return c0, c1, c2, c3


def _rounds_stacked(c0: Word, c1: Word, c2: Word, c3: Word, k0: torch.Tensor, k1: torch.Tensor, start: int,
                    shape: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rounds ``start .. ROUNDS - 1`` of words of ``shape`` (those after round ``start - 1``), in place in
    four preallocated buffers holding the words in pairs: ``A = (c0, c2)``, the two multiplied words, and
    ``B = (c3, c1)``, the low halves of their products. Seven operations per round, none allocating.

    Returns:
        ``A = (c0, c2)`` and ``B = (c3, c1)`` after the last round, ``(2, *shape)`` int64 each.
    """
    a, b, p, h = (torch.empty((2, *shape), dtype=torch.int64, device=device) for _ in range(4))
    for dst, w in zip((a[0], a[1], b[0], b[1]), (c0, c2, c3, c1)):
        dst.copy_(torch.as_tensor(w, dtype=torch.int64, device=device).expand(shape))
    m = torch.tensor([m - (1 << 32) for m in PHILOX_M], dtype=torch.int64, device=device).view(2, 1, 1)
    r = torch.arange(start, ROUNDS, dtype=torch.int64, device=device).view(-1, 1, 1, 1)
    w = torch.tensor(PHILOX_W, dtype=torch.int64, device=device).view(1, 2, 1, 1)
    keys = (torch.stack([k0, k1])[None] + r * w) & MASK32  # (rounds, 2, rows, 1): (k0, k1) of each round
    for key in keys:
        torch.mul(a, m, out=p)  # (c0, c2) * (m - 2**32): in (-2**63, 0], see _mulhilo
        torch.bitwise_right_shift(p, 32, out=h)
        h.add_(a)  # (hi0, hi1)
        torch.bitwise_xor(h[1], b[1], out=a[0])  # hi1 ^ c1
        torch.bitwise_xor(h[0], b[0], out=a[1])  # hi0 ^ c3
        a.bitwise_xor_(key)  # ^ (k0, k1): the new (c0, c2)
        b, p = p.bitwise_and_(MASK32), b  # (lo0, lo1): the new (c3, c1)
    return a, b


def philox4x32(
    counter: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    key: tuple[torch.Tensor, torch.Tensor],
    rounds: int = ROUNDS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Philox4x32 bijection of ``counter`` under ``key``: four int64 tensors of 32-bit words.

    Args:
        counter: four int64 tensors of values in [0, 2**32), broadcastable against each other and the key.
        key: two int64 tensors of values in [0, 2**32).
        rounds: 10 for Philox4x32-10 (the standard; 7 is the smallest the authors found Crush-resistant).

    Returns:
        The four output words, int64 in [0, 2**32), of the broadcast shape.

    Example:
        >>> z = torch.zeros((), dtype=torch.int64)
        >>> [hex(int(w)) for w in philox4x32((z, z, z, z), (z, z))]
        ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    shape = torch.broadcast_shapes(*(t.shape for t in (*counter, *key)))
    c0, c1, c2, c3 = (t.clone() for t in counter)  # the rounds overwrite their words
    out = _rounds(c0, c1, c2, c3, key[0], key[1], rounds)
    return tuple(torch.as_tensor(w, dtype=torch.int64, device=c0.device).expand(shape) for w in out)  # type: ignore[return-value]


def philox4x32_reference(counter: tuple[int, int, int, int], key: tuple[int, int], rounds: int = ROUNDS) -> tuple[int, ...]:
    """Philox4x32 on Python integers (the reference the tensor version is tested against).

    Example:
        >>> [hex(w) for w in philox4x32_reference((0, 0, 0, 0), (0, 0))]
        ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    c0, c1, c2, c3 = (int(c) & MASK32 for c in counter)
    k0, k1 = (int(k) & MASK32 for k in key)
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + PHILOX_W[0]) & MASK32, (k1 + PHILOX_W[1]) & MASK32
        p0, p1 = PHILOX_M[0] * c0, PHILOX_M[1] * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0), p1 & MASK32, ((p0 >> 32) ^ c3 ^ k1), p0 & MASK32
    return c0, c1, c2, c3


def _check_seeds(seeds: torch.Tensor) -> torch.Tensor:
    if not isinstance(seeds, torch.Tensor) or seeds.ndim != 1 or seeds.dtype != torch.int64:
        raise TypeError(f"seeds must be a 1-d int64 tensor, got {getattr(seeds, 'dtype', type(seeds).__name__)}")
    if seeds.numel() and bool((seeds < 0).any()):
        raise ValueError(f"seeds must be in [0, 2**63 - 1], got {int(seeds.min())}")
    return seeds


def _rounds_numpy(j0: int, k0: np.ndarray, k1: np.ndarray, domain: int, shape: tuple[int, int],
                  work: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All rounds of counters ``(j0 + col, 0, domain, 0)`` under keys ``(k0, k1)`` (``(rows, 1)`` uint64),
    in NumPy uint64 arithmetic (defined modulo ``2**64``; a 32 x 32-bit product never wraps), in place in
    four buffers like :func:`_rounds_stacked` (six ufunc calls per round). The CPU path: the same
    operations as the torch rounds at a fraction of torch's per-operation overhead.

    Args:
        work: ``(4, 2, >= rows, >= cols)`` uint64 buffers to compute in (reused across chunks: fresh
            memory costs a page fault per 4 KiB); default: new ones.

    Returns:
        ``A = (c0, c2)`` and ``B = (c3, c1)``, ``(2, *shape)`` uint64 each (views of ``work``).
    """
    if work is None:
        work = np.empty((4, 2, *shape), dtype=np.uint64)
    a, b, p, h = work[:, :, : shape[0], : shape[1]]
    a[0] = np.arange(j0, j0 + shape[1], dtype=np.uint64)
    a[1] = domain
    b.fill(0)
    m = np.array(PHILOX_M, dtype=np.uint64).reshape(2, 1, 1)
    w = np.array(PHILOX_W, dtype=np.uint64).reshape(1, 2, 1, 1)
    r = np.arange(ROUNDS, dtype=np.uint64).reshape(-1, 1, 1, 1)
    keys = (np.stack([k0, k1])[None] + r * w) & np.uint64(MASK32)  # (rounds, 2, rows, 1)
    shift, mask = np.uint64(32), np.uint64(MASK32)
    for key in keys:
        np.multiply(a, m, out=p)  # (c0 * M0, c2 * M1) < 2**64
        np.right_shift(p, shift, out=h)  # (hi0, hi1)
        np.bitwise_xor(h[1], b[1], out=a[0])  # hi1 ^ c1
        np.bitwise_xor(h[0], b[0], out=a[1])  # hi0 ^ c3
        a ^= key  # ^ (k0, k1): the new (c0, c2)
        b, p = np.bitwise_and(p, mask, out=p), b  # (lo0, lo1): the new (c3, c1)
    return a, b


#: the CPU's rounds: ``"numpy"`` (default) or ``"torch"`` (the rounds every other device runs; tests force it)
CPU_ROUNDS = "numpy"


# -- opt-in: the rounds fused by torch.compile on the CPU ---------------------------------------------
#: environment variable that turns the compiled CPU rounds on at import (``1``), e.g. for DataLoader workers
COMPILE_ENV = "MIO_STRATEGIES_PHILOX_COMPILE"

_compiled: dict[str, object] = {"enabled": os.environ.get(COMPILE_ENV, "0") not in ("", "0"), "fn": None, "error": None}


def use_compiled_philox(enabled: bool = True) -> bool:
    """Compute the Philox stream's rounds on the CPU with one ``torch.compile``d (inductor) kernel.

    Off by default: the first call in a process compiles the kernel (seconds to a minute or more on a small
    CPU; inductor's on-disk cache shortens later processes) and needs a C++ compiler. The kernel computes
    the same integer operations, so the words are the same (checked on a probe against the eager rounds
    before first use); Box-Muller's ``log``/``cos``/``sin`` stay the eager ones, so the normals are the same
    too. If compiling fails or the probe differs, a ``RuntimeWarning`` says so and the eager rounds are used
    for the rest of the process. The environment variable ``MIO_STRATEGIES_PHILOX_COMPILE=1`` sets it at
    import (also in DataLoader worker processes). CUDA and other devices always use the eager rounds.

    Args:
        enabled: use the compiled kernel from now on (``False``: the eager rounds).

    Returns:
        Whether it was enabled before.

    Example:
        >>> previous = use_compiled_philox(False)
        >>> use_compiled_philox(previous)
        False
    """
    previous = bool(_compiled["enabled"])
    _compiled["enabled"] = bool(enabled)
    return previous


def _fused_rounds(j: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """All rounds of counters ``(j, 0, domain, 0)`` under keys ``(k0, k1)`` (1-d int64, one per counter), in
    functional form for ``torch.compile``: ``(4, N)`` words ``(c0, c2, c3, c1)``, the layout of
    :func:`_rounds_stacked`'s ``(A, B)``."""
    c0, c2 = j, domain.expand_as(j)
    c1 = c3 = torch.zeros_like(j)
    for r in range(ROUNDS):
        kr0 = (k0 + r * PHILOX_W[0]) & MASK32
        kr1 = (k1 + r * PHILOX_W[1]) & MASK32
        p0 = c0 * (PHILOX_M[0] - (1 << 32))  # see _mulhilo
        p1 = c2 * (PHILOX_M[1] - (1 << 32))
        c0, c1, c2, c3 = ((p1 >> 32) + c2) ^ c1 ^ kr0, p1 & MASK32, ((p0 >> 32) + c0) ^ c3 ^ kr1, p0 & MASK32
    return torch.stack([c0, c2, c3, c1])


def _compiled_rounds() -> Callable[..., torch.Tensor] | None:
    """The compiled :func:`_fused_rounds` when enabled, compiling and probing it on first use; ``None``
    when disabled or when compiling failed (warned once)."""
    if not _compiled["enabled"] or _compiled["error"] is not None:
        return None
    if _compiled["fn"] is None:
        try:
            fn = torch.compile(_fused_rounds, dynamic=True, fullgraph=True)
            seeds = torch.tensor([0, 1, 12345, 2**32 + 7, 2**63 - 1])
            k0, k1 = (seeds & MASK32)[:, None], (seeds >> 32)[:, None]
            j = torch.arange(3, 40, dtype=torch.int64)[None, :]
            a, b = _rounds_stacked(*_rounds(j, 0, DOMAIN_NOISE, 0, k0, k1, 1), k0, k1, 1, (5, 37), torch.device("cpu"))
            jf, k0f, k1f = (t.expand(5, 37).reshape(-1) for t in (j, k0, k1))
            got = fn(jf, k0f, k1f, torch.tensor(DOMAIN_NOISE)).view(4, 5, 37)
            if not torch.equal(got, torch.cat([a, b])):
                raise RuntimeError("the compiled rounds differ from the eager ones on a probe")
            _compiled["fn"] = fn
        except Exception as e:  # noqa: BLE001 - no C++ compiler, an inductor error, a wrong result: stay eager
            _compiled["error"] = f"{type(e).__name__}: {e}"
            warnings.warn(f"compiled Philox rounds unavailable ({_compiled['error']}); using the eager rounds",
                          RuntimeWarning, stacklevel=3)
            return None
    return _compiled["fn"]  # type: ignore[return-value]


def _stream_blocks(
    seeds: torch.Tensor, n: int, domain: int, device: torch.device | str | None
) -> tuple[torch.device, int, Iterator[Chunk]]:
    """The blocks of each seed's stream, chunk by chunk: ``(device, blocks, chunks)``, each chunk
    ``(rows, cols, (A, B))`` with the words of blocks ``cols`` of seeds ``rows`` in pairs, ``A = (c0, c2)``
    and ``B = (c3, c1)``, each ``(2, len(rows), len(cols))`` int64 (see :func:`_rounds_stacked`); on the
    CPU about :data:`CPU_CHUNK` counters per chunk (so that a round's operands stay in the L2 cache),
    elsewhere one chunk."""
    seeds = _check_seeds(seeds)
    dev = torch.device(device) if device is not None else seeds.device
    if n < 0 or n >= 1 << 34:
        raise ValueError(f"n must be in [0, 2**34), got {n}")
    if not 0 <= domain <= MASK32:
        raise ValueError(f"domain must be a 32-bit value, got {domain}")
    blocks = math.ceil(n / 4)  # <= 2**32: a block index fits counter word 0, word 1 stays 0
    s = seeds.to(dev)
    k0, k1 = (s & MASK32)[:, None], (s >> 32)[:, None]
    b = s.shape[0]
    fused = _compiled_rounds() if dev.type == "cpu" else None
    cpu_numpy = dev.type == "cpu" and fused is None and CPU_ROUNDS == "numpy"
    if dev.type == "cpu":
        rb = max(1, min(b, CPU_CHUNK))
        cb = max(1, CPU_CHUNK // rb)
    else:
        rb, cb = max(1, b), max(1, blocks)
    if cpu_numpy:
        k0_np, k1_np = (k.numpy().astype(np.uint64) for k in (k0, k1))
        work = np.empty((4, 2, min(rb, b), min(cb, blocks)), dtype=np.uint64)

    def chunks() -> Iterator[Chunk]:
        for r0 in range(0, b, rb):
            rows = slice(r0, min(b, r0 + rb))
            for j0 in range(0, blocks, cb):
                cols = slice(j0, min(blocks, j0 + cb))
                j = torch.arange(cols.start, cols.stop, device=dev, dtype=torch.int64)[None, :]
                kr0, kr1 = k0[rows], k1[rows]
                shape = (rows.stop - rows.start, cols.stop - cols.start)
                if cpu_numpy:
                    a, bb = _rounds_numpy(j0, k0_np[rows], k1_np[rows], domain, shape, work)
                    yield rows, cols, (torch.from_numpy(a.view(np.int64)), torch.from_numpy(bb.view(np.int64)))
                elif fused is not None and shape[0] * shape[1] > 1:  # one counter: a size the kernel specialises on
                    flat = [t.expand(shape).reshape(-1) for t in (j, kr0, kr1)]
                    w = fused(*flat, torch.tensor(domain, dtype=torch.int64)).view(4, *shape)
                    yield rows, cols, (w[:2], w[2:])
                else:
                    first = _rounds(j, 0, domain, 0, kr0, kr1, 1)  # per seed or per block but one word
                    yield rows, cols, _rounds_stacked(*first, kr0, kr1, 1, shape, dev)

    return dev, blocks, chunks()


def philox_uint32(seeds: torch.Tensor, n: int, *, domain: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """``n`` 32-bit words per seed: ``(len(seeds), n)`` int64 in [0, 2**32), computed on ``device``.

    Word ``i`` of a seed's stream is word ``i % 4`` of block ``i // 4`` (counter ``(i // 4, 0, domain, 0)``),
    so the first ``n`` words do not depend on how many are drawn.

    Args:
        seeds: ``(B,)`` int64 seeds in [0, 2**63 - 1] (on any device).
        n: words per seed (< 2**34).
        domain: a 32-bit tag separating independent streams of one seed.
        device: where to compute (default: ``seeds``' device).

    Returns:
        ``(B, n)`` int64 words.

    Raises:
        TypeError: ``seeds`` is not a 1-d int64 tensor.
        ValueError: a negative seed, ``n`` or ``domain`` out of range.

    Example:
        >>> w = philox_uint32(torch.tensor([5, 6]), 10)
        >>> w.shape, torch.equal(philox_uint32(torch.tensor([6]), 3)[0], w[1, :3])
        (torch.Size([2, 10]), True)
    """
    dev, blocks, chunks = _stream_blocks(seeds, n, domain, device)
    out = torch.empty((seeds.shape[0], blocks, 4), dtype=torch.int64, device=dev)
    for rows, cols, (a, b) in chunks:
        o = out[rows, cols].permute(2, 0, 1)  # (word, rows, blocks)
        o[0::2] = a  # c0, c2
        o[1], o[3] = b[1], b[0]  # c1, c3
    return out.view(seeds.shape[0], blocks * 4)[:, :n]


def philox_uniform(seeds: torch.Tensor, n: int, *, domain: int = 0, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, n)`` uniforms on [0, 1): the top 24 bits of each word times ``2**-24`` (exact in float32,
    so bit-identical on every device).

    Example:
        >>> u = philox_uniform(torch.tensor([1, 2]), 1000)
        >>> u.shape, bool((u >= 0).all() and (u < 1).all())
        (torch.Size([2, 1000]), True)
    """
    dev, blocks, chunks = _stream_blocks(seeds, n, domain, device)
    out = torch.empty((seeds.shape[0], blocks, 4), dtype=dtype, device=dev)
    scale = torch.tensor(2.0**-24, dtype=dtype, device=dev)  # a 0-d tensor: the product is taken in ``dtype``
    for rows, cols, (a, b) in chunks:
        o = out[rows, cols].permute(2, 0, 1)  # (word, rows, blocks)
        torch.mul(a.bitwise_right_shift_(8), scale, out=o[0::2])  # c0, c2
        b.bitwise_right_shift_(8)
        torch.mul(b[1], scale, out=o[1])  # c1
        torch.mul(b[0], scale, out=o[3])  # c3
    return out.view(seeds.shape[0], blocks * 4)[:, :n]


def philox_normal(seeds: torch.Tensor, n: int, *, domain: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """``(B, n)`` standard normal float32 variates by Box-Muller from consecutive pairs of words.

    Words ``(2i, 2i+1)`` give ``u1 = (w + 1) * 2**-32`` in (0, 1] and ``u2 = w * 2**-32``, then
    ``sqrt(-2 ln u1) * (cos, sin)(2 pi u2)``, computed in float64 and rounded to float32. Tails reach
    ``sqrt(64 ln 2)`` = 6.66 standard deviations.

    Example:
        >>> z = philox_normal(torch.tensor([7]), 100_000)
        >>> abs(z.mean().item()) < 0.02, abs(z.std().item() - 1) < 0.02
        (True, True)
    """
    dev, blocks, chunks = _stream_blocks(seeds, n, domain, device)
    out = torch.empty((seeds.shape[0], blocks, 2, 2), dtype=torch.float32, device=dev)  # (.., pair, cos/sin)
    one = torch.tensor(1.0, dtype=torch.float64, device=dev)  # 0-d float64 tensors: the sums are float64
    # 2 pi * (w * 2**-32) == w * (2 pi * 2**-32) exactly: scaling by a power of two commutes with rounding
    turn = torch.tensor(2.0 * math.pi * 2.0**-32, dtype=torch.float64, device=dev)
    work = None  # float64 buffers of the first (largest) chunk, reused by the others
    for rows, cols, (a, b) in chunks:
        o = out[rows, cols].permute(2, 0, 1, 3)  # (pair, rows, blocks, cos/sin)
        if work is None:
            work = torch.empty((3, *a.shape), dtype=torch.float64, device=dev)
        r, theta, c = work[:, :, : a.shape[1], : a.shape[2]]
        torch.add(a, one, out=r).mul_(2.0**-32).log_().mul_(-2.0).sqrt_()  # pairs (c0, c1) and (c2, c3)
        torch.mul(b[1], turn, out=theta[0])  # c1 (pair c0, c1)
        torch.mul(b[0], turn, out=theta[1])  # c3 (pair c2, c3)
        torch.mul(r, torch.cos(theta, out=c), out=o[..., 0])
        torch.mul(r, theta.sin_(), out=o[..., 1])
    return out.view(seeds.shape[0], blocks * 4)[:, :n]
