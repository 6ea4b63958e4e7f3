"""Philox4x32-10, a counter-based random number generator in torch integer ops, on any device.

Salmon, Moraes, Dror & Shaw, *Parallel random numbers: as easy as 1, 2, 3* (SC'11), the generator of the
Random123 library (and of cuRAND's ``curand_Philox4x32_10``). A block of four 32-bit outputs is a pure
function of a 128-bit counter and a 64-bit key: ten rounds of two 32 x 32 -> 64-bit multiplications
(high and low halves) and XORs, the key bumped by the Weyl constants between rounds.

Every value is held in an ``int64`` tensor and every intermediate result stays below ``2**63`` (the
multiplications are split into 16-bit halves of the constant), so the integer stream is exactly the
same on the CPU and on CUDA, for any batch size and any chunking of the counters. Uniform floats are
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

import torch

__all__ = [
    "PHILOX_M",
    "PHILOX_W",
    "philox4x32",
    "philox4x32_reference",
    "philox_normal",
    "philox_uint32",
    "philox_uniform",
]

MASK32 = 0xFFFFFFFF
PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # round multipliers
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # Weyl key increments (golden ratio, sqrt(3) - 1)
ROUNDS = 10

#: counter word 2 of each field kind (ASCII tags), so that one seed gives independent fields
DOMAIN_NOISE = 0x6E6F6973  # "nois"
DOMAIN_RAIN = 0x7261696E  # "rain"


def _mulhilo(x: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit words of ``x * m`` (``x`` int64 in [0, 2**32), ``m`` a 32-bit constant),
    without any intermediate reaching 2**63."""
    m_lo, m_hi = m & 0xFFFF, m >> 16
    a = x * m_lo  # < 2**48
    b = x * m_hi  # < 2**48; the product is a + b * 2**16
    t = a + ((b & 0xFFFF) << 16)  # < 2**49
    return (b >> 16) + (t >> 32), t & MASK32


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
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0 = (k0 + PHILOX_W[0]) & MASK32
            k1 = (k1 + PHILOX_W[1]) & MASK32
        hi0, lo0 = _mulhilo(c0, PHILOX_M[0])
        hi1, lo1 = _mulhilo(c2, PHILOX_M[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


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


def philox_uint32(seeds: torch.Tensor, n: int, *, domain: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """``n`` 32-bit words per seed: ``(len(seeds), n)`` int64 in [0, 2**32), computed on ``device``.

    Word ``i`` of a seed's stream is word ``i % 4`` of block ``i // 4`` (counter ``(i // 4, 0, domain, 0)``),
    so the first ``n`` words do not depend on how many are drawn.

    Args:
        seeds: ``(B,)`` int64 seeds in [0, 2**63 - 1] (on any device).
        n: words per seed (< 2**34).
        domain: a 32-bit tag separating independent streams of one seed.
        device: where to compute (default: ``seeds``' device).

    Example:
        >>> w = philox_uint32(torch.tensor([5, 6]), 10)
        >>> w.shape, torch.equal(philox_uint32(torch.tensor([6]), 3)[0], w[1, :3])
        (torch.Size([2, 10]), True)
    """
    seeds = _check_seeds(seeds)
    dev = torch.device(device) if device is not None else seeds.device
    if n < 0 or n >= 1 << 34:
        raise ValueError(f"n must be in [0, 2**34), got {n}")
    if not 0 <= domain <= MASK32:
        raise ValueError(f"domain must be a 32-bit value, got {domain}")
    blocks = math.ceil(n / 4)
    s = seeds.to(dev)
    k0 = (s & MASK32)[:, None]
    k1 = (s >> 32)[:, None]
    j = torch.arange(blocks, device=dev, dtype=torch.int64)[None, :]
    zero = torch.zeros((), device=dev, dtype=torch.int64)
    dom = torch.full((), domain, device=dev, dtype=torch.int64)
    words = philox4x32((j & MASK32, j >> 32, dom, zero), (k0, k1))
    out = torch.stack([w.expand(s.shape[0], blocks) for w in words], dim=-1).reshape(s.shape[0], blocks * 4)
    return out[:, :n]


def philox_uniform(seeds: torch.Tensor, n: int, *, domain: int = 0, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, n)`` uniforms on [0, 1): the top 24 bits of each word times ``2**-24`` (exact in float32,
    so bit-identical on every device).

    Example:
        >>> u = philox_uniform(torch.tensor([1, 2]), 1000)
        >>> u.shape, bool((u >= 0).all() and (u < 1).all())
        (torch.Size([2, 1000]), True)
    """
    words = philox_uint32(seeds, n, domain=domain, device=device)
    return (words >> 8).to(dtype) * (2.0**-24)


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
    m = n + (n % 2)
    words = philox_uint32(seeds, m, domain=domain, device=device).view(-1, m // 2, 2)
    u1 = (words[..., 0].to(torch.float64) + 1.0) * (2.0**-32)
    u2 = words[..., 1].to(torch.float64) * (2.0**-32)
    r = torch.sqrt(-2.0 * torch.log(u1))
    theta = (2.0 * math.pi) * u2
    z = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1).reshape(words.shape[0], m)
    return z[:, :n].to(torch.float32)
