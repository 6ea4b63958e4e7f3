"""Shared test fixtures: tiny, seeded, no downloads."""

from __future__ import annotations

import os

# One intra-op thread, set before torch (and numpy) load their OpenMP and MKL runtimes, and inherited by the
# processes a test starts: the tests' tensors are tiny, and on a CPU that other jobs share a second thread
# makes every parallel region wait for a thread that is not scheduled (5-20x slower). torch.set_num_threads(1)
# alone does not reach MKL's calls (the packed runs' grouped convolutions). Set the variables to use more.
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


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
        "test_harness_eval.py",
        "test_prompt_distributed.py",
        "test_sampler_distributed.py",
        "test_demo_story.py",
        "test_protocol_run.py",
        "test_lightning.py",
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
    "test_harness_acceleration.py": ("compiled_training",),
    "test_degradations_philox.py": ("compiled_rounds_give",),  # torch.compile (inductor and a C++ compiler)
    # the benchmark scripts' runs (training, the device tool's package, worker processes); the reports stay fast
    "test_mini_benchmark.py": (
        "tiny_end_to_end",
        "extend_continues",
        "ship_weights",
        "gpu_check_packs",
        "jobs_workers",
        "signalled_workers",
    ),
    "test_analysis_metrics.py": ("umap",),  # its first call compiles with numba
    "test_analysis_cli.py": ("train_checkpoint",),
    "test_curriculum_basicsr.py": ("train_pipeline", "mixed_mode"),
    "test_models_blocks.py": ("need_no_basicsr", "shipped_weights"),
    "test_bare_install.py": ("quickstart", "main_job"),
    "test_harness_sweep.py": ("interrupted_run",),
    "test_properties.py": ("killed_at_random_points",),
    "test_docs_site.py": ("site_builds",),
    # the pages whose snippets train or project for more than a few seconds on a CPU
    "test_docs_snippets.py": (
        "[analysis.md]",
        "[reproducing.md]",
        "[lightning.md]",
        "[guides/pytorch-loop.md]",
        "[guides/compare-strategies.md]",
    ),
    # a command in a new process (a Python start and a torch import each): the degrade, train and make commands,
    # signals sent to a run, several processes racing for a lock, DataLoader workers
    "test_readme.py": ("quickstart_runs",),
    "test_reliability.py": ("a_signal_finishes",),
    "test_commands.py": ("make_builds",),
    "test_testsets.py": ("degrade_cli",),
    "test_data_edges.py": ("degrade_cli",),
    "test_dataset.py": ("two_workers",),
    "test_outputs.py": ("sigterm_during_degrade", "many_processes"),
}


def _is_slow(item) -> bool:
    file = item.path.name
    return file in _SLOW_FILES or any(part in item.name for part in _SLOW_NAME_PARTS.get(file, ()))


def pytest_ignore_collect(collection_path, config):
    """Under ``-m "not slow"`` the whole slow files are not even imported (lightning alone takes seconds)."""
    if collection_path.name in _SLOW_FILES and " ".join(config.getoption("markexpr").split()) == "not slow":
        return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)
