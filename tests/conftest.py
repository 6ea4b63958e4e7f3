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


# -- the slow tests (`python -m pytest -m "not slow"` is the fast selection; CI runs everything) ---------------
# Whole files that train models or spawn processes, and, elsewhere, the tests that do. Marked here, in one
# place, so that a test file need not change to be moved in or out of the fast selection.
_SLOW_FILES = frozenset(
    {
        "test_mini_benchmark.py",
        "test_harness_eval.py",
        "test_prompt_distributed.py",
        "test_sampler_distributed.py",
        "test_demo_story.py",
        "test_protocol_run.py",
    }
)
_SLOW_NAME_PARTS = {
    "test_harness.py": (
        "train",
        "resume",
        "extend",
        "demo",
        "exported",
        "optimizer_resets",
        "processes",
        "gloo",
        "leg",
        "logged_lr",
        "failing_config",
        "existing_output_folder",
        "another_process",
        "generators_as_they_were",
    ),
    "test_analysis_metrics.py": ("umap",),
    "test_analysis_cli.py": ("train_checkpoint",),
    "test_curriculum_basicsr.py": ("train_pipeline", "mixed_mode"),
    "test_models_blocks.py": ("need_no_basicsr", "shipped_weights"),
    "test_bare_install.py": ("quickstart", "main_job"),
    "test_harness_sweep.py": ("interrupted_run",),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        file = item.path.name
        if file in _SLOW_FILES or any(part in item.name for part in _SLOW_NAME_PARTS.get(file, ())):
            item.add_marker(pytest.mark.slow)
