import json
import subprocess
import sys

import pytest
import torch

from mio_strategies.data import ImageReadError, PairedFolderDataset, build_testset, embedded_image_paths, read_image
from mio_strategies.data._io import write_png
from mio_strategies.data._paired import ReferencePairedDataset
from mio_strategies.tasks import get_task


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    d = tmp_path_factory.mktemp("gt")
    for p in embedded_image_paths()[:2]:
        write_png(read_image(p)[:, :64, :64], d / p.name)
    return d


def test_testset_layout_manifest_and_replay(two_images, tmp_path):
    from mio_strategies.degradations import degrade

    out = tmp_path / "set"
    report = build_testset(two_images, out, tasks="SBNJRHL", composites=["blur+noise"], seed=7)
    assert report.num_pairs == 2 * 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preset"] == "in" and manifest["seed"] == 7 and len(manifest["entries"]) == 16
    ds = PairedFolderDataset(out)
    assert len(ds) == 14  # composites live in their own folder, not a task folder
    assert sorted(set(ds.task_ids.tolist())) == list(range(7))
    for item in ds:
        params = {k: v.reshape(1, *v.shape) for k, v in item["params"].items()}
        lq, _ = degrade(item["gt"].unsqueeze(0), item["task"], params=params)
        assert torch.equal(lq[0], item["lq"]), (item["task"], item["image"])


def test_composite_entries_replay_from_their_stages(two_images, tmp_path):
    from mio_strategies.degradations import degrade_sequence

    out = tmp_path / "set"
    build_testset(two_images, out, tasks="N", composites=["haze+lowlight+noise"], seed=2)
    entries = [e for e in json.loads((out / "manifest.json").read_text())["entries"] if "stages" in e]
    assert len(entries) == 2 and entries[0]["tasks"] == ["haze", "lowlight", "noise"]
    for e in entries:
        gt = read_image(out / e["gt"]).unsqueeze(0)
        params = [{k: torch.tensor([v]) for k, v in st["params"].items()} for st in e["stages"]]
        lq, _ = degrade_sequence(gt, e["tasks"], params=params)
        assert torch.equal(lq[0], read_image(out / e["lq"]))


def test_composite_dataset_reads_composite_folders_with_their_stages(two_images, tmp_path):
    from mio_strategies.data import CompositeFolderDataset, composite_folders, open_testset
    from mio_strategies.degradations import degrade_sequence

    out = tmp_path / "set"
    build_testset(two_images, out, tasks="SN", composites=["blur+noise", "sr+jpeg"], seed=4)
    (out / "notes+misc").mkdir()  # a folder with '+' that names no tasks is not a composite
    assert {k: [t.name for t in v] for k, v in composite_folders(out).items()} == {
        "blur+noise": ["blur", "noise"], "sr+jpeg": ["sr", "jpeg"]}
    ds = CompositeFolderDataset(out)
    assert len(ds) == 4 and ds.composites == ("blur+noise", "sr+jpeg")
    for item in ds:
        assert "task" not in item and item["tasks"] == tuple(get_task(t).id for t in item["composite"].split("+"))
        params = [{k: torch.tensor([v]) for k, v in st["params"].items()} for st in item["stages"]]
        lq, _ = degrade_sequence(item["gt"].unsqueeze(0), [st["task"] for st in item["stages"]], params=params)
        assert torch.equal(lq[0], item["lq"])
    assert len(CompositeFolderDataset(out, composites=["sr+jpeg"])) == 2
    with pytest.raises(FileNotFoundError, match=r"no composite folder \['rain\+haze'\].*found \['blur\+noise', 'sr\+jpeg'\]"):
        CompositeFolderDataset(out, composites=["rain+haze"])
    both = open_testset(out)
    assert len(both) == 2 * 2 + 4
    assert [("composite" in both[i]) for i in range(len(both))] == [False] * 4 + [True] * 4
    single = tmp_path / "single"
    build_testset(two_images, single, tasks="N", seed=4)
    assert len(open_testset(single)) == 2
    with pytest.raises(FileNotFoundError, match=r"no composite folder under .*--composite blur\+noise"):
        CompositeFolderDataset(single)
    with pytest.raises(FileNotFoundError, match=r"test-set folder .*missing' does not exist"):
        open_testset(tmp_path / "missing")

def test_testset_is_deterministic_and_independent_of_other_tasks(two_images, tmp_path):
    build_testset(two_images, tmp_path / "a", tasks="NJ", seed=1)
    build_testset(two_images, tmp_path / "b", tasks="J", seed=1)
    name = sorted((tmp_path / "b" / "jpeg").iterdir())[0].name
    assert torch.equal(read_image(tmp_path / "a" / "jpeg" / name), read_image(tmp_path / "b" / "jpeg" / name))
    build_testset(two_images, tmp_path / "c", tasks="J", seed=2)
    assert not torch.equal(read_image(tmp_path / "c" / "jpeg" / name), read_image(tmp_path / "b" / "jpeg" / name))


def test_existing_output_is_refused_unless_overwrite(two_images, tmp_path):
    build_testset(two_images, tmp_path / "s", tasks="L")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_testset(two_images, tmp_path / "s", tasks="L")
    build_testset(two_images, tmp_path / "s", tasks="H", overwrite=True)
    assert not (tmp_path / "s" / "lowlight").exists()


def test_corrupt_image_stops_or_is_skipped(two_images, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for p in two_images.iterdir():
        (src / p.name).write_bytes(p.read_bytes())
    (src / "zz_broken.png").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="zz_broken.png"):
        build_testset(src, tmp_path / "o1", tasks="N")
    report = build_testset(src, tmp_path / "o2", tasks="N", on_error="skip")
    assert list(report.skipped) == ["zz_broken.png"] and len(report.images) == 2
    manifest = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert "zz_broken.png" in manifest["skipped"]
    assert not list((tmp_path / "o2").rglob("*.tmp"))


def test_bad_composite_and_on_error_values(two_images, tmp_path):
    with pytest.raises(ValueError, match="two or more tasks"):
        build_testset(two_images, tmp_path / "x", composites=["blur"])
    with pytest.raises(ValueError, match="on_error must be one of"):
        build_testset(two_images, tmp_path / "x", on_error="ignore")


def test_reference_flat_layout_reader(tmp_path):
    lq, gt = tmp_path / "LQ_sub", tmp_path / "GT_sub"
    x = torch.rand(3, 16, 16)
    write_png(x, gt / "GT_0001_s001.png")
    write_png(x, lq / "dark_0001_s001.png")
    write_png(x, lq / "rain_0001_s001.png")
    ds = ReferencePairedDataset(lq, gt, patch_size=8)
    assert sorted(ds.task_ids.tolist()) == [4, 6]
    assert ds[0]["lq"].shape == (3, 8, 8)
    write_png(x, lq / "snow_0001_s001.png")
    with pytest.raises(ValueError, match="snow_0001_s001.png.*task prefix"):
        ReferencePairedDataset(lq, gt)


def test_paired_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ground-truth folder 'GT'"):
        PairedFolderDataset(tmp_path)
    write_png(torch.rand(3, 8, 8), tmp_path / "GT" / "a.png")
    write_png(torch.rand(3, 8, 8), tmp_path / "dark" / "b.png")
    with pytest.raises(ValueError, match=r"without a ground truth.*\['b'\]"):
        PairedFolderDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no folder for tasks \['rain'\]"):
        PairedFolderDataset(tmp_path, tasks="R")


def test_degrade_cli_writes_a_testset_and_reports_errors(two_images, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "mio_strategies", "degrade", "--input", str(two_images), "--output", str(out), "--tasks", "SR", "--seed", "3"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "wrote 4 degraded images of 2 GT images" in res.stdout
    assert sorted(p.name for p in out.iterdir()) == [".mio-strategies", "GT", "manifest.json", "rain", "sr"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 1 and "--overwrite" in res.stderr
