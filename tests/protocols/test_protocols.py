"""Benchmark protocols: definitions, readers, pairing and `data check`, on tiny trees in each exact layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler
from mio_strategies.protocols import (
    PROBLEM_KINDS,
    ProtocolTestDataset,
    ProtocolTrainDataset,
    add_test_noise,
    check_tree,
    get_protocol,
    list_protocols,
)
from mio_strategies.protocols._pairing import pair_folder
from mio_strategies.tasks import get_task, parse_tasks
from tests.protocol_trees import CDD_TYPES, TEST_SIZE, make_tree

PROMPTIR_FAMILY = ("three-task", "five-task")


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, tuple[Path, dict[str, int]]]:
    """One complete tiny tree per protocol (read-only: tests that break a tree copy it first)."""
    out = {}
    for name in list_protocols():
        root = tmp_path_factory.mktemp(name)
        out[name] = (root, make_tree(name, root))
    return out


def _copy(trees, name: str, tmp_path: Path) -> tuple[Path, dict[str, int]]:
    root, counts = trees[name]
    dst = tmp_path / name
    shutil.copytree(root, dst)
    return dst, counts


# -- definitions ------------------------------------------------------------------------------------
def test_registry_lists_the_four_protocols_and_suggests_on_a_typo():
    assert list_protocols() == ["cdd11", "five-task", "mio-7", "three-task"]
    with pytest.raises(KeyError, match="did you mean 'three-task'"):
        get_protocol("three_task")


@pytest.mark.parametrize("name", ["three-task", "five-task", "cdd11", "mio-7"])
def test_preset_order_covers_exactly_the_protocols_slots(name):
    p = get_protocol(name)
    order = parse_tasks(p.preset.order.replace("|", ""))
    assert set(order) == {t.slot_task for t in p.tasks}
    c = Curriculum(p.preset.order, periods=p.preset.periods, iterations_per_period=p.preset.period_iters)
    assert c.periods - c.num_stages == 3  # every preset ends with three all-task periods, as the paper's 7 + 3


@pytest.mark.parametrize("name", ["three-task", "five-task", "cdd11"])
def test_published_averages_agree_with_their_per_set_scores(name):
    """A transcription check: each published average is the mean of the row's columns, to rounding."""
    p = get_protocol(name)
    assert p.references
    for row in p.references:
        assert set(row.scores) == {s.name for s in p.test_sets}, row.method
        psnr = sum(v[0] for v in row.scores.values()) / len(row.scores)
        ssim = sum(v[1] for v in row.scores.values()) / len(row.scores)
        assert abs(psnr - row.average[0]) <= 0.021, (row.method, psnr)
        assert abs(ssim - row.average[1]) <= 0.0021, (row.method, ssim)
        assert row.source and row.color in ("rgb", "y")


def test_cdd11_types_map_onto_library_slots_and_component_mixtures():
    p = get_protocol("cdd11")
    assert [t.key for t in p.tasks] == list(CDD_TYPES)
    assert p.task("snow").slot == "rain" and p.task("low").slot == "lowlight"
    assert p.task("low_haze").slot == "haze"  # enters once low and haze have
    assert p.task("low_haze_snow").component_ids == (6, 5, 4)
    assert [t.letter for t in p.slots] == ["L", "H", "R"]


# -- pairing -----------------------------------------------------------------------------------------
def test_pairing_rules_follow_each_layouts_naming(tmp_path):
    from tests.protocol_trees import _img

    for name in ("rain-3.png", "rain-x.png", "oops.png"):
        _img(tmp_path / "rainy" / name, (8, 8), 0)
    _img(tmp_path / "gt" / "norain-3.png", (8, 8), 1)
    res = pair_folder("rain-norain", tmp_path / "gt", tmp_path / "rainy")
    assert [(a.name, b.name) for a, b in res.pairs] == [("rain-3.png", "norain-3.png")]
    assert [p.name for p in res.orphans] == ["rain-x.png"] and [p.name for p in res.bad_names] == ["oops.png"]

    _img(tmp_path / "hazy/part1" / "0007_0.8_0.1.jpg", (8, 8), 2)
    _img(tmp_path / "hazy/part3" / "0007_1_0.2.jpg", (8, 8), 3)
    _img(tmp_path / "clear" / "0007.png", (8, 8), 4)
    res = pair_folder("haze-id", tmp_path / "clear", tmp_path / "hazy", recursive=True)
    assert [b.name for _, b in res.pairs] == ["0007.png", "0007.png"] and not res.orphans


# -- readers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["three-task", "five-task", "cdd11"])
def test_train_items_carry_slot_ids_and_replay_exactly(trees, name):
    root, counts = trees[name]
    p = get_protocol(name)
    ds = ProtocolTrainDataset(p, root, patch_size=32, seed=3, repeat=2)
    n_pairs = sum(v for k, v in counts.items() if k.startswith("train/"))
    assert len(ds) == 2 * n_pairs
    ids = ds.task_ids
    assert set(ids.tolist()) == {t.id for t in p.slots}
    for i in (0, len(ds) - 1):
        a, b = ds[i], ds[i]
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
        assert a["lq"].shape == a["gt"].shape == (3, 32, 32)
        assert a["task"] == int(ids[i])
        task = p.task(a["protocol_task"])
        assert a["task"] == task.slot_task.id
        if name == "cdd11":  # composite degradations: explicit prompts mix their components' prompts
            assert torch.isclose(a["prompt"].sum(), torch.tensor(1.0))
            assert set(a["prompt"].nonzero().flatten().tolist()) == set(task.component_ids)
        else:
            assert "prompt" not in a
    first = ds[0]["gt"]
    ds.set_epoch(1)  # another epoch draws other crops of the same pair
    assert not torch.equal(ds[0]["gt"], first)


def test_denoising_items_are_synthesized_at_the_protocols_sigmas(trees):
    root, _ = trees["three-task"]
    p = get_protocol("three-task")
    ds = ProtocolTrainDataset(p, root, tasks=["denoise"], patch_size=32, seed=0, repeat=12)
    sigmas = {float(ds[i]["params"]["sigma"]) for i in range(len(ds))}
    assert sigmas == {15.0, 25.0, 50.0}
    item = ds[0]
    noise = (item["lq"] - item["gt"]) * 255
    assert abs(float(noise.std()) - float(item["params"]["sigma"])) < 0.35 * float(item["params"]["sigma"])
    assert torch.equal(item["lq"] * 255, torch.round(item["lq"] * 255))  # 8-bit levels, as saved images


def test_train_dataset_drives_the_curriculum_sampler(trees):
    root, _ = trees["three-task"]
    p = get_protocol("three-task")
    ds = ProtocolTrainDataset(p, root, patch_size=32, repeat=4)
    c = Curriculum(p.preset.order, periods=p.preset.periods, iterations_per_period=2)
    sampler = SequentialCurriculumSampler(ds, c, batch_size=4, seed=0)
    first = [next(it) for it in [iter(sampler)] for _ in range(8)]  # period 1: the first stage only
    assert {int(ds.task_ids[i]) for i in first} == {get_task("rain").id}


def test_test_noise_is_seeded_by_image_name_not_by_order(trees):
    root, _ = trees["three-task"]
    p = get_protocol("three-task")
    a = ProtocolTestDataset(p, root, "bsd68-25")
    b = ProtocolTestDataset(p, root, "bsd68-25")
    assert torch.equal(a[1]["lq"], b[1]["lq"])
    assert a[0]["lq"].shape[-2:] == (TEST_SIZE[0] // 16 * 16, TEST_SIZE[1] // 16 * 16)
    clean = a[0]["gt"]
    assert torch.equal(add_test_noise(clean, 25, seed=0, stem=a[0]["image"]), a[0]["lq"])
    assert not torch.equal(add_test_noise(clean, 25, seed=0, stem="other"), a[0]["lq"])
    s15 = ProtocolTestDataset(p, root, "bsd68-15")[0]
    assert float((s15["lq"] - s15["gt"]).abs().mean()) < float((a[0]["lq"] - a[0]["gt"]).abs().mean())
    assert float(a[0]["params"]["sigma"]) == 25.0


@pytest.mark.parametrize("name", ["three-task", "five-task", "cdd11", "mio-7"])
def test_every_test_set_reads(trees, name):
    root, _ = trees[name]
    p = get_protocol(name)
    for ts in p.test_sets:
        ds = ProtocolTestDataset(p, root, ts.name)
        item = ds[0]
        assert item["test_set"] == ts.name and item["lq"].shape == item["gt"].shape
        assert item["task"] == p.task(ts.task).slot_task.id


def test_adair_roots_are_found_as_well_as_promptirs(tmp_path):
    counts = make_tree("three-task", tmp_path / "adair", layout="adair")
    report = check_tree(get_protocol("three-task"), tmp_path / "adair", expected_counts=counts)
    assert report.ok, report.summary()


def test_mio7_training_is_refused_with_the_dataset_to_use(trees):
    root, _ = trees["mio-7"]
    with pytest.raises(ValueError, match="MiODataset"):
        ProtocolTrainDataset(get_protocol("mio-7"), root)


# -- data check --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["three-task", "five-task", "cdd11", "mio-7"])
def test_complete_tree_passes(trees, name):
    root, counts = trees[name]
    report = check_tree(get_protocol(name), root, expected_counts=counts)
    assert report.ok, report.summary()
    assert [r.found for r in report.rows] == [counts[r.folder.key] for r in report.rows]
    assert "ok" in report.table()


def test_known_counts_stay_the_default(trees):
    root, _ = trees["three-task"]
    report = check_tree(get_protocol("three-task"), root)
    counts = {p.folder for p in report.problems if p.kind == "count"}
    assert counts == {"train/denoise", "train/derain", "train/dehaze", "test/rain100l", "test/bsd68"}
    assert any("expected 72135" in p.message for p in report.problems)
    assert check_tree(get_protocol("three-task"), root, counts=False).ok


def _kinds(report) -> set[str]:
    return {p.kind for p in report.problems}


def test_each_defect_is_named(trees, tmp_path):
    root, counts = _copy(trees, "three-task", tmp_path)
    train = root / "data/Train"
    shutil.rmtree(train / "Derain/gt")                                             # missing-folder
    (train / "Dehaze/synthetic/part1/0099_0.8_0.1.jpg").write_bytes(                # unpaired (no 0099 clear)
        (train / "Dehaze/synthetic/part1/0025_0.8_0.04.jpg").read_bytes())
    (train / "Dehaze/synthetic/part2/hazy.jpg").write_bytes(b"x")                    # misnamed
    (train / "Denoise/a0.jpg").write_bytes(b"not an image")                         # unreadable
    from tests.protocol_trees import _img

    _img(root / "test/derain/Rain100L/input/1.png", (48, 56), 9)                    # size-mismatch
    (root / "test/derain/Rain100L/input/2.png").unlink()                            # missing-input
    _img(train / "Denoise/tiny.png", (64, 64), 10)                                  # too-small
    report = check_tree(get_protocol("three-task"), root, expected_counts=counts)
    kinds = _kinds(report)
    assert {"missing-folder", "unpaired", "misnamed", "unreadable", "size-mismatch", "missing-input", "too-small",
            "count"} <= kinds
    assert kinds <= set(PROBLEM_KINDS)
    text = report.summary()
    assert "data/Train/Derain/gt is missing" in text
    assert "0099_0.8_0.1.jpg has no target" in text
    assert "Denoise/a0.jpg" in text
    assert "drive.google.com" in text  # where to get what is missing
    assert not report.ok


def test_missing_split_root_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    report = check_tree(get_protocol("cdd11"), tmp_path / "empty")
    assert _kinds(report) == {"missing-root"}
    assert "huggingface.co/datasets/gy65896/CDD-11" in report.summary()


def test_cdd11_type_missing_an_image_is_named(trees, tmp_path):
    root, _counts = _copy(trees, "cdd11", tmp_path)
    (root / "test/low_haze/000002.png").unlink()
    report = check_tree(get_protocol("cdd11"), root, counts=False)
    assert [(p.kind, p.folder) for p in report.problems] == [("missing-input", "test/low_haze")]


def test_expected_counts_with_an_unknown_folder_are_refused(trees):
    root, _ = trees["cdd11"]
    with pytest.raises(KeyError, match="train/fog"):
        check_tree(get_protocol("cdd11"), root, expected_counts={"train/fog": 3})


def test_deep_check_finds_a_truncated_file(trees, tmp_path):
    root, _counts = _copy(trees, "cdd11", tmp_path)
    f = root / "train/snow/000001.png"
    f.write_bytes(f.read_bytes()[:200])
    assert "unreadable" in _kinds(check_tree(get_protocol("cdd11"), root, counts=False, deep=True))


def test_data_check_command(trees, tmp_path, capsys):
    from mio_strategies.cli import main

    root, counts = trees["five-task"]
    expect = [a for k, v in counts.items() for a in ("--expect", f"{k}={v}")]
    assert main(["data", "check", "--protocol", "five-task", str(root), *expect]) == 0
    out = capsys.readouterr().out
    assert "train/deblur" in out and "ok:" in out
    broken, _ = _copy(trees, "five-task", tmp_path)
    shutil.rmtree(broken / "test/enhance/lol/target")
    assert main(["data", "check", "--protocol", "five-task", str(broken), "--no-counts"]) == 1
    err = capsys.readouterr().err
    assert "test/enhance/lol/target is missing" in err and "daooshee.github.io" in err
    assert "enhance/lol/input/ -> enhance/lol/target/" in err  # the expected tree, to fix the layout
    assert main(["data", "check", "--protocol", "six-task", str(root)]) == 2
    assert main(["data", "check", "--protocol", "cdd11", str(root), "--expect", "train/low"]) == 2


def test_benchmarks_page_names_every_folder_and_published_row():
    text = (Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for name in list_protocols():
        p = get_protocol(name)
        assert f"## {name}" in text
        for f in p.folders:
            for part in (f.gt, f.lq):
                if part not in (None, "."):
                    assert part in text, (name, part)
        for row in p.references:
            assert row.method in text, (name, row.method)
