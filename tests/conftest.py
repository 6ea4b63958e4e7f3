"""Shared test fixtures: tiny, seeded, no downloads."""

from __future__ import annotations

import pytest
import torch
from torch import nn


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator (tests never touch the global RNG)."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread avoids oversubscription on a shared CPU (20x slower otherwise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def real_batch(n: int = 2, size: int = 48) -> torch.Tensor:
    """``n`` crops of the embedded photographs as a (n, 3, size, size) float tensor."""
    from mio_strategies.data import embedded_image_paths, read_image

    files = embedded_image_paths()
    return torch.stack([read_image(files[i % len(files)])[:, 40 : 40 + size, 60 : 60 + size] for i in range(n)])


class TupleOut(nn.Module):
    """A module whose output is a tuple (features, a scalar): prompts go on the tensor part."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return y, y.mean()
