"""Figures: written PNGs decode to non-empty images; titles carry the CHI; tables are validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mio_strategies.analysis import (
    TASK_COLORS,
    DDRResult,
    plot_ddr,
    plot_ddr_comparison,
    plot_psnr_bars,
    save_figure,
    task_color,
)
from mio_strategies.tasks import TASKS


def result(spread: float, seed: int = 0) -> DDRResult:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(7).repeat_interleave(6)
    feats = torch.randn(42, 8, generator=g) + spread * torch.eye(7, 8)[labels]
    return DDRResult.from_features(feats, labels, method="pca", seed=0)


def assert_png_not_blank(path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG"
        arr = np.asarray(img.convert("RGB"))
    assert arr.shape[0] > 100 and arr.shape[1] > 100
    assert arr.std() > 5  # something was drawn on the white canvas


def test_ddr_plot_writes_a_png_with_chi_in_the_title(tmp_path):
    res = result(5.0)
    fig = plot_ddr(res, title="SRResNet-S+AP", path=tmp_path / "ddr.png")
    assert_png_not_blank(tmp_path / "ddr.png")
    ax = fig.axes[0]
    assert res.chi > 10  # shown as an integer, as the paper prints it
    assert ax.get_title() == f"SRResNet-S+AP\nCHI: {res.chi:.0f}"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"{t.letter}: {t.title}" for t in TASKS]  # canonical order S, B, N, J, R, H, L


def test_ddr_plot_colours_points_by_task():
    res = result(5.0)
    fig = plot_ddr(res)
    colours = [tuple(np.round(c.get_facecolor()[0][:3], 3)) for c in fig.axes[0].collections]
    from matplotlib.colors import to_rgb

    assert colours == [tuple(np.round(to_rgb(c), 3)) for c in TASK_COLORS]
    assert task_color("L") == TASK_COLORS[6]


def test_ddr_plot_of_a_bare_embedding_needs_task_labels(tmp_path):
    emb = np.array([[0.0, 0.0], [0.1, 0.2], [3.0, 3.0], [3.1, 2.9]])
    fig = plot_ddr(emb, ["noise", "noise", "rain", "rain"], chi=832.4, title="S+AP", path=tmp_path / "e.png")
    assert_png_not_blank(tmp_path / "e.png")
    assert fig.axes[0].get_title() == "S+AP\nCHI: 832"  # as the paper prints it
    assert plot_ddr(emb, [2, 2, 4, 4]).axes[0].get_title() == ""
    assert plot_ddr(emb, [2, 2, 4, 4], chi=3.14159).axes[0].get_title() == "CHI: 3.14"
    with pytest.raises(ValueError, match="needs labels="):
        plot_ddr(emb)
    with pytest.raises(ValueError, match=r"plot labels must be task ids 0..6, names or letters: unknown task id 8"):
        plot_ddr(emb, [0, 0, 8, 8])
    with pytest.raises(ValueError, match=r"Expected a 2D embedding of shape \(N, 2\), got shape \(4, 3\)"):
        plot_ddr(np.zeros((4, 3)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="do not pass labels= with a result"):
        plot_ddr(result(1.0), [0] * 42)


def test_side_by_side_comparison_has_one_panel_per_model(tmp_path):
    mixed, sequential = result(1.0), result(6.0, seed=1)
    fig = plot_ddr_comparison({"mixed": mixed, "sequential": sequential}, path=tmp_path / "cmp.png")
    assert_png_not_blank(tmp_path / "cmp.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("mixed\nCHI: ") and titles[1].startswith("sequential\nCHI: ")
    assert sequential.chi > mixed.chi
    # the axes name the projection, the figure names the method and the layer
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes] == [("PCA 1", "PCA 2")] * 2
    assert fig._suptitle.get_text() == f"DDR (PCA) of {mixed.module}"
    with pytest.raises(ValueError, match=r"entries \['b'\] are not DDRResult"):
        plot_ddr_comparison({"a": mixed, "b": 3})
    with pytest.raises(ValueError, match="non-empty mapping"):
        plot_ddr_comparison({})


PAPER_TABLE = {
    # SRResNet In-Dis PSNR (dB) from the paper, section 4
    "SRResNet-M": {"sr": 25.52, "blur": 30.01, "noise": 30.49, "jpeg": 32.46, "rain": 32.38, "haze": 25.57, "lowlight": 30.20},
    "SRResNet-S": {"S": 25.72, "B": 30.49, "N": 30.67, "J": 32.73, "R": 32.81, "H": 25.78, "L": 30.45},
}


def test_psnr_bars_write_a_png_with_tasks_in_canonical_order(tmp_path):
    baseline = {t.name: 20.0 + t.id for t in TASKS}
    shuffled = {name: dict(reversed(list(row.items()))) for name, row in PAPER_TABLE.items()}
    fig = plot_psnr_bars(shuffled, baseline=baseline, title="In-Dis", path=tmp_path / "psnr.png")
    # the paper's In-Dis averages (29.52, 29.81) are the means of these rows
    assert np.mean(list(PAPER_TABLE["SRResNet-S"].values())) == pytest.approx(29.81, abs=0.005)
    assert_png_not_blank(tmp_path / "psnr.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["S", "B", "N", "J", "R", "H", "L", "Avg."]
    heights = [round(p.get_height(), 4) for p in ax.containers[1]]  # containers: identity, M, S
    expected = [PAPER_TABLE["SRResNet-M"][t.name] for t in TASKS]
    assert heights == [round(v, 4) for v in [*expected, float(np.mean(expected))]]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["identity (input)", "SRResNet-M", "SRResNet-S"]


def test_psnr_table_errors_name_the_problem():
    with pytest.raises(ValueError, match="non-empty mapping"):
        plot_psnr_bars({})
    with pytest.raises(ValueError, match=r"PSNR row 'b' lacks tasks \['blur'\]"):
        plot_psnr_bars({"a": {"sr": 25.0, "blur": 28.0}, "b": {"sr": 24.0}})
    with pytest.raises(KeyError, match="unknown task 'snow'"):
        plot_psnr_bars({"a": {"snow": 25.0}})
    with pytest.raises(ValueError, match=r"PSNR of 'a' / 'sr' must be a finite number, got nan"):
        plot_psnr_bars({"a": {"sr": float("nan")}})
    with pytest.raises(TypeError, match=r"PSNR of 'a' / 'sr' must be a number, got str"):
        plot_psnr_bars({"a": {"sr": "25"}})
    with pytest.raises(ValueError, match="gives task 'sr' twice"):
        plot_psnr_bars({"a": {"sr": 25.0, "S": 26.0}})
    with pytest.raises(ValueError, match=r"the baseline lacks tasks \['blur'\]"):
        plot_psnr_bars({"a": {"sr": 25.0, "blur": 28.0}}, baseline={"sr": 20.0})


def test_save_figure_insists_on_png(tmp_path):
    fig = plot_psnr_bars({"a": {"sr": 25.0}})
    with pytest.raises(ValueError, match="path ending in .png, got"):
        save_figure(fig, tmp_path / "x.jpg")
    out = save_figure(fig, tmp_path / "sub" / "x.png")
    assert_png_not_blank(out)
