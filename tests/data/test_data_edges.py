"""Edge cases of the data layer: depth_dir over several tasks, safe and atomic build_testset,
MiODataset input validation."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mio_strategies.data import ImageReadError, MiODataset, build_testset, embedded_image_paths, read_image
from mio_strategies.data._io import write_png


@pytest.fixture(scope="module")
def gt_with_depth(tmp_path_factory):
    """Two 48x48 GT images and, beside them, depth maps equal to each GT's first channel."""
    root = tmp_path_factory.mktemp("depth")
    (root / "imgs").mkdir()
    (root / "depth").mkdir()
    for p in embedded_image_paths()[:2]:
        img = read_image(p)[:, :48, :48]
        write_png(img, root / "imgs" / p.name)
        gt = read_image(root / "imgs" / p.name)  # the 8-bit image the dataset will read
        np.save(root / "depth" / f"{p.stem}.npy", gt[0].numpy().astype(np.float32))
    return root


# ----------------------------------------------------------------------------------- 1. depth_dir
def test_depth_dir_works_for_every_task_and_haze_uses_the_given_depth(gt_with_depth):
    from mio_strategies.degradations import degrade

    ds = MiODataset(gt_with_depth / "imgs", tasks="SBNJRHL", patch_size=32, seed=2, depth_dir=gt_with_depth / "depth")
    hazes = 0
    for i in range(len(ds)):
        item = ds[i]  # every task, not only haze, must work with a depth_dir
        params = {k: v.unsqueeze(0) for k, v in item["params"].items()}
        gt = item["gt"].unsqueeze(0)
        if item["task"] == 5:  # haze: the depth map is cropped and flipped exactly like the GT (depth == GT[0])
            hazes += 1
            depth = item["gt"][0].reshape(1, 1, 32, 32)
            assert torch.equal(degrade(gt, "haze", params=params, depth=depth)[0][0], item["lq"])
            assert not torch.equal(degrade(gt, "haze", params=params)[0][0], item["lq"])  # not the default estimate
        else:
            assert torch.equal(degrade(gt, item["task"], params=params)[0][0], item["lq"]), item["task"]
    assert hazes == 2


def test_depth_dir_is_read_only_for_haze_items(gt_with_depth, tmp_path):
    # a depth folder without the maps: non-haze items do not need them, a haze item names the missing file
    ds = MiODataset(gt_with_depth / "imgs", tasks="NH", patch_size=32, depth_dir=tmp_path)
    assert ds[0]["task"] == 2
    with pytest.raises(FileNotFoundError, match="no depth map for image"):
        ds[1]


# ----------------------------------------------------------------------------- 2. output == input
@pytest.fixture
def src(tmp_path):
    d = tmp_path / "imgs"
    for p in embedded_image_paths()[:2]:
        write_png(read_image(p)[:, :40, :40], d / p.name)
    return d


@pytest.mark.parametrize("where", ["same", "parent"])
def test_output_that_holds_the_input_images_is_refused_before_deleting(src, where):
    before = sorted(p.name for p in src.iterdir())
    out = src if where == "same" else src.parent
    with pytest.raises(ValueError, match=r"is or contains the input image.*choose another output"):
        build_testset(src, out, tasks="N", overwrite=True)
    assert sorted(p.name for p in src.iterdir()) == before
    with pytest.raises(ValueError, match="is or contains the input image"):  # an explicit list too
        build_testset(sorted(src.iterdir()), out, tasks="N", overwrite=True)
    assert sorted(p.name for p in src.iterdir()) == before


def test_output_inside_the_input_folder_is_fine(src):
    build_testset(src, src / "set", tasks="N")
    assert (src / "set" / "manifest.json").is_file()


def test_degrade_cli_refuses_output_equal_to_input(src):
    before = sorted(p.name for p in src.iterdir())
    res = subprocess.run(
        [sys.executable, "-m", "mio_strategies", "degrade", "--input", str(src), "--output", str(src), "--tasks", "N",
         "--overwrite"],
        capture_output=True, text=True,
    )
    assert res.returncode != 0 and "is or contains the input image" in res.stderr
    assert sorted(p.name for p in src.iterdir()) == before


# ----------------------------------------------------------------------------------- 3. atomicity
def _tree(root):
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() else None) for p in root.rglob("*"))


def test_failed_overwrite_keeps_the_old_set_and_leaves_no_partial_folder(src, tmp_path):
    out = tmp_path / "sets" / "out"
    build_testset(src, out, tasks="SN")
    old = _tree(out)
    (src / "zz_broken.png").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="zz_broken.png"):
        build_testset(src, out, tasks="BL", overwrite=True)
    assert _tree(out) == old
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no temporary sibling left


def test_failed_first_build_leaves_nothing(src, tmp_path):
    (src / "zz_broken.png").write_bytes(b"garbage")
    out = tmp_path / "sets" / "new"
    with pytest.raises(ImageReadError):
        build_testset(src, out, tasks="N")
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_an_interrupt_also_leaves_the_old_set(src, tmp_path, monkeypatch):
    import mio_strategies.data._testsets as T

    out = tmp_path / "out"
    build_testset(src, out, tasks="N")
    old = _tree(out)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "write_text_atomic", boom)  # fails at the very end, after every image
    with pytest.raises(KeyboardInterrupt):
        build_testset(src, out, tasks="J", overwrite=True)
    assert _tree(out) == old and sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "out"]


def test_successful_overwrite_replaces_the_set(src, tmp_path):
    out = tmp_path / "out"
    build_testset(src, out, tasks="N")
    report = build_testset(src, out, tasks="L", overwrite=True)
    assert report.root == out
    assert sorted(p.name for p in out.iterdir()) == [".mio-strategies", "GT", "lowlight", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "out"]
    (tmp_path / "file").write_text("x")  # an existing file is never replaced, overwrite or not
    with pytest.raises(FileExistsError, match=r"file' is a file, not a folder: it is left untouched"):
        build_testset(src, tmp_path / "file", tasks="N", overwrite=True)
    assert (tmp_path / "file").read_text() == "x"


def test_image_too_small_for_sr_is_named_or_skipped(src, tmp_path):
    write_png(torch.rand(3, 3, 3), src / "tiny.png")
    with pytest.raises(ValueError, match=r"tiny.png.*'sr'.*on_error='skip'"):
        build_testset(src, tmp_path / "o1", tasks="SN")
    assert not (tmp_path / "o1").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]
    report = build_testset(src, tmp_path / "o2", tasks="SN", on_error="skip", composites=["blur+noise"])
    assert list(report.skipped) == ["tiny.png"] and "sr.scale" in report.skipped["tiny.png"]
    assert len(report.images) == 2 and report.num_pairs == 6
    assert not list((tmp_path / "o2").rglob("tiny.png"))  # nothing of the skipped image, not even its GT
    manifest = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert "tiny.png" in manifest["skipped"] and len(manifest["entries"]) == 6


# ------------------------------------------------------------------------------ 4. MiODataset input
def test_a_bare_tensor_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"single tensor of shape \(3, 16, 16\).*\[image\]"):
        MiODataset(torch.rand(3, 16, 16), patch_size=8)
    with pytest.raises(TypeError, match=r"shape \(2, 3, 16, 16\).*list\(batch\)"):
        MiODataset(torch.rand(2, 3, 16, 16), patch_size=8)
    ds = MiODataset(list(torch.rand(2, 3, 16, 16)), tasks="N", patch_size=8)  # the documented fix works
    assert len(ds) == 2


@pytest.mark.parametrize(
    "ranges, match",
    [
        ([("blur", (1, 2))], r"ranges must be a dict .*\"blur\": \{\"sigma\".*got list"),
        ({"blur": (1, 2)}, r"ranges\['blur'\] must be a dict \{param: \(lo, hi\)\}.*got tuple \(1, 2\)"),
    ],
)
def test_bad_ranges_forms_are_refused_with_an_example(ranges, match):
    with pytest.raises(TypeError, match=match):
        MiODataset([torch.rand(3, 16, 16)], tasks="B", patch_size=8, ranges=ranges)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_gt_tensor_is_refused_at_construction(bad):
    t = torch.rand(3, 16, 16)
    t[1, 2, 3] = bad
    with pytest.raises(ValueError, match="image tensor 1 contains NaN or infinite"):
        MiODataset([torch.rand(3, 16, 16), t], patch_size=8)
