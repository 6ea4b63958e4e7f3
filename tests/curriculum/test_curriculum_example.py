"""The plain-PyTorch loop example runs, honours the curriculum, and its resume equals the uninterrupted run."""

from __future__ import annotations

import runpy
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "curriculum_loop.py"


def test_example_loop_resumed_midway_equals_uninterrupted_run(capsys):
    main = runpy.run_path(str(EXAMPLE))["main"]
    full = main(["--iterations-per-period", "3"])
    resumed = main(["--iterations-per-period", "3", "--stop-at", "11"])
    assert torch.equal(full["seen"], resumed["seen"])
    assert full["final_loss"] == resumed["final_loss"]
    seen = full["seen"]
    for period in range(7):  # period p trains only the first p + 1 tasks of SBNJRHL
        assert seen[period, : period + 1].sum() == 3 * 4 and (seen[period, period + 1 :] == 0).all()
    assert seen[0, 0] == 12 and seen[1, :2].tolist() == [6, 6]
    assert "period 7: tasks SBNJRHL" in capsys.readouterr().out


def test_example_mixed_baseline_trains_all_tasks_from_the_start():
    main = runpy.run_path(str(EXAMPLE))["main"]
    seen = main(["--iterations-per-period", "2", "--mixed"])["seen"]
    assert (seen[0] > 0).sum() >= 7 - 1 and seen.sum() == 10 * 2 * 4
