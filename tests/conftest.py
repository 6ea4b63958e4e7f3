"""Shared test fixtures: tiny, seeded, no downloads."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator (tests never touch the global RNG)."""
    return torch.Generator().manual_seed(1234)
