"""benchmarks/mini_mio.py: the paired table, the verdicts, caching/re-scoring, and a tiny end-to-end run."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mio_strategies.harness import sweep
from mio_strategies.metrics.statistics import margin_standard_errors
from mio_strategies.tasks import TASKS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mini_mio.py"
NAMES = [t.name for t in TASKS]
STRATS = ("M", "S", "M+EP", "S+EP", "S+AP")


def _script(name: str):
    """A benchmarks/ script as an importable module (on sys.path, so that --jobs worker processes import it too)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPT.parent))
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def mini():
    yield from _script("mini_mio")


def _write_results(out: Path, offsets: dict[str, float], below: tuple[str, str] | None = None, crops: int = 8) -> None:
    """Cached result.json files: M scores 25 + seed/10 on every task, other strategies M + offset
    (+ seed/100), identity 20; ``below=(strategy, task)`` puts one cell under the identity. ``crops``: the
    test crops per photo and task they record (8: the converged tier's default)."""
    for seed in (0, 1, 2):
        for s in STRATS:
            base = 25.0 + seed / 10 + (offsets.get(s, 0.0) + seed / 100 if s != "M" else 0.0)
            per = dict.fromkeys(NAMES, base)
            if below and below[0] == s:
                per[below[1]] = 19.0
            run = out / f"{s.replace('+', '_')}-seed{seed}"
            run.mkdir(parents=True)
            (run / "result.json").write_text(json.dumps({
                "strategy": s, "seed": seed, "per_task": per, "identity": dict.fromkeys(NAMES, 20.0),
                "average": statistics.mean(per.values()), "seconds": 1.0, "iters_per_second": 10.0,
                "testset_crops": crops,
            }))


def test_paired_differences_and_verdicts_where_every_model_beats_the_identity(mini, tmp_path, capsys):
    _write_results(tmp_path, {"S": 0.3, "M+EP": 0.8, "S+EP": -0.5, "S+AP": 0.004})
    assert mini.main(["--tier", "converged", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # S - M per seed: 0.30, 0.31, 0.32 -> mean +0.31, sd 0.01
    assert "| S - M (paired) | " + " | ".join(["+0.31 +/- 0.01"] * 8) + " |" in out
    assert "| identity | " + " | ".join(["20.00"] * 7) + " | 20.00 |" in out
    assert "| M (mean of 3) | " + " | ".join(["25.10"] * 7) + " | 25.10 |" in out
    assert "sequential learning beats mixed training (paper +0.29 dB): supported (paired S - M = +0.31 +/- 0.01 dB, ahead in 3/3" in out
    assert "explicit prompts beat mixed training (paper +0.74 dB SRResNet): supported" in out
    assert "sequential + explicit prompts beat mixed training (paper +0.84 dB): not supported (paired S+EP - M = -0.49" in out
    # S+AP - M per seed: 0.004, 0.014, 0.024 -> ahead in every seed, but the mean (0.014) is not above twice
    # the spread (2 x 0.01): judged as noise, not as support
    assert ("sequential + adaptive prompts beat mixed training (paper +0.24 dB): within noise (paired S+AP - M = "
            "+0.01 +/- 0.01 dB, ahead in 3/3 seeds)") in out
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("tier converged: 16 periods x 1500 it; strategies M, S, M+EP, S+EP, S+AP x seeds 0, 1, 2; "
                              "test crops 96 px, 8 per photo and task\n\n| row | sr | blur |")


def test_s_vs_m_is_not_judged_while_a_model_is_below_the_identity(mini, tmp_path, capsys):
    _write_results(tmp_path, {"S": 0.3}, below=("M", "jpeg"))
    assert mini.main(["--tier", "converged", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "S vs M and AP vs M: not judged (not every model beats the identity on every task" in out
    assert "M is at or below the identity on: jpeg (-1.00 dB)\n" in out  # these results recorded no standard error
    assert "sequential learning beats mixed training" not in out


@pytest.mark.parametrize("se, word", [(0.6, "within noise"), (0.4, "beyond noise")])
def test_a_task_below_the_identity_is_reported_with_the_test_sets_noise(mini, tmp_path, capsys, se, word):
    _write_results(tmp_path, {"S": 0.3}, below=("M", "jpeg"))
    for seed in (0, 1, 2):
        path = tmp_path / f"M-seed{seed}" / "result.json"
        data = json.loads(path.read_text())
        path.write_text(json.dumps({**data, "margin_se": {"jpeg": se}}))
    assert mini.main(["--tier", "converged", "--output", str(tmp_path)]) == 0
    # the seeds share the test crops, so the crops' standard error stays se (it does not shrink over seeds)
    expect = f"M is at or below the identity on: jpeg (-1.00 dB, {word}: test-image standard error {se:.2f} dB)"
    out = capsys.readouterr().out
    assert expect in out
    assert "S vs M and AP vs M: not judged (not every model beats the identity on every task" in out
    # a shortfall within noise: the claims are read as well, labelled as not the tier's verdict; beyond noise: not
    # (M's jpeg at 19 dB: paired S - M is +1.18 on average over the tasks)
    read = ("  Every such shortfall is within the test set's noise; read anyway (not the tier's verdict):\n"
            "  - sequential learning beats mixed training (paper +0.29 dB): supported (paired S - M = +1.18 +/- 0.02 dB, "
            "ahead in 3/3 seeds)\n  - sequential + adaptive prompts beat mixed training (paper +0.24 dB): supported")
    assert (read in out) == (word == "within noise")
    assert ("sequential learning beats mixed training" in out) == (word == "within noise")


def test_more_test_crops_extend_the_one_crop_test_set():
    one, eight = sweep.fixed_testset(TASKS, 24), sweep.fixed_testset(TASKS, 24, 8)
    assert len(one) == 6 * 7 and len(eight) == 8 * len(one)
    import torch

    assert all(torch.equal(one[i]["lq"], eight[i]["lq"]) and torch.equal(one[i]["gt"], eight[i]["gt"])
               for i in range(len(one)))
    assert not torch.equal(eight[0]["gt"], eight[len(one)]["gt"])  # the same photo and task, another crop


def test_margin_se_is_the_standard_error_over_test_images():
    recs = [{"task": "jpeg", "psnr": 30.0 + d, "identity_psnr": 30.0} for d in (-1.0, 0.0, 1.0)]
    recs += [{"task": "sr", "psnr": 25.0, "identity_psnr": float("inf")}, {"task": "sr", "psnr": 26.0, "identity_psnr": 25.0}]
    assert margin_standard_errors(recs) == {"jpeg": pytest.approx(1 / 3 ** 0.5)}  # sd 1 over 3 images; sr has one usable pair


def test_quick_tier_never_judges_s_vs_m(mini, tmp_path, capsys):
    _write_results(tmp_path, {"S": 0.3}, crops=1)
    assert mini.main(["--tier", "quick", "--output", str(tmp_path)]) == 0
    assert "S vs M and AP vs M: not judged (quick tier" in capsys.readouterr().out


def _tier_config(strategy: str, seed: int, *overrides: str) -> dict:
    """The configuration mini_mio trains for (strategy, seed) on the converged tier, as a plain dict."""
    from mio_strategies.harness import load_config

    base = load_config("mini_converged", list(overrides))
    cfg = base.replace(strategy=strategy, seed=seed, name=f"mini-{strategy}-{seed}", val_every=base.period_iters)
    return cfg.to_dict()


def _edit_result(run: Path, **changes) -> None:
    data = json.loads((run / "result.json").read_text())
    (run / "result.json").write_text(json.dumps({**data, **changes}))


def test_a_cached_result_of_another_configuration_is_refused(mini, tmp_path, capsys):
    _write_results(tmp_path, {"S": 0.3})
    run = tmp_path / "S-seed1"
    _edit_result(run, config=_tier_config("S", 1, "period_iters=999", "lr=1e-3"), testset_size=24)
    with pytest.raises(SystemExit):
        mini.main(["--tier", "converged", "--output", str(tmp_path), "--testset-size", "24"])
    err = capsys.readouterr().err
    assert re.search(r"S-seed1' holds a finished S seed 1 run of another configuration \(recorded in its result\.json\)"
                     r", which would be reported as this configuration's result: period_iters: 999 in that run, 1500 "
                     r"requested; lr: 0\.001 in that run, 0\.0005 requested\. Use another --output", err), err
    assert not (tmp_path / "summary.md").exists()  # refused before anything was written
    # the same through _run_one (what each --jobs worker calls): refused before the test set is even used
    from mio_strategies.harness import load_config

    cfg = load_config(_tier_config("S", 1))
    with pytest.raises(ValueError, match=r"period_iters: 999 in that run, 1500 requested.*Use another --output"):
        sweep.run_one(cfg, run, None, False, testset_size=24)
    # a result scored on other test crops is refused too (its learning curve cannot be rescored)
    _edit_result(run, config=_tier_config("S", 1))
    with pytest.raises(ValueError, match=r"scored on 24-px test crops, --testset-size 96 requested: pass "
                                         r"--testset-size 24 to reuse it, or use another --output"):
        sweep.run_one(cfg, run, None, False, testset_size=96)
    assert mini.main(["--tier", "converged", "--output", str(tmp_path), "--testset-size", "24"]) == 0


def test_an_old_result_without_its_config_is_checked_against_config_yaml(mini, tmp_path, capsys):
    """result.json files written before the config was recorded in them (a tier started with older code)."""
    import yaml

    _write_results(tmp_path, {"S": 0.3})
    for s in STRATS:  # what training wrote at the start of each run: the same command's config is accepted
        for seed in (0, 1, 2):
            run = tmp_path / f"{s.replace('+', '_')}-seed{seed}"
            (run / "config.yaml").write_text(yaml.safe_dump(_tier_config(s, seed), sort_keys=False))
    (tmp_path / "M-seed2" / "config.yaml").unlink()  # neither recorded: accepted (nothing to compare)
    assert mini.main(["--tier", "converged", "--output", str(tmp_path)]) == 0
    assert "| S - M (paired) |" in capsys.readouterr().out
    # the documented probe rerun (1,000-iteration periods) into the tier's folder
    (tmp_path / "M_EP-seed0" / "config.yaml").write_text(yaml.safe_dump(_tier_config("M+EP", 0, "period_iters=1000")))
    with pytest.raises(SystemExit):
        mini.main(["--tier", "converged", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert re.search(r"M_EP-seed0' holds a finished M\+EP seed 0 run of another configuration \(recorded in its "
                     r"config\.yaml\).*: period_iters: 1000 in that run, 1500 requested\. Use another --output",
                     err), err


def test_m_is_required(mini, tmp_path):
    with pytest.raises(SystemExit):
        mini.main(["--strategies", "S", "S+EP", "--output", str(tmp_path)])


@pytest.mark.basicsr
@pytest.mark.usefixtures("one_thread")
def test_tiny_end_to_end_run_is_cached_and_rescored(mini, tmp_path, capsys, monkeypatch):
    args = ["--tier", "quick", "--seeds", "0", "--testset-size", "24", "--output", str(tmp_path / "b"),
            "--set", "backbone_kwargs.num_feat=4", "--set", "backbone_kwargs.num_block=1", "--set", "periods=7",
            "--set", "period_iters=1", "--set", "batch_size=2", "--set", "patch_size=16", "--set", "prompt_size=16",
            "--set", "log_every=0"]
    assert mini.main(args) == 0
    first = capsys.readouterr().out
    assert "[5/5]" in first and "| S+AP - M (paired) |" in first
    saved = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "b").glob("*/result.json")}
    assert sorted(saved) == ["M-seed0", "M_EP-seed0", "S-seed0", "S_AP-seed0", "S_EP-seed0"]
    assert all(r["testset_size"] == 24 and r["config"]["period_iters"] == 1 for r in saved.values())
    ckpts = sorted((tmp_path / "b").glob("*/checkpoint.pt"))
    stamps = [c.stat().st_mtime_ns for c in ckpts]

    def refuse(*_, **__):
        raise AssertionError("a cached run was trained or evaluated again")

    with pytest.MonkeyPatch.context() as mp:  # cached: nothing retrained or re-scored, same table
        mp.setattr("mio_strategies.harness.sweep.train", refuse)
        mp.setattr("mio_strategies.harness.sweep.evaluate", refuse)
        assert mini.main(args) == 0
    assert len(ckpts) == 5 and [c.stat().st_mtime_ns for c in ckpts] == stamps

    def table(text: str) -> str:
        return text.split("PSNR (dB")[1].split("summary written")[0]

    assert table(capsys.readouterr().out) == table(first)

    # another budget, tier or test-set size into the same folder is refused, not reported with the old numbers
    summary = (tmp_path / "b" / "summary.md").read_text()
    with pytest.raises(SystemExit):
        mini.main(args + ["--set", "period_iters=2"])
    err = capsys.readouterr().err
    assert re.search(r"M-seed0' holds a finished M seed 0 run of another configuration \(recorded in its result\.json\)"
                     r".*: period_iters: 1 in that run, 2 requested\. Use another --output", err), err
    with pytest.raises(SystemExit):
        mini.main(["--tier", "converged", "--seeds", "0", "--testset-size", "24", "--output", str(tmp_path / "b")])
    assert re.search(r"backbone: 'srresnet_tiny' in that run, 'unet_tiny' requested.*Use another --output",
                     capsys.readouterr().err)
    with pytest.raises(SystemExit):
        mini.main([*args, "--testset-size", "32"])
    assert "scored on 24-px test crops, --testset-size 32 requested: pass --testset-size 24" in capsys.readouterr().err
    assert [c.stat().st_mtime_ns for c in ckpts] == stamps and (tmp_path / "b" / "summary.md").read_text() == summary
    # an unfinished run (checkpoint, no result.json) of another configuration: refused before anything trains
    unfinished = tmp_path / "unfinished" / "M-seed0"
    unfinished.mkdir(parents=True)
    for f in ("checkpoint.pt", "config.yaml"):
        (unfinished / f).write_bytes((tmp_path / "b" / "M-seed0" / f).read_bytes())
    with pytest.raises(SystemExit):
        mini.main([*args, "--strategies", "M", "--output", str(unfinished.parent), "--set", "period_iters=2"])
    assert re.search(r"M-seed0' holds an unfinished run of another configuration \(.*period_iters: 1 in the "
                     r"checkpoint, 2 requested.*\): use another --output", capsys.readouterr().err)
    from mio_strategies.harness import load_config

    cfg = load_config("mini_quick", [args[i + 1] for i, a in enumerate(args) if a == "--set"])
    with pytest.raises(ValueError, match=r"unfinished run of another configuration \(.*period_iters.*another --output"):
        sweep.run_one(cfg.replace(strategy="M", seed=0, period_iters=2), unfinished, None, False, testset_size=24)
    assert sorted(p.name for p in unfinished.iterdir()) == ["checkpoint.pt", "config.yaml"]
    assert mini.main(args + ["--reevaluate"]) == 0  # scored again from the checkpoints: same numbers
    again = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "b").glob("*/result.json")}
    assert {k: v["per_task"] for k, v in again.items()} == {k: v["per_task"] for k, v in saved.items()}
    # more test crops: refused on reuse, rescored from the checkpoints with --reevaluate (the first crop of
    # each photo and task is the same, so the scores move only by what the added crops hold)
    with pytest.raises(SystemExit):
        mini.main([*args, "--testset-crops", "2"])
    assert re.search(r"scored on 1 test crop\(s\) per photo and task, --testset-crops 2 requested: pass --testset-crops 1 "
                     r"to reuse it, --reevaluate to score its checkpoint on the new crops", capsys.readouterr().err)
    shutil.copytree(tmp_path / "b", tmp_path / "b2")
    assert mini.main([*args, "--output", str(tmp_path / "b2"), "--testset-crops", "2", "--reevaluate"]) == 0
    two = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "b2").glob("*/result.json")}
    assert all(r["testset_crops"] == 2 and r["curve_crops"] == 1 for r in two.values())
    assert two["M-seed0"]["per_task"] != saved["M-seed0"]["per_task"]
    assert mini.main([*args, "--output", str(tmp_path / "b2"), "--testset-crops", "2"]) == 0  # reused now

    # the same runs in two worker processes give the same numbers (paired seeds do not depend on the process);
    # a run is handed to the pool only when a worker is free (no queued run is shown as running)
    pool_of = sweep.worker_pool
    submitted, most = [], []

    class CountingPool:
        def __init__(self, jobs):
            self.pool = pool_of(jobs)

        def __enter__(self):
            self.pool.__enter__()
            return self

        def __exit__(self, *exc):
            return self.pool.__exit__(*exc)

        def submit(self, *a):
            submitted.append(self.pool.submit(*a))
            most.append(sum(not f.done() for f in submitted))  # a finished run's future is done before wait() returns
            return submitted[-1]

    monkeypatch.setattr(sweep, "worker_pool", CountingPool)
    assert mini.main([*args, "--output", str(tmp_path / "jobs"), "--jobs", "2", "--status-every", "0.05"]) == 0
    assert len(most) == 5 and max(most) <= 2
    text = capsys.readouterr().out
    assert "[5/5]" in text
    # while the workers train, the parent says where each running run is
    assert re.search(r"^\[\d+ s\] .*(M|S|M\+EP|S\+EP|S\+AP) seed 0: (starting|\d+/7 it, loss)", text, re.M), text
    par = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "jobs").glob("*/result.json")}
    assert sorted(par) == sorted(saved)
    for k in saved:
        assert par[k]["per_task"] == pytest.approx(saved[k]["per_task"], abs=1e-6), k

    # --curve scores the test set after every period; it must not change what is trained
    assert mini.main([*args, "--output", str(tmp_path / "curve"), "--strategies", "M", "S+EP", "--curve"]) == 0
    text = capsys.readouterr().out
    assert "Learning curve: the worst task's margin over the identity" in text
    assert "  M: 1: " in text and "  S+EP: 1: " in text and ", 7: " in text
    curved = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "curve").glob("*/result.json")}
    assert [c["iteration"] for c in curved["M-seed0"]["curve"]] == [1, 2, 3, 4, 5, 6, 7]
    for k in curved:
        assert curved[k]["per_task"] == pytest.approx(saved[k]["per_task"], abs=1e-6), k
        assert curved[k]["curve"][-1]["per_task"] == pytest.approx(curved[k]["per_task"], abs=1e-6)  # last point = final score
    assert saved["M-seed0"]["curve"] == []  # the quick tier keeps no curve by default


@pytest.mark.basicsr
@pytest.mark.usefixtures("one_thread")
def test_extend_continues_finished_runs_into_more_periods(mini, tmp_path, capsys):
    out = tmp_path / "b"
    args = ["--tier", "quick", "--seeds", "0", "--strategies", "M", "S+EP", "--testset-size", "24", "--output",
            str(out), "--set", "backbone_kwargs.num_feat=4", "--set", "backbone_kwargs.num_block=1",
            "--set", "period_iters=1", "--set", "batch_size=2", "--set", "patch_size=16", "--set", "prompt_size=16",
            "--set", "log_every=0", "--curve"]
    assert mini.main([*args, "--set", "periods=7"]) == 0
    short = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/result.json")}
    capsys.readouterr()
    # more periods without --extend: refused, with the way to continue them
    with pytest.raises(SystemExit):
        mini.main([*args, "--set", "periods=9"])
    assert re.search(r"periods: 7 in that run, 9 requested\. Use another --output for this configuration \(or --extend "
                     r"to continue the finished runs into the longer schedule\)", capsys.readouterr().err)
    with pytest.raises(SystemExit):
        mini.main([*args, "--set", "periods=9", "--extend", "--reevaluate"])
    assert "--extend trains: it cannot go with --reevaluate" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "M-seed0").iterdir()) == [".mio-strategies", "checkpoint.pt", "config.yaml",
                                                                    "log.jsonl", "result.json"]

    assert mini.main([*args, "--set", "periods=9", "--extend"]) == 0
    for name, old in short.items():
        new = json.loads((out / name / "result.json").read_text())
        kept = json.loads((out / name / "result-7periods.json").read_text())
        assert kept["per_task"] == old["per_task"] and kept["extended_to"] == 9
        assert new["config"]["periods"] == 9 and new["seconds"] > old["seconds"]
        # the curve goes on from the shorter run's: its first seven points are the shorter run's
        assert [c["iteration"] for c in new["curve"]] == list(range(1, 10))
        assert new["curve"][:7] == old["curve"]
    assert "| S+EP - M (paired) |" in capsys.readouterr().out
    # the curve was scored on one crop per photo and task: extending it on two is refused, while the final
    # score may move to more crops (an extension is scored again); the curve's margins are then taken to
    # the identity of the curve's own crops
    with pytest.raises(SystemExit):
        mini.main([*args, "--set", "periods=10", "--extend", "--curve-crops", "2"])
    assert re.search(r"learning curve was scored on 1 test crop\(s\) per photo and task, --curve-crops 2 requested: "
                     r"pass --curve-crops 1 to reuse or extend it", capsys.readouterr().err)
    ext = tmp_path / "ext"
    shutil.copytree(out, ext)
    assert mini.main([*args, "--output", str(ext), "--set", "periods=10", "--extend", "--testset-crops", "2"]) == 0
    text = capsys.readouterr().out
    got = {n: json.loads((ext / n / "result.json").read_text()) for n in short}
    assert all(r["testset_crops"] == 2 and r["curve_crops"] == 1 and len(r["curve"]) == 10 for r in got.values())
    one_crop_identity = short["M-seed0"]["identity"]
    last = {n: r["curve"][-1]["per_task"] for n, r in got.items()}
    worst = min(last["M-seed0"][t] - one_crop_identity[t] for t in one_crop_identity)
    ident2 = got["M-seed0"]["identity"]  # the two-crop set's identity: not what the curve is taken to
    assert abs(min(last["M-seed0"][t] - ident2[t] for t in ident2) - worst) > 0.005
    assert re.search(rf"  M: .*10: {re.escape(f'{worst:+.2f}')} \w+ ->", text), text
    assert "(learning curve: 1)" in (ext / "summary.md").read_text()
    # cached now: the same command trains nothing
    stamp = (out / "M-seed0" / "checkpoint.pt").stat().st_mtime_ns
    assert mini.main([*args, "--set", "periods=9", "--extend"]) == 0
    assert (out / "M-seed0" / "checkpoint.pt").stat().st_mtime_ns == stamp
    # an extension that fails (or is interrupted) leaves the finished run's result.json in place
    for f in ("checkpoint.pt", "config.yaml", "log.jsonl", "result.json"):
        shutil.copy(out / "M-seed0" / f, tmp_path / f)
    with pytest.MonkeyPatch.context() as mp:
        def boom(*a, **k):
            raise RuntimeError("interrupted")

        mp.setattr("mio_strategies.harness.sweep.train", boom)
        with pytest.raises(RuntimeError, match="interrupted"):
            mini.main([*args, "--strategies", "M", "--set", "periods=10", "--extend"])
    assert json.loads((out / "M-seed0" / "result.json").read_text())["config"]["periods"] == 9
    assert not (out / "M-seed0" / "result-9periods.json").exists()
    # a checkpoint that is not the finished run of its result.json is not rescored as that run
    train_args = [*args, "--strategies", "M", "--set", "periods=9"]
    from mio_strategies.harness import load_checkpoint, save_checkpoint

    state = load_checkpoint(out / "M-seed0" / "checkpoint.pt")
    save_checkpoint({**state, "finished": False, "iteration": 8}, out / "M-seed0" / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"its checkpoint is not the finished run its result\.json reports \(iteration 8 "
                                         r"of a 9-period run; an interrupted --extend\?\)"):
        mini.main([*train_args, "--reevaluate"])
    for f in ("checkpoint.pt", "config.yaml", "log.jsonl", "result.json"):
        shutil.copy(tmp_path / f, out / "M-seed0" / f)
    stamp = (out / "M-seed0" / "checkpoint.pt").stat().st_mtime_ns
    # a finished run without its checkpoint (adopted from elsewhere) cannot be extended: refused before training
    (out / "S_EP-seed0" / "checkpoint.pt").unlink()
    with pytest.raises(SystemExit):
        mini.main([*args, "--set", "periods=11", "--extend"])
    assert re.search(r"S_EP-seed0' holds a finished S\+EP seed 0 run of 9 periods without its checkpoint .*cannot be "
                     r"extended to 11: train it with the longer schedule where it was trained", capsys.readouterr().err)
    assert (out / "M-seed0" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert not (out / "M-seed0" / "result-9periods.json").exists()


def test_run_status_reads_the_last_training_record(tmp_path):
    assert sweep.run_status(("M", 0), tmp_path, 15000) == ""  # queued: its folder is not set up yet
    (tmp_path / "config.yaml").write_text("strategy: M\n")
    assert sweep.run_status(("M", 0), tmp_path, 15000) == "M seed 0: starting"
    recs = [{"kind": "train", "iteration": 250, "loss": 0.09, "period": 1, "tasks": "S"},
            {"kind": "val", "iteration": 1500, "psnr": {}, "average": 20.0},
            {"kind": "train", "iteration": 1750, "loss": 0.0712, "period": 2, "tasks": "SB"}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert sweep.run_status(("S", 1), tmp_path, 15000) == "S seed 1: 1750/15000 it, loss 0.0712, period 2 (SB)"
    (tmp_path / "result.json").write_text("{}")  # finished: a cached run handed to a worker is not training
    assert sweep.run_status(("S", 1), tmp_path, 15000) == ""


def test_peek_reports_each_runs_state_and_curve_without_training(mini, tmp_path, capsys):
    ident = {"sr": 20.0, "blur": 30.0}
    m = tmp_path / "M-seed0"
    m.mkdir()
    (m / "config.yaml").write_text("strategy: M\n")
    recs = [{"kind": "train", "iteration": 1250, "loss": 0.1, "period": 1, "tasks": "SB"},
            {"kind": "val", "iteration": 1500, "psnr": {"sr": 19.5, "blur": 30.25}, "average": 24.875},
            {"kind": "train", "iteration": 1750, "loss": 0.09, "period": 2, "tasks": "SB"}]
    (m / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "S-seed0").mkdir()
    (tmp_path / "S-seed0" / "result.json").write_text("{}")
    lines = sweep.peek(tmp_path, [("M", 0), ("S", 0), ("M+EP", 0)], ident, 3000)
    assert lines[0] == "Runs: M seed 0: 1750/3000 it; S seed 0: finished; M+EP seed 0: not started"
    assert "| identity | - | 20.00 | 30.00 | 25.00 |" in lines
    assert lines[-1] == "| M seed 0 | 1500 | -0.50 | +0.25 | 24.88 |"

    # from the command line: the identity is scored on the test set, nothing is trained or written
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert mini.main(["--tier", "converged", "--seeds", "0", "--testset-size", "24", "--output", str(tmp_path), "--peek"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Runs: M seed 0: 1750/24000 it; S seed 0: finished; M+EP seed 0: not started")
    assert re.search(r"^\| M seed 0 \| 1500 \| -?\d+\.\d\d \|", out, re.M), out
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    with pytest.raises(SystemExit):  # a folder that does not exist is a usage error, not an empty report
        mini.main(["--tier", "converged", "--output", str(tmp_path / "nope"), "--peek"])
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_curve_table_reports_when_a_model_stays_above_the_identity():
    ident = {"sr": 20.0, "blur": 30.0}

    def run(points):  # (iteration, sr, blur)
        return {"curve": [{"iteration": i, "per_task": {"sr": a, "blur": b}} for i, a, b in points]}

    results = {
        # crosses at 200, dips under at 300 (blur), stays above from 400 on
        ("M", 0): run([(100, 19.0, 31.0), (200, 21.0, 30.5), (300, 21.0, 29.0), (400, 21.0, 30.2), (500, 22.0, 30.4)]),
        ("M", 1): run([(100, 19.0, 31.0), (200, 21.0, 30.5), (300, 21.0, 29.0), (400, 21.0, 30.4), (500, 22.0, 30.6)]),
        ("S", 0): run([(100, 19.0, 29.0), (500, 19.5, 31.0)]),
        ("S", 1): run([(100, 19.0, 29.0), (500, 19.7, 31.0)]),
    }
    lines = sweep.curve_table(results, ["M", "S"], [0, 1], ident)
    assert lines[0] == ("  M: 100: -1.00 sr, 200: +0.50 blur, 300: -1.00 blur, 400: +0.30 blur, 500: +0.50 blur"
                        " -> above the identity on every task from iteration 400 on")
    assert lines[1] == "  S: 100: -1.00 sr, 500: -0.40 sr -> not above the identity on every task at the last evaluation"
    assert sweep.curve_table({("M", 0): {"per_task": {}}}, ["M"], [0], ident) == []  # cached runs without a curve


@pytest.mark.basicsr
@pytest.mark.usefixtures("one_thread")
def test_backbone_speed_prints_rates_and_protocol_hours(capsys):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        speed = importlib.import_module("backbone_speed")
    finally:
        sys.path.remove(str(SCRIPT.parent))
    args = ["--presets", "srresnet", "--device", "cpu", "--iters", "6", "--log-every", "2",
            "--set", "backbone=srresnet_tiny", "--set", "patch_size=16", "--set", "batch_size=2"]
    assert speed.main(args) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.match(r"srresnet +\(srresnet_tiny\): ([\d.]+) it/s wall-clock .*the protocol's 2,500,000 iterations = ([\d.]+) h", line)
    assert m, line
    assert float(m.group(2)) == pytest.approx(2_500_000 / float(m.group(1)) / 3600, rel=0.05)
    with pytest.raises(SystemExit):
        speed.main(["--iters", "5", "--log-every", "2"])


PAIR = ["--strategies", "M", "S+EP"]


@pytest.fixture()
def ship():
    yield from _script("ship_weights")


@pytest.mark.basicsr
@pytest.mark.usefixtures("one_thread")
def test_ship_weights_only_when_every_task_beats_the_identity(ship, tmp_path, capsys):
    from mio_strategies.harness import load_config, load_restorer, shipped_weights, train

    results = tmp_path / "bench"
    for s in ("M", "S+EP"):
        cfg = load_config("mini_converged", ["backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1", "periods=7",
                                             "period_iters=1", "batch_size=2", "patch_size=16", "prompt_size=16",
                                             "val_size=24", "log_every=1", f"strategy={s}"])
        run = results / f"{s.replace('+', '_')}-seed0"
        train(cfg, run, progress=False)
        per = dict.fromkeys(NAMES, 30.0)
        (run / "result.json").write_text(json.dumps({"strategy": s, "seed": 0, "per_task": per, "average": 30.0,
                                                     "identity": dict.fromkeys(NAMES, 20.0)}))
    other = results / "S-seed0"  # a finished run that is not shipped: named in the README with its verdict
    other.mkdir()
    (other / "result.json").write_text(json.dumps({"strategy": "S", "seed": 0, "average": 25.0, "identity": dict.fromkeys(NAMES, 20.0),
                                                   "per_task": {**dict.fromkeys(NAMES, 30.0), "jpeg": 19.0}}))
    # the default pair is M+EP and S+EP
    assert ship.main(["--results", str(results), "--dest", str(tmp_path / "w0")]) == 2
    assert "M_EP-seed0/result.json' does not exist: finish the run first" in capsys.readouterr().err
    # one task at the identity: nothing is shipped
    bad = json.loads((results / "S_EP-seed0" / "result.json").read_text())
    bad["per_task"]["jpeg"] = 20.0
    (results / "S_EP-seed0" / "result.json").write_text(json.dumps(bad))
    dest = tmp_path / "weights"
    assert ship.main(["--results", str(results), *PAIR, "--dest", str(dest)]) == 2
    assert "S+EP seed 0 is at or below the identity on jpeg" in capsys.readouterr().err
    assert not dest.exists()
    bad["per_task"]["jpeg"] = 20.5
    (results / "S_EP-seed0" / "result.json").write_text(json.dumps(bad))
    assert ship.main(["--results", str(results), *PAIR, "--dest", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["M.log.jsonl", "M.pt", "README.md", "S_EP.log.jsonl", "S_EP.pt"]
    assert set(shipped_weights(dest)) == {"M", "S+EP"}
    _, cfg, _ = load_restorer(dest / "S_EP.pt")
    assert cfg.strategy == "S+EP" and cfg.backbone == "unet_tiny"
    readme = (dest / "README.md").read_text()
    assert "| identity | " + " | ".join(["20.00"] * 7) + " | 20.00 |" in readme
    assert "| S+EP | 30.00 | 30.00 | 30.00 | 20.50 |" in readme and "Config: backbone `unet_tiny`" in readme
    assert "Other finished runs of this seed, not shipped: S (average 25.00 dB; at or below the identity on jpeg)." in readme
    assert ship.main(["--results", str(results), *PAIR, "--dest", str(dest)]) == 2  # never replaced silently
    assert "pass --overwrite" in capsys.readouterr().err
    # shipping another set: the old strategy's weights are not left behind for the demo to show
    assert ship.main(["--results", str(results), "--strategies", "s+ep", "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "M.pt, " in err and "(weights of other strategies, which demo --pretrained would show" in err
    assert (dest / "M.pt").exists()
    section = "\n## Task classifier (`classifier.pt`)\n\nwritten by ship_classifier.py\n"
    (dest / "README.md").write_text((dest / "README.md").read_text() + section)
    assert ship.main(["--results", str(results), "--strategies", "s+ep", "--dest", str(dest), "--overwrite"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "S_EP.log.jsonl", "S_EP.pt"]
    assert (dest / "README.md").read_text().endswith(section)  # the classifier's section is kept
    assert "not shipped: M (average 30.00 dB; above the identity on every task); S (" in (dest / "README.md").read_text()
    assert ship.main(["--results", str(results), *PAIR, "--seed", "1", "--dest", str(tmp_path / "w1")]) == 2
    assert "M-seed1/result.json' does not exist: finish the run first" in capsys.readouterr().err
    # every run is checked before anything is written: a missing log of the second run writes nothing for the first
    (results / "S_EP-seed0" / "log.jsonl").unlink()
    assert ship.main(["--results", str(results), *PAIR, "--dest", str(tmp_path / "w2")]) == 2
    assert "log.jsonl' does not exist: the run's training log ships with it" in capsys.readouterr().err
    assert not (tmp_path / "w2").exists()


@pytest.mark.basicsr
@pytest.mark.usefixtures("one_thread")
def test_gpu_check_packs_the_mini_tier_for_the_device_tool(tmp_path):
    """benchmarks/gpu_check.sh's bookkeeping, without a GPU: a stand-in python passes the CUDA check and
    skips the training (the tier's folder is prepared here); the script packs the logs and results, tries
    ship_weights (refused: no S+EP run) and exports each finished run of the chosen seed, and still exits 0."""
    import tarfile

    from mio_strategies.harness import load_config, load_restorer, train

    dest, out = tmp_path / "gc", tmp_path / "out"
    out.mkdir()
    run = dest / "mini-converged" / "M-seed1"
    cfg = load_config("mini_converged", ["backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1", "periods=7",
                                         "period_iters=1", "batch_size=2", "patch_size=16", "val_size=24", "seed=1"])
    train(cfg, run, progress=False)
    (run / "result.json").write_text(json.dumps({"strategy": "M", "seed": 1, "per_task": dict.fromkeys(NAMES, 30.0),
                                                 "average": 30.0, "identity": dict.fromkeys(NAMES, 20.0)}))
    other = dest / "mini-converged" / "S-seed0"  # a finished run of another seed: not exported
    shutil.copytree(run, other)
    (other / "result.json").write_text((run / "result.json").read_text().replace('"M"', '"S"'))
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n"
                    'if [ "$1" = "-c" ]; then echo "device: stand-in"; exit 0; fi\n'
                    'if [ "$1" = "benchmarks/mini_mio.py" ]; then echo "mini_mio $*"; exit 0; fi\n'
                    f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "DEST": str(dest), "OUT": "out", "MINI_SEED": "1",
           "MINI_TIMEOUT": "30", "FULL_TIMEOUT": "0", "SPEED_TIMEOUT": "0", "TRAIN_SPEED_TIMEOUT": "0",
           "OMP_NUM_THREADS": "1"}
    script = ["bash", str(SCRIPT.parent / "gpu_check.sh")]
    bad = subprocess.run(script, env={**env, "FULL_TIMEOUT": "1m"}, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "FULL_TIMEOUT=1m: give whole seconds (0 skips the step)" in bad.stderr
    # OUT relative to the caller's folder (the script changes to the repository root)
    proc = subprocess.run(script, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "mini_mio benchmarks/mini_mio.py --tier converged --seeds 1 --jobs 5 --set device=cuda" in proc.stdout
    # the tier's own schedule and test set unless asked (the knobs are passed on as --set / --testset-size)
    assert "--set num_workers=2 --set checkpoint_every=1000 --status-every 120" in proc.stdout
    assert "/mini-converged --pack" in proc.stdout  # M and S trained packed first (MINI_PACK=1)
    assert "--pack --set synthesis=device --set stream=philox" in proc.stdout  # batches degraded on the GPU
    assert "full-size SRResNet" not in proc.stdout and "training speed" not in proc.stdout  # timeout 0: skipped
    assert "S-seed1/result.json' does not exist" in proc.stderr  # ship_weights tried the five strategies, refused,
    assert "M_EP-seed1/result.json' does not exist" in proc.stderr  # then the two prompt models, refused
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check_mini.tgz", "gpu_check_rest.tgz", "mini_M-seed1.pt"]
    with tarfile.open(out / "gpu_check_mini.tgz") as tar:
        names = set(tar.getnames())
    assert {"mini.log", "mini-converged/M-seed1/result.json", "mini-converged/M-seed1/log.jsonl",
            "mini-converged/M-seed1/config.yaml"} <= names
    _, loaded, state = load_restorer(out / "mini_M-seed1.pt")
    assert loaded.strategy == "M" and loaded.seed == 1 and state["weights"] == "ema"
    (tmp_path / "out2").mkdir()
    asked = subprocess.run(script, env={**env, "MINI_PERIODS": "16", "MINI_TESTSET": "96", "DEST": str(tmp_path / "gc2"),
                                        "OUT": "out2"}, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "--set num_workers=2 --set periods=16 --testset-size 96 --set checkpoint_every=1000" in asked.stdout
    loader = subprocess.run(script, env={**env, "MINI_SYNTHESIS": "loader", "DEST": str(tmp_path / "gc3"), "OUT": ""},
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "mini_mio" in loader.stdout and "synthesis=" not in loader.stdout  # the tier's own data path
    bad = subprocess.run(script, env={**env, "MINI_SYNTHESIS": "gpu"}, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "MINI_SYNTHESIS=gpu: give device or loader" in bad.stderr


@pytest.mark.parametrize("daemon", ["starts", "fails", "absent"])
def test_gpu_check_mps_starts_the_daemon_and_stops_it_or_goes_on_without(tmp_path, daemon):
    """MPS=1: gpu_check.sh starts the CUDA MPS control daemon, checks a CUDA client under it and sends the
    daemon "quit" when it exits; where the daemon does not start, or is not installed, it says so and goes
    on without it (exit 0). Stand-ins for python and nvidia-cuda-mps-control record what they were asked."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/sh\necho "python $CUDA_MPS_PIPE_DIRECTORY" >> "$CALLS"\nexit 0\n')
    fake.chmod(0o755)
    if daemon != "absent":
        ctl = bin_dir / "nvidia-cuda-mps-control"
        ctl.write_text('#!/bin/sh\nif [ "$1" = "-d" ]; then echo "daemon -d" >> "$CALLS"; exit '
                       + ("0" if daemon == "starts" else "1") + '; fi\necho "daemon $(cat)" >> "$CALLS"\n')
        ctl.chmod(0o755)
    # only the commands the script (and the stand-in's cat) runs here, so that a real nvidia-cuda-mps-control
    # (a GPU machine's) is not found in the "absent" case
    tools = tmp_path / "tools"
    tools.mkdir()
    found = {name: shutil.which(name) for name in ("dirname", "mkdir", "timeout", "cat", "bash")}
    if None in found.values():
        pytest.skip(f"needs {[n for n, w in found.items() if w is None]} on PATH")
    for name in ("dirname", "mkdir", "timeout", "cat"):
        (tools / name).symlink_to(found[name])
    env = {"PATH": f"{bin_dir}:{tools}", "PYTHON": str(fake), "CALLS": str(calls), "MPS": "1",
           "DEST": str(tmp_path / "gc"), "MINI_TIMEOUT": "0", "FULL_TIMEOUT": "0", "SPEED_TIMEOUT": "0",
           "TRAIN_SPEED_TIMEOUT": "0"}
    script = [found["bash"], str(SCRIPT.parent / "gpu_check.sh")]
    bad = subprocess.run(script, env={**env, "FULL_TIMEOUT": "1m"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "FULL_TIMEOUT=1m" in bad.stderr
    assert "daemon" not in calls.read_text()  # a refused call starts no daemon
    calls.unlink()
    proc = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    recorded = calls.read_text().splitlines()
    if daemon == "starts":
        assert "CUDA MPS on" in proc.stdout
        # the CUDA check, the daemon, a client under it (the pipe folder exported), the daemon's quit at exit
        assert recorded == ["python ", "daemon -d", "python /tmp/mio-mps-pipe", "daemon quit"]
    elif daemon == "fails":
        assert "(CUDA MPS did not start; going on without it)" in proc.stdout
        assert recorded == ["python ", "daemon -d", "daemon quit"]
    else:
        assert "nvidia-cuda-mps-control is not on this machine; going on without it" in proc.stdout
        assert recorded == ["python "]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not reaped by a container's init, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_jobs_workers_end_with_their_parent(tmp_path):
    # a parent killed by a signal (no chance to shut its pool down) must not leave its workers training
    parent_code = (
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(SCRIPT.parents[1])!r})\n"
        "from mio_strategies.harness.sweep import worker_pool\n"
        "pool = worker_pool(1)\n"
        "print(pool.submit(os.getpid).result(timeout=120), flush=True)\n"
        "pool.submit(time.sleep, 120)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # stderr: the killed parent's resource tracker warns of the pool's leaked semaphores
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env)
    worker = None
    try:
        worker = int(parent.stdout.readline())
        time.sleep(0.5)  # the worker has taken the sleep job
        assert _alive(worker)
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the pool worker kept running after its parent was killed"
    finally:
        parent.kill()
        parent.wait(timeout=30)
        parent.stdout.close()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def _training_records(run_dir: Path) -> int:
    log = run_dir / "log.jsonl"
    return sum('"train"' in line for line in log.read_text().splitlines()) if log.is_file() else 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("to_group", [True, False], ids=["group", "parent-alone"])
def test_signalled_workers_save_their_runs_and_the_tier_stops_with_one_line(tmp_path, to_group):
    # Ctrl-C in a terminal signals the whole process group; `kill PID` the parent alone, which then passes the
    # signal on to its workers: either way each running run saves its checkpoint and the same command resumes
    out = tmp_path / "tier"
    cmd = [sys.executable, str(SCRIPT), "--tier", "quick", "--seeds", "0", "--strategies", "M", "S", "--jobs", "2",
           "--output", str(out), "--set", "period_iters=400", "--set", "log_every=1", "--set", "checkpoint_every=10000",
           "--no-curve"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              start_new_session=True)  # fmt: skip
    runs = [out / "M-seed0", out / "S-seed0"]
    try:
        deadline = time.monotonic() + 240
        while not all(_training_records(r) >= 2 for r in runs):
            assert parent.poll() is None and time.monotonic() < deadline, "the runs did not start training"
            time.sleep(0.2)
        if to_group:
            os.killpg(parent.pid, signal.SIGTERM)
        else:
            parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=180)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.communicate()
    assert parent.returncode == 143, err
    assert "re-run the same command to resume the tier" in err and "Traceback" not in err, err
    from mio_strategies.checkpoints import load_checkpoint

    for run in runs:  # saved on the signal (the periodic checkpoint is 10,000 iterations away)
        saved = load_checkpoint(run / "checkpoint.pt")
        assert 2 <= saved["iteration"] < 4000 and not saved["finished"], run


def test_a_gpu_run_of_the_same_configuration_joins_the_cpu_tier(tmp_path):
    # docs/results/log.md: a seed trained by gpu_check.sh (device cuda, data workers, another checkpoint
    # interval) with MINI_TESTSET=96 is reused by the CPU tier; other run settings or crops are refused
    from mio_strategies.harness import load_config

    cfg = load_config("mini_converged").replace(strategy="S+EP", seed=2, name="mini-S+EP-2", val_every=1500)
    gpu = cfg.replace(device="cuda", num_workers=2, checkpoint_every=1000).to_dict()
    data = {"strategy": "S+EP", "seed": 2, "config": gpu, "testset_size": 96}
    sweep.check_cached_result(cfg, tmp_path, data, 96)  # recorded before crops were: one crop per photo and task
    with pytest.raises(ValueError, match=r"scored on 1 test crop\(s\) per photo and task, --testset-crops 8 requested: "
                                         r"pass --testset-crops 1 to reuse it, --reevaluate to score"):
        sweep.check_cached_result(cfg, tmp_path, data, 96, testset_crops=8)
    sweep.check_cached_result(cfg, tmp_path, {**data, "testset_crops": 8}, 96, testset_crops=8)
    with pytest.raises(ValueError, match=r"scored on 256-px test crops, --testset-size 96 requested"):
        sweep.check_cached_result(cfg, tmp_path, {**data, "testset_size": 256}, 96)
    with pytest.raises(ValueError, match=r"of another configuration .*period_iters: 500 in that run, 1500 requested"):
        sweep.check_cached_result(cfg, tmp_path, {**data, "config": {**gpu, "period_iters": 500}}, 96)
    # a run recorded before a field existed trained with its default: it is that default's result only
    older = {k: v for k, v in gpu.items() if k != "reset_optimizer_each_stage"}
    sweep.check_cached_result(cfg, tmp_path, {**data, "config": older}, 96)
    with pytest.raises(ValueError, match=r"reset_optimizer_each_stage: False in that run, True requested"):
        sweep.check_cached_result(cfg.replace(reset_optimizer_each_stage=True), tmp_path, {**data, "config": older}, 96)


def test_adopt_copies_a_checked_seed_from_another_results_folder(mini, tmp_path, capsys):
    from mio_strategies.harness import load_config

    base = load_config("mini_converged")
    src, out = tmp_path / "gpu", tmp_path / "cpu"

    def finished(strategy: str, seed: int, **over) -> None:
        cfg = base.replace(strategy=strategy, seed=seed, name=f"mini-{strategy}-{seed}", val_every=1500,
                           device="cuda", num_workers=2, checkpoint_every=1000, **over)
        run = src / f"{strategy.replace('+', '_')}-seed{seed}"
        run.mkdir(parents=True, exist_ok=True)
        (run / "result.json").write_text(json.dumps({"strategy": strategy, "seed": seed, "config": cfg.to_dict(),
                                                     "testset_size": 96, "testset_crops": 8, "average": 25.0}))
        (run / "log.jsonl").write_text("{}\n")

    args = ["--tier", "converged", "--seeds", "7", "--output", str(out), "--adopt", str(src)]
    for s in STRATS[:-1]:
        finished(s, 7)
    with pytest.raises(SystemExit):  # S+AP unfinished there: nothing is copied
        mini.main(args)
    assert "holds no finished S+AP seed 7 run" in capsys.readouterr().err
    assert not any(out.glob("*-seed7"))
    finished("S+AP", 7, lr=1e-3)  # another configuration
    with pytest.raises(SystemExit):
        mini.main(args)
    assert "lr: 0.001 in that run, 0.0005 requested" in capsys.readouterr().err and not any(out.glob("*-seed7"))
    finished("S+AP", 7)
    assert mini.main(args) == 0
    assert "adopted 5 finished runs" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*-seed7")) == sorted(f"{s.replace('+', '_')}-seed7" for s in STRATS)
    assert (out / "S_AP-seed7" / "log.jsonl").is_file() and not any(out.glob(".*adopt-tmp"))
    with pytest.raises(SystemExit):  # a second adoption would mix two runs
        mini.main(args)
    assert "already holds a M seed 7 run" in capsys.readouterr().err


def test_a_signal_stops_the_tier_with_one_line_and_the_signals_exit_code(mini, monkeypatch, capsys, tmp_path):
    import signal

    from mio_strategies.harness import TrainingInterrupted

    def interrupted(argv=None):
        raise TrainingInterrupted(signal.SIGTERM, 120, 2000, tmp_path / "M-seed0")

    monkeypatch.setattr(mini, "main", interrupted)
    assert mini.run([]) == 143
    err = capsys.readouterr().err
    assert "training interrupted by SIGTERM after iteration 120 of 2000" in err
    assert "re-run the same command to resume the tier" in err and "Traceback" not in err
