"""The command line says what it does: help and defaults, headings, and every file it writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mio_strategies.cli import main

DATA = Path(__file__).resolve().parents[1] / "fixtures"


def test_train_classifier_help_gives_each_option_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["train-classifier", "--help"])
    text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
    for option, default in (
        ("--steps", "2000"),
        ("--batch-size", "16"),
        ("--lr", "0.001"),
        ("--seed", "0"),
        ("--crop", "128"),
        ("--width", "128"),
    ):
        after = text.split(f"{option} ", 1)[1].split(" --", 1)[0]
        assert f"(default: {default}" in after, option


def test_list_presets_has_a_heading_for_each_list(capsys):
    assert main(["train", "--list-presets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("presets:\n") and "\nbackbones:\n" in out


@pytest.mark.basicsr
@pytest.mark.usefixtures("one_thread")
def test_eval_names_the_bar_plot_it_wrote_and_plots_the_published_row(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import mio_strategies.harness._cli as cli

    spec = importlib.util.spec_from_file_location("make_fixed_eval", DATA / "make_fixed_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    testset = module.fixed_testset(tmp_path / "testset")
    plotted = {}
    real = cli.plot_psnr_bars
    monkeypatch.setattr(cli, "plot_psnr_bars", lambda bars, **kw: plotted.update(bars) or real(bars, **kw))
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(DATA / "fixed_M_checkpoint.pt"),
                "--testset",
                str(testset),
                "--output",
                str(out),
                "--reference",
                "srresnet:M",
            ]
        )
        == 0
    )
    written = capsys.readouterr().out.split("written: ")[1]
    assert str(out / "psnr_bars.png") in written and (out / "psnr_bars.png").stat().st_size > 0
    assert set(plotted) == {"srresnet_tiny M", "paper srresnet-M (in-dis)"}
    assert plotted["paper srresnet-M (in-dis)"]["sr"] == 25.52  # the paper's SRResNet-M In-Dis row
