"""mio_strategies.harness.sweep: the run grid, the result cache, adoption and resume, on tiny runs.

``tests/fixtures/sweep_old_layout`` is a results folder written by ``benchmarks/mini_mio.py`` before the sweep
moved into the library (tier quick with the overrides of ``TINY_SWEEP``, strategies M and S+EP, seed 0,
``--testset-size 24 --curve``; the checkpoints left out): a folder of that layout must be reused as is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mio_strategies.harness import RunSpec, Sweep, load_config, train
from mio_strategies.harness import sweep as sweep_mod
from mio_strategies.harness.sweep import (
    adopt_runs,
    log_records,
    read_curve,
    run_dir_name,
    run_status,
    stored_config,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sweep_old_layout"
TINY_SWEEP = [
    "backbone_kwargs.num_feat=4",
    "backbone_kwargs.num_block=1",
    "periods=7",
    "period_iters=1",
    "batch_size=2",
    "patch_size=16",
    "prompt_size=16",
    "log_every=0",
]


def tiny_sweep(out: Path, *overrides: str, strategies=("M", "S+EP"), **kw) -> Sweep:
    kw = {"testset_size": 24, "curve": True, "name": "mini", **kw}
    return Sweep(load_config("mini_quick", TINY_SWEEP + list(overrides)), strategies, (0,), out, **kw)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def no_training(monkeypatch):
    def refuse(*_, **__):
        raise AssertionError("a cached run was trained or evaluated again")

    monkeypatch.setattr(sweep_mod, "train", refuse)
    monkeypatch.setattr(sweep_mod, "evaluate", refuse)


def test_plan_names_run_folders_and_configs_as_the_benchmark_always_did(tmp_path):
    sweep = Sweep(load_config("mini_quick"), ["M", "S+EP", "S+AP"], [0, 2], str(tmp_path), name="mini")
    plan = sweep.plan()
    assert [s.key for s in plan] == [("M", 0), ("S+EP", 0), ("S+AP", 0), ("M", 2), ("S+EP", 2), ("S+AP", 2)]
    assert [s.run_dir.name for s in plan] == [
        "M-seed0",
        "S_EP-seed0",
        "S_AP-seed0",
        "M-seed2",
        "S_EP-seed2",
        "S_AP-seed2",
    ]
    assert all(isinstance(s, RunSpec) and s.run_dir.parent == tmp_path for s in plan)
    cfg = plan[1].config
    assert (cfg.name, cfg.strategy, cfg.seed, cfg.val_every) == ("mini-S+EP-0", "S+EP", 0, 0)
    assert cfg.period_iters == 200 and cfg.backbone == "srresnet_tiny"  # the rest is the base's
    curved = Sweep(load_config("mini_quick"), ["M"], [1], tmp_path, curve=True)
    assert curved.plan()[0].config.val_every == 200 and curved.plan()[0].config.name == "sweep-M-1"
    assert run_dir_name("S+AP", 12) == "S_AP-seed12"
    assert not any(tmp_path.iterdir())  # planning writes nothing


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"base": {"strategy": "M"}}, TypeError, "base must be a TrainConfig"),
        ({"strategies": []}, ValueError, "at least one strategy and one seed"),
        ({"seeds": ()}, ValueError, "at least one strategy and one seed"),
        ({"seeds": [0, True]}, TypeError, r"\[True\] are not"),
        ({"strategies": ["M", 3]}, TypeError, r"\[3\] are not"),
        ({"testset_size": 0}, ValueError, "testset_size must be a positive integer, got 0"),
        ({"testset_crops": 1.5}, ValueError, "testset_crops must be a positive integer"),
        ({"curve_crops": -1}, ValueError, "curve_crops must be a positive integer"),
    ],
)
def test_bad_sweep_arguments_are_refused(tmp_path, kwargs, error, match):
    args = {"base": load_config("mini_quick"), "strategies": ["M"], "seeds": [0], "output": tmp_path, **kwargs}
    with pytest.raises(error, match=match):
        Sweep(**args)


def test_bad_run_arguments_are_refused_before_anything_is_written(tmp_path, no_training):
    sweep = tiny_sweep(tmp_path / "out")
    with pytest.raises(ValueError, match="jobs must be a positive integer, got 0"):
        sweep.run(jobs=0)
    with pytest.raises(ValueError, match=r"^status_every must be in \[0, inf\) \(seconds; 0: never\), got -1$"):
        sweep.run(status_every=-1)
    with pytest.raises(ValueError, match="extend trains: it cannot go with reevaluate"):
        sweep.run(extend=True, reevaluate=True)
    with pytest.raises(ValueError, match="unknown strategy 'Q'"):  # checked when the sweep is made
        tiny_sweep(tmp_path / "out", strategies=("M", "Q"))
    assert not (tmp_path / "out").exists()


def test_a_results_folder_of_the_old_layout_is_reused_as_is(tmp_path, no_training):
    out = tmp_path / "bench"
    shutil.copytree(FIXTURE, out)
    before = snapshot(out)
    sweep = tiny_sweep(out)
    sweep.check()
    seen = []
    results = sweep.run(on_result=lambda k, spec, r, started: seen.append((k, spec.key, started is not None)))
    assert seen == [(1, ("M", 0), True), (2, ("S+EP", 0), True)]
    for spec in sweep.plan():
        assert results[spec.key] == json.loads((FIXTURE / spec.run_dir.name / "result.json").read_text())
    assert results["M", 0]["config"]["period_iters"] == 1 and len(results["M", 0]["curve"]) == 7
    assert snapshot(out) == before  # nothing rewritten
    lines = sweep_mod.peek(out, [s.key for s in sweep.plan()], dict.fromkeys(results["M", 0]["identity"], 20.0), 7)
    assert lines[0] == "Runs: M seed 0: finished; S+EP seed 0: finished"
    assert sum(line.startswith("| M seed 0 | ") for line in lines) == 7  # the learning curve, read from log.jsonl
    # the configuration is read from result.json, or from config.yaml for a result.json that predates it
    data = json.loads((out / "M-seed0" / "result.json").read_text())
    assert stored_config(out / "M-seed0", data) == (data["config"], "result.json")
    del data["config"]
    saved, source = stored_config(out / "M-seed0", data)
    assert source == "config.yaml" and saved["period_iters"] == 1 and saved["strategy"] == "M"
    assert stored_config(tmp_path, data) == (None, "")


def test_a_cached_result_of_another_configuration_or_test_set_is_refused(tmp_path, no_training):
    out = tmp_path / "bench"
    shutil.copytree(FIXTURE, out)
    before = snapshot(out)
    with pytest.raises(
        ValueError,
        match=r"M-seed0' holds a finished M seed 0 run of another configuration "
        r"\(recorded in its result\.json\).*period_iters: 1 in that run, 2 requested",
    ):
        tiny_sweep(out, "period_iters=2").run()
    with pytest.raises(ValueError, match=r"scored on 24-px test crops, --testset-size 32 requested"):
        tiny_sweep(out, testset_size=32).check()
    with pytest.raises(ValueError, match=r"scored on 1 test crop\(s\) per photo and task, --testset-crops 2"):
        tiny_sweep(out, testset_crops=2).check()
    with pytest.raises(ValueError, match=r"learning curve was scored on 1 test crop\(s\).*--curve-crops 2 requested"):
        tiny_sweep(out, curve_crops=2).check()
    # more periods: refused, with the way to continue them; without a checkpoint they cannot be extended
    with pytest.raises(ValueError, match=r"periods: 7 in that run, 9 requested\. Use another --output"):
        tiny_sweep(out, "periods=9").check()
    with pytest.raises(ValueError, match=r"run of 7 periods without its checkpoint .*cannot be extended to 9"):
        tiny_sweep(out, "periods=9").check(extend=True)
    assert snapshot(out) == before


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "gpu"
    shutil.copytree(FIXTURE, src)
    return src


def test_adopt_refuses_missing_foreign_or_clashing_runs_and_copies_nothing(tmp_path):
    src = _source(tmp_path)
    out = tmp_path / "cpu"
    sweep = tiny_sweep(out, strategies=("M", "S+EP", "S"))
    with pytest.raises(ValueError, match=r"gpu/S-seed0' holds no finished S seed 0 run \(no result\.json\)"):
        sweep.adopt(src)
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(ValueError, match=r"lr: 0\.0002 in that run, 0\.001 requested"):
        tiny_sweep(out, "lr=1e-3").adopt(src)
    with pytest.raises(ValueError, match=r"scored on 24-px test crops, --testset-size 32 requested"):
        tiny_sweep(out, testset_size=32).adopt(src)
    assert not out.exists() or not any(out.iterdir())
    (out / "S_EP-seed0").mkdir(parents=True)
    (out / "S_EP-seed0" / "config.yaml").write_text("strategy: S+EP\n")
    with pytest.raises(FileExistsError, match=r"S_EP-seed0' already holds a S\+EP seed 0 run"):
        tiny_sweep(out).adopt(src)
    assert sorted(p.name for p in out.iterdir()) == ["S_EP-seed0"]  # M was not copied either
    (out / "S_EP-seed0" / "config.yaml").unlink()  # an empty folder is taken
    adopted = tiny_sweep(out).adopt(src)
    assert [p.name for p in adopted] == ["M-seed0", "S_EP-seed0"]
    assert snapshot(out) == snapshot(src) and not any(out.glob(".*adopt-tmp"))
    with pytest.raises(FileExistsError, match="already holds a M seed 0 run"):
        adopt_runs(src, tiny_sweep(out).plan(), 24)


@pytest.mark.usefixtures("one_thread")
def test_an_interrupted_run_is_resumed_to_the_uninterrupted_result(tmp_path):
    whole = tiny_sweep(tmp_path / "whole", "log_every=1", strategies=("M",))
    reference = whole.run()["M", 0]
    cut = tiny_sweep(tmp_path / "cut", "log_every=1", strategies=("M",))
    spec = cut.plan()[0]
    train(spec.config, spec.run_dir, stop_after=3, progress=False, val_dataset=cut.test_sets[1])
    assert not spec.finished and (spec.run_dir / "checkpoint.pt").is_file()
    assert cut.peek()[0] == "Runs: M seed 0: 3/7 it"
    assert run_status(spec.key, spec.run_dir, 7).startswith("M seed 0: 3/7 it, loss ")
    # an unfinished run of another configuration is refused before anything trains
    with pytest.raises(
        ValueError,
        match=r"unfinished run of another configuration \(.*period_iters: 1 in the "
        r"checkpoint, 2 requested",
    ):
        tiny_sweep(tmp_path / "cut", "log_every=1", "period_iters=2", strategies=("M",)).run()
    resumed = cut.run()["M", 0]
    assert spec.finished
    assert resumed["per_task"] == pytest.approx(reference["per_task"], abs=1e-6)
    assert [c["iteration"] for c in resumed["curve"]] == list(range(1, 8))
    assert resumed["config"] == reference["config"]
    assert [r["iteration"] for r in log_records(spec.run_dir / "log.jsonl", "train")][-1] == 7
    # reused now: the same call trains nothing and returns the cached result
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_mod, "train", lambda *a, **k: pytest.fail("retrained"))
        assert cut.run()["M", 0] == resumed


def test_log_readers_skip_cut_lines_and_keep_one_point_per_iteration(tmp_path):
    log = tmp_path / "log.jsonl"
    recs = [
        {"kind": "val", "iteration": 2, "psnr": {"sr": 20.0}},
        {"kind": "train", "iteration": 2, "loss": 0.5},
        {"kind": "val", "iteration": 1, "psnr": {"sr": 19.0}},
        {"kind": "val", "iteration": 2, "psnr": {"sr": 21.0}},  # a resumed run scored iteration 2 again
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"kind": "val", "iter')  # a cut last line
    assert [r["iteration"] for r in log_records(log, "val")] == [2, 1, 2]
    assert read_curve(log) == [
        {"iteration": 1, "per_task": {"sr": 19.0}},
        {"iteration": 2, "per_task": {"sr": 21.0}},
    ]
    assert log_records(tmp_path / "none.jsonl", "train") == []
