"""benchmarks/train_speed.py: the steps table at a chosen batch size, and its refusals; what the DiffJPEG row times."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
train_speed = importlib.import_module("train_speed")


def test_the_steps_table_times_each_variant_at_the_batch_asked_for(capsys):
    only_fp32 = train_speed.steps_table(["mini_converged"], ["fp32"], torch.device("cpu"), 0.0, batch=1, patch=16)
    assert [line.count("|") for line in only_fp32] == [3, 3, 3]  # one variant: no ratio column, no empty cell

    args = ["--device", "cpu", "--sections", "steps", "--presets", "mini_converged", "--variants", "fp32", "bf16",
            "--seconds", "0", "--steps-batch", "2", "--steps-patch", "32", "--threads", "1"]  # fmt: skip
    assert train_speed.main(args) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| mini_converged"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "mini_converged (2 x 32)"  # the row names the batch and patch used, not the preset's 16 x 64
    assert len(cells) == 4  # preset, two speeds, one ratio: no empty cell
    fp32, bf16, ratio = float(cells[1]), float(cells[2]), cells[3]
    assert fp32 > 0 and bf16 > 0
    assert ratio.endswith("x") and float(ratio[:-1]) == pytest.approx(bf16 / fp32, abs=0.02)  # of the unrounded speeds


@pytest.mark.parametrize(
    ("flag", "bad", "fix"),
    [
        ("--steps-batch", "0", "positive batch size"),
        ("--steps-batch", "-3", "positive batch size"),
        ("--steps-patch", "4", "patch side of at least 8"),
    ],
)
def test_a_size_too_small_is_refused_before_anything_is_timed(flag, bad, fix, capsys):
    with pytest.raises(SystemExit) as exc:
        train_speed.main(["--device", "cpu", "--sections", "steps", flag, bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{flag} {bad}" in err and fix in err


def test_the_diffjpeg_row_times_what_the_training_loop_runs_with_device_synthesis(monkeypatch):
    import mio_strategies.data as data

    calls = []
    real = data.degrade_deferred

    def spy(batch, device=None):
        calls.append(batch)
        return real(batch, device)

    monkeypatch.setattr(data, "degrade_deferred", spy)
    speed = train_speed.synthesis_speed("jpeg", "torch", torch.device("cpu"), 3, 16, 0.0, codec="diffjpeg")
    assert speed > 0 and calls  # batched: the loop's call on a batch of deferred JPEG items
    batch = calls[0]
    assert batch["deferred"] == [True] * 3 and batch["task"].tolist() == [3] * 3
    assert all(p["codec"] == "diffjpeg" for p in batch["params"])
    calls.clear()
    train_speed.synthesis_speed("jpeg", "item", torch.device("cpu"), 3, 16, 0.0, codec="diffjpeg")
    assert not calls  # per patch: degrade in the loader, as MiODataset(synthesis="loader") does
