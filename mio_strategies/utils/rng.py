"""Deterministic seed derivation: independent streams from tuples of integers."""

from __future__ import annotations

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer keys (e.g. ``(seed, epoch, index)``).

    Uses numpy's ``SeedSequence`` hashing, so nearby keys give unrelated streams and the result does
    not depend on the process, worker or platform.
    """
    if not keys:
        raise ValueError("derive_seed needs at least one integer key")
    ints = []
    for k in keys:
        k = int(k)
        if k < 0:
            raise ValueError(f"seed keys must be non-negative integers, got {k}")
        ints.append(k)
    state = np.random.SeedSequence(ints).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31 | int(state[1]) >> 1) & ((1 << 63) - 1)


def generator_from(*keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` seeded with :func:`derive_seed` ``(*keys)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))
