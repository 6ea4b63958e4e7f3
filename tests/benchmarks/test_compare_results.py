"""benchmarks/compare_results.py: paired differences between results folders, on hand-made result.json files."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
compare_results = importlib.import_module("compare_results")

TASKS = ("sr", "jpeg")


def _run(folder: Path, seed: int, scores: dict[str, float], **config) -> None:
    run = folder / f"S_EP-seed{seed}"
    run.mkdir(parents=True)
    cfg = {"strategy": "S+EP", "seed": seed, "lr": 2e-4, "name": f"run-{seed}", "device": "cpu", **config}
    result = {"per_task": scores, "average": sum(scores.values()) / len(scores), "config": cfg}
    (run / "result.json").write_text(json.dumps(result), encoding="utf-8")


def test_paired_differences_per_task_and_the_changed_setting(tmp_path):
    for seed, (sr, jpeg) in enumerate([(26.0, 30.0), (26.2, 30.4), (26.1, 29.9)]):
        _run(tmp_path / "base", seed, {"sr": sr, "jpeg": jpeg})
    for seed, (sr, jpeg) in enumerate([(26.5, 30.0), (26.6, 30.6), (26.6, 29.9)]):
        _run(tmp_path / "variant", seed, {"sr": sr, "jpeg": jpeg}, lr=1e-3, device="cuda")
    _run(tmp_path / "variant", 7, {"sr": 0.0, "jpeg": 0.0}, lr=1e-3)  # no baseline for seed 7: left out
    lines = compare_results.compare(tmp_path / "base", [tmp_path / "variant"], "S+EP")
    row = lines[2].split(" | ")
    assert row[1] == "0, 1, 2"
    assert row[2] == "lr=0.001"  # the device is not a run-defining change
    assert row[3] == "+0.47 +/- 0.06"  # sr: +0.5, +0.4, +0.5
    assert row[4] == "+0.07 +/- 0.12"  # jpeg: 0, +0.2, 0
    assert row[5].startswith("+0.27 +/- 0.03 (3/3 ahead)")  # averages: +0.25, +0.30, +0.25


def test_a_variant_without_common_seeds_or_mixed_configurations_is_refused(tmp_path):
    _run(tmp_path / "base", 0, {"sr": 26.0, "jpeg": 30.0})
    _run(tmp_path / "other", 1, {"sr": 26.0, "jpeg": 30.0})
    with pytest.raises(ValueError, match="share no finished S\\+EP seed"):
        compare_results.compare(tmp_path / "base", [tmp_path / "other"], "S+EP")
    _run(tmp_path / "base", 1, {"sr": 26.0, "jpeg": 30.0})
    _run(tmp_path / "mixed", 0, {"sr": 26.0, "jpeg": 30.0}, lr=1e-3)
    _run(tmp_path / "mixed", 1, {"sr": 26.0, "jpeg": 30.0}, lr=5e-4)
    with pytest.raises(ValueError, match="differ from the baseline in other settings per seed"):
        compare_results.compare(tmp_path / "base", [tmp_path / "mixed"], "S+EP")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        compare_results.load_results(tmp_path / "missing", "S+EP")


def test_the_command_line_prints_the_table_and_refuses_with_a_message(tmp_path, capsys):
    _run(tmp_path / "base", 0, {"sr": 26.0, "jpeg": 30.0})
    _run(tmp_path / "variant", 0, {"sr": 26.5, "jpeg": 30.0}, lr=1e-3)
    assert compare_results.main([str(tmp_path / "base"), str(tmp_path / "variant")]) == 0
    assert "| variant | 0 | lr=0.001 | +0.50 | +0.00 | +0.25 (1/1 ahead) |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        compare_results.main([str(tmp_path / "nothing"), str(tmp_path / "variant")])
    assert "does not exist" in capsys.readouterr().err
