"""The demo tells its story: any subset of the five strategies, verdicts and paired differences on the terminal,
its own folder per mode, and nothing left behind by a failed run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mio_strategies.harness import build_restorer, load_config, run_demo, save_checkpoint
from mio_strategies.harness._demo import CLAIMS, _chi_text, paired_difference

FIVE = ("M", "S", "M+EP", "S+EP", "S+AP")
pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(folder: Path, strategies=FIVE) -> Path:
    """Untrained tiny U-Net weights of each strategy, exported under the demo's file names (no training)."""
    from mio_strategies.checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(strategies):
        cfg = load_config(
            "cpu_demo",
            [
                "backbone=unet_tiny",
                "backbone_kwargs.num_feat=4",
                "backbone_kwargs.num_block=1",
                "backbone_kwargs.levels=2",
                "prompt_size=16",
                f"strategy={s}",
                f"seed={i}",
                "name=tiny",
            ],
        )
        r = build_restorer(
            cfg.backbone,
            cfg.strategy_prompt,
            backbone_kwargs=cfg.backbone_kwargs,
            seed=cfg.seed,
            prompt_size=cfg.prompt_size,
        )
        save_checkpoint(
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "backbone": cfg.backbone,
                "strategy": cfg.strategy,
                "config": cfg.to_dict(),
                "iteration": 0,
                "finished": True,
                "model": r.state_dict(),
                "ema": None,
                "weights": "live",
            },
            folder / f"{s.replace('+', '_')}.pt",
        )
    return folder


def test_every_strategy_whose_weights_are_there_is_compared_to_m_on_the_terminal(tmp_path, capsys):
    from mio_strategies.cli import main

    folder = _weights(tmp_path / "weights")
    out = tmp_path / "demo"
    assert main(["demo", "--pretrained", str(folder), "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for s in FIVE:
        assert f"| {s} |" in printed and f"- {s}: average " in printed  # table row and verdict against the input
    assert "Paired differences to M, PSNR in dB over the same 42 test images" in printed
    for s in FIVE[1:]:
        assert f"- {s} - M: " in printed
    for s, ref, claim in CLAIMS:  # with all five, every claim is read
        assert f"- {claim} ({s} > {ref}): " in printed
    assert "Not read here" not in printed and "written: " in printed
    report = (out / "report.md").read_text()
    assert "Paired differences to M" in report and "sequential learning beats mixed training (S > M)" in report


def test_paired_differences_are_image_by_image():
    from mio_strategies.harness import EvalResult

    def result(name, values):
        return EvalResult(
            name,
            [
                {"task": t, "image": i, "psnr": v, "ssim": 0.5, "identity_psnr": 20.0, "identity_ssim": 0.5}
                for (t, i), v in values.items()
            ],
        )

    m = result("M", {("sr", "a"): 20.0, ("sr", "b"): 22.0, ("noise", "a"): 25.0, ("noise", "b"): 27.0})
    s = result("S", {("sr", "a"): 21.0, ("sr", "b"): 23.0, ("noise", "a"): 24.0, ("noise", "b"): 28.0})
    d = paired_difference(s, m)
    assert d["mean"] == pytest.approx(0.5) and d["n"] == 4
    assert d["per_task"] == {"sr": pytest.approx(1.0), "noise": pytest.approx(0.0)} and d["ahead"] == 1
    sd = torch.tensor([1.0, 1.0, -1.0, 1.0]).std().item()
    assert d["ci95"] == pytest.approx(1.96 * sd / 2)
    with pytest.raises(ValueError, match=r"'S' and 'X' were not scored on the same images"):
        paired_difference(s, result("X", {("sr", "a"): 20.0}))


def test_missing_weights_drop_in_without_a_code_change(tmp_path):
    folder = _weights(tmp_path / "weights", ["M+EP", "S+EP"])  # what the package ships today
    out = tmp_path / "demo"
    res = run_demo(out, pretrained=folder, progress=False)
    assert list(res["results"]) == ["M+EP", "S+EP"] and list(res["paired"]) == ["S+EP"]
    assert "Paired differences to M+EP (M is not among the strategies here)" in res["summary"]
    assert "- sequential learning adds to explicit prompts (S+EP > M+EP): " in res["summary"]
    assert (
        "Not read here (a strategy's weights are missing): S > M, M+EP > M, S+EP > M, S+AP > M, S+AP > S."
        in res["summary"]
    )
    _weights(tmp_path / "more", ["M", "S+AP"])
    for f in (tmp_path / "more").iterdir():
        shutil.copy(f, folder / f.name)
    res = run_demo(out, pretrained=folder, progress=False, overwrite=True)
    assert list(res["results"]) == ["M", "M+EP", "S+EP", "S+AP"] and list(res["paired"]) == ["M+EP", "S+EP", "S+AP"]
    assert "Paired differences to M, " in res["summary"] and "Not read here" in res["summary"]  # S still missing


def test_each_mode_has_its_own_folder_and_a_failed_run_leaves_nothing(tmp_path, monkeypatch):
    from mio_strategies.harness import _demo

    monkeypatch.chdir(tmp_path)
    folder = _weights(tmp_path / "weights", ["M", "S+EP"])
    calls = []

    def fake_run(out, final, *args, **kwargs):
        calls.append(final)
        (out / "testset").mkdir()
        (out / "testset" / "x.png").write_bytes(b"partial")
        if len(calls) == 1:
            raise KeyboardInterrupt  # a run stopped half-way
        (out / "report.md").write_text(f"run {len(calls)}")
        return {"paths": {}}

    monkeypatch.setattr(_demo, "_run", fake_run)
    with pytest.raises(KeyboardInterrupt):
        run_demo(progress=False)
    assert calls == [Path("mio-demo")] and sorted(p.name for p in tmp_path.iterdir()) == ["weights"]  # no testset/
    run_demo(progress=False)  # the retry is not blocked
    run_demo(pretrained=folder, progress=False)  # nor blocked by the training demo's folder
    assert calls[1:] == [Path("mio-demo"), Path("mio-demo-pretrained")]
    assert (tmp_path / "mio-demo" / "report.md").read_text() == "run 2"
    assert (tmp_path / "mio-demo-pretrained" / "report.md").read_text() == "run 3"
    with pytest.raises(FileExistsError, match=r"'mio-demo' already exists and is not empty: pass overwrite=True"):
        run_demo(progress=False)
    # an overwrite replaces the old demo only once the new one is complete
    monkeypatch.setattr(_demo, "_run", lambda out, *a, **k: (_ for _ in ()).throw(RuntimeError("stopped")))
    with pytest.raises(RuntimeError):
        run_demo(progress=False, overwrite=True)
    assert (tmp_path / "mio-demo" / "report.md").read_text() == "run 2"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_report_rounds_the_chi_as_the_figure_does():
    pytest.importorskip("matplotlib")
    from mio_strategies.analysis import DDRResult, plot_ddr_comparison

    labels = torch.arange(7).repeat_interleave(6)
    for spread in (0.1, 8.0):  # one CHI below 10, one above
        res = DDRResult.from_features(
            torch.randn(42, 8, generator=torch.Generator().manual_seed(0)) + spread * torch.eye(7, 8)[labels],
            labels,
            method="pca",
            seed=0,
        )
        fig = plot_ddr_comparison({"S+EP": res})
        assert fig.axes[0].get_title() == f"S+EP\nCHI: {_chi_text(res.chi)}"
