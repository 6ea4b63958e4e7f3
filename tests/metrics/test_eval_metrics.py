"""PSNR/SSIM equal basicsr's, and evaluation tables hold the values computed independently."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

from mio_strategies.harness import EvalResult, evaluate, format_table, paper_results, psnr, ssim, write_tables
from mio_strategies.tasks import TASKS
from mio_strategies.utils.basicsr_compat import import_basicsr


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)


@pytest.mark.basicsr
def test_psnr_and_ssim_equal_basicsr_on_rgb_with_border_crop():
    metrics = import_basicsr("metrics.psnr_ssim")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 37, 45, generator=g)
    y = (x + 0.08 * torch.randn(3, 3, 37, 45, generator=g)).clamp(0, 1)
    ours_p, ours_s = psnr(x, y, 4), ssim(x, y, 4)
    for i in range(3):
        ref_p = metrics.calculate_psnr(_u8(x[i]), _u8(y[i]), crop_border=4, input_order="HWC")
        ref_s = metrics.calculate_ssim(_u8(x[i]), _u8(y[i]), crop_border=4, input_order="HWC")
        assert float(ours_p[i]) == pytest.approx(ref_p, abs=1e-9)
        assert float(ours_s[i]) == pytest.approx(ref_s, abs=1e-9)


def test_identical_images_have_infinite_psnr_and_unit_ssim():
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    assert torch.isinf(psnr(x, x)).all()
    assert float(ssim(x, x)) == pytest.approx(1.0)


def test_metric_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
    with pytest.raises(ValueError, match="too small for crop_border=4"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


class _Pairs(torch.utils.data.Dataset):
    """Fixed synthetic pairs: two images per task, lq = gt plus task-dependent noise."""

    def __init__(self):
        g = torch.Generator().manual_seed(5)
        self.items = []
        for t in TASKS:
            for k in range(2):
                gt = torch.rand(3, 24, 28, generator=g)
                lq = (gt + (0.02 + 0.01 * t.id) * torch.randn(3, 24, 28, generator=g)).clamp(0, 1)
                self.items.append({"lq": lq, "gt": gt, "task": t.id, "image": f"img{k}"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _halfway(lq, task=None):
    """A fixed 'model': moves the input half-way to a constant grey."""
    return 0.5 * lq + 0.25


def test_evaluation_table_values_match_independent_computation():
    data = _Pairs()
    res = evaluate(_halfway, data, name="half")
    per = res.per_task()
    for t in TASKS:
        rows = [it for it in data.items if it["task"] == t.id]
        exp_p = np.mean([float(psnr(_halfway(r["lq"][None]), r["gt"][None])) for r in rows])
        exp_i = np.mean([float(psnr(r["lq"][None], r["gt"][None])) for r in rows])
        assert per[t.name]["psnr"] == pytest.approx(exp_p, abs=1e-12)
        assert res.per_task(identity=True)[t.name]["psnr"] == pytest.approx(exp_i, abs=1e-12)
    avg = np.mean([per[t.name]["psnr"] for t in TASKS])
    assert res.average()["psnr"] == pytest.approx(avg)
    table = format_table([res], baseline="identity")
    ident_avg = res.average(identity=True)["psnr"]
    assert "| half | " in table and f"{avg:.2f} | {avg - ident_avg:+.2f} |" in table
    assert table.splitlines()[2].startswith("| identity |") and "baseline" in table.splitlines()[2]


def test_written_csv_and_json_hold_the_same_numbers(tmp_path):
    res = evaluate(_halfway, _Pairs(), name="half")
    paths = write_tables([res], tmp_path, baseline="identity", reference=[("srresnet", "M", "in")])
    rows = list(csv.reader(io.StringIO(paths["csv_psnr"].read_text())))
    assert rows[0][:3] == ["model", "S sr", "B blur"]
    half = next(r for r in rows if r[0] == "half")
    assert float(half[1]) == pytest.approx(res.per_task()["sr"]["psnr"], abs=0.005)
    paper = next(r for r in rows if r[0].startswith("paper srresnet-M"))
    assert paper[-2] == "29.52" and paper[1] == "25.52"
    data = json.loads(paths["json"].read_text())
    again = EvalResult.from_dict(data["results"][0])
    assert again.average() == pytest.approx(res.average())
    assert "SSIM" in paths["markdown"].read_text()


def test_paper_tables_are_consistent_with_their_averages():
    for split in ("in", "out"):
        for backbone, rows in paper_results()[split].items():
            for strategy, row in rows.items():
                mean = np.mean([row[t.name] for t in TASKS])
                assert mean == pytest.approx(row["average"], abs=0.015), (split, backbone, strategy)


def test_unknown_baseline_is_refused_with_the_rows():
    res = EvalResult("m", [{"task": "sr", "image": "a", "psnr": 20.0, "ssim": 0.5, "identity_psnr": 19.0, "identity_ssim": 0.4}])
    with pytest.raises(ValueError, match=r"baseline 'X' is not a row.*\['identity', 'm'\]"):
        format_table([res], baseline="X")


def test_clean_inputs_are_left_out_and_exact_restorations_are_capped():
    from mio_strategies.harness._eval import PSNR_CAP, EvalResult

    def rec(image, psnr, ident):
        return {"task": "lowlight", "image": image, "psnr": psnr, "ssim": 0.9, "identity_psnr": ident, "identity_ssim": 0.8}

    res = EvalResult("m", [rec("clean", 45.0, float("inf")), rec("a", float("inf"), 20.0), rec("b", 30.0, 22.0)])
    table = res.per_task()["lowlight"]
    assert table["psnr"] == (PSNR_CAP + 30.0) / 2 and table["n"] == 2 and table["n_clean_inputs"] == 1
    assert res.average(identity=True)["psnr"] == (20.0 + 22.0) / 2


@pytest.mark.parametrize("bad", [-1, True, 2.0])
def test_crop_border_must_be_a_non_negative_integer(bad):
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match=rf"crop_border must be a non-negative integer, got {bad!r}"):
        psnr(x, x, crop_border=bad)
