"""Evaluation of a fixed checkpoint on a fixed test set gives the recorded values (tests/fixtures)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mio_strategies.cli import main
from mio_strategies.data import open_testset
from mio_strategies.harness import CheckpointMismatchError, evaluate, load_restorer

pytestmark = [pytest.mark.basicsr, pytest.mark.usefixtures("one_thread")]

DATA = Path(__file__).resolve().parents[1] / "fixtures"
CHECKPOINT = DATA / "fixed_M_checkpoint.pt"
KNOWN = json.loads((DATA / "fixed_M_eval.json").read_text())


@pytest.fixture(scope="module")
def testset(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_fixed_eval", DATA / "make_fixed_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fixed_testset(tmp_path_factory.mktemp("fixed"))


def _close(table: dict, known: dict) -> None:
    assert list(table) == list(known)
    for task, row in known.items():
        assert table[task]["n"] == row["n"], task
        assert table[task]["psnr"] == pytest.approx(row["psnr"], abs=0.01), task
        assert table[task]["ssim"] == pytest.approx(row["ssim"], abs=1e-4), task


def test_fixed_checkpoint_gives_the_recorded_table(testset):
    restorer, cfg, _ = load_restorer(CHECKPOINT)
    assert (cfg.backbone, cfg.strategy) == ("srresnet_tiny", "M")
    res = evaluate(restorer, open_testset(testset), name="fixed M")
    _close(res.per_task(), KNOWN["per_task"])
    _close(res.per_task(identity=True), KNOWN["identity_per_task"])
    assert res.average()["psnr"] == pytest.approx(KNOWN["average"]["psnr"], abs=0.01)
    assert res.average(identity=True)["psnr"] == pytest.approx(KNOWN["identity_average"]["psnr"], abs=0.01)
    assert "blur+noise" in res.per_task()  # the composite column is part of the record


def test_cli_eval_of_the_fixed_checkpoint_writes_the_recorded_values(testset, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", str(CHECKPOINT), "--testset", str(testset), "--output", str(out),
                 "--baseline", "identity", "--reference", "srresnet:M"]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())["results"][0]
    _close(data["per_task"], KNOWN["per_task"])
    assert f"{KNOWN['average']['psnr']:.1f}" in printed and "paper srresnet-M (in-dis)" in printed
    assert (out / "psnr_bars.png").stat().st_size > 0


def test_fixed_checkpoint_is_refused_for_another_strategy():
    with pytest.raises(CheckpointMismatchError, match=r"strategy: 'M' in the checkpoint, 'S\+EP' requested"):
        load_restorer(CHECKPOINT, expect={"strategy": "S+EP"})
