"""Restoring one's own images: tiled inference (utils.tiling), Restorer.restore(tile=...), `mio-strategies restore`."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mio_strategies.harness import build_restorer, load_config, restore_images, save_checkpoint
from mio_strategies.utils.tiling import pad_to_multiple, tile_starts, tiled_apply

cv2 = pytest.importorskip("cv2")  # 16-bit colour PNG files (the [opencv] extra; basicsr installs it too)
pytestmark = pytest.mark.usefixtures("one_thread")


def _conv_net(depth: int, seed: int = 0) -> nn.Module:
    """``depth`` 3x3 convolutions (zero padding): each output pixel sees ``depth`` pixels around it."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(3 if i == 0 else 8, 8 if i < depth - 1 else 3, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


# -- tiled_apply ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(101, 77), (64, 64), (33, 130), (8, 200)])
@pytest.mark.parametrize("multiple", [1, 4, 8])
def test_tiled_equals_untiled_when_the_overlap_covers_the_receptive_field(size, multiple):
    # 4 convolutions reach 4 pixels; a tile contributes only beyond overlap // 4 = 4 pixels of its inner edges
    net = _conv_net(4)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(pad_to_multiple(x, multiple))[..., : size[0], : size[1]]
        tiled = tiled_apply(net, x, tile=40, overlap=16, multiple=multiple)
    assert tiled.shape == x.shape[:1] + (3,) + size
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)  # equal up to float rounding


def test_tiled_differs_from_untiled_within_tolerance_when_the_overlap_is_short():
    # 8 convolutions reach 8 pixels, the overlap of 8 keeps only 2: near seams the tiles see zero padding,
    # yet the blend keeps the difference small (the stated tolerance: 0.05 on outputs of about unit scale)
    net = _conv_net(8)
    x = torch.rand(1, 3, 90, 70, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = net(x)
        tiled = tiled_apply(net, x, tile=32, overlap=8)
    diff = (tiled - whole).abs().max().item()
    assert 0 < diff < 0.05 * whole.abs().max().item()


def test_tiles_are_bounded_by_the_tile_and_cover_the_image_with_the_overlap():
    seen = []

    def fn(t):
        seen.append(tuple(t.shape[-2:]))
        return t * 2

    x = torch.rand(1, 3, 250, 130)
    out = tiled_apply(fn, x, tile=64, overlap=16, multiple=8)
    assert torch.allclose(out, x * 2, atol=1e-6)  # pointwise: tiling is invisible
    assert set(seen) == {(64, 64)} and len(seen) == len(tile_starts(256, 64, 16, 8)) * len(tile_starts(136, 64, 16, 8))
    for length in (100, 136, 257 + 7, 1000):
        for tile, overlap, multiple in ((64, 16, 8), (40, 12, 1), (32, 0, 4)):
            length_p = length + (-length) % multiple
            starts = tile_starts(length_p, tile, overlap, multiple)
            assert starts[0] == 0 and starts[-1] + min(tile, length_p) == length_p
            assert all(s % multiple == 0 for s in starts)
            assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))  # overlap at least `overlap`


def test_calls_back_per_tile_and_keeps_the_output_on_the_inputs_device():
    calls = []
    out = tiled_apply(
        lambda t: t.double(), torch.rand(1, 3, 50, 50), tile=32, overlap=8, on_tile=lambda d, n: calls.append((d, n))
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)] and out.dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tile": 30, "multiple": 8}, r"tile must be a positive multiple of 8 .* got 30: e\.g\. 24"),
        ({"tile": 0}, r"tile must be a positive multiple of 1"),
        ({"tile": 32, "overlap": 16}, r"overlap must be an int with 0 <= overlap < tile / 2"),
        ({"tile": 32, "overlap": -1}, r"overlap must be"),
        ({"tile": 32, "multiple": 0}, r"multiple must be a positive int"),
    ],
)
def test_bad_tiling_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiled_apply(lambda t: t, torch.rand(1, 3, 40, 40), **kwargs)


def test_a_function_that_changes_the_size_is_refused():
    with pytest.raises(ValueError, match=r"fn must keep the batch, height and width"):
        tiled_apply(lambda t: t[..., ::2, ::2], torch.rand(1, 3, 40, 40), tile=16, overlap=4)
    with pytest.raises(ValueError, match=r"x must be a batch \(B, C, H, W\)"):
        tiled_apply(lambda t: t, torch.rand(3, 40, 40), tile=16)


# -- Restorer.restore(tile=...) -------------------------------------------------------------------------
def test_restorer_restore_tiled_matches_untiled_for_a_prompted_unet():
    r = build_restorer(
        "unet_tiny", "explicit", backbone_kwargs={"num_feat": 4, "num_block": 1, "levels": 2}, prompt_size=16
    )
    for p in r.injector.parameters():  # move the modulators off the identity so the prompt matters
        nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(0))
    x = torch.rand(1, 3, 75, 61, generator=torch.Generator().manual_seed(3))
    task = torch.tensor([2])
    with torch.no_grad():
        whole = r.restore(x, task)
        tiled = r.restore(x, task, tile=30, overlap=12)  # rounded up to 32 (the size multiple 4)
        other = r.restore(x, torch.tensor([5]), tile=30, overlap=12)
    assert tiled.shape == x.shape
    assert (tiled - whole).abs().max() < 0.02  # the U-Net's receptive field exceeds the overlap: close, not equal
    assert (other - tiled).abs().max() > 1e-4  # the task's prompt reaches every tile


# -- image files ----------------------------------------------------------------------------------------------
def test_16_bit_png_files_keep_their_precision(tmp_path):
    from mio_strategies.harness._restore import read_image_depth, write_image_depth

    g = np.random.default_rng(0)
    rgb = g.integers(0, 65536, (13, 17, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])
    img, bits, grey = read_image_depth(tmp_path / "c.png")
    assert bits == 16 and not grey and img.shape == (3, 13, 17)
    assert np.array_equal(np.round(img.numpy().transpose(1, 2, 0) * 65535).astype(np.uint16), rgb)
    write_image_depth(img, tmp_path / "c2.png", bits=16)
    assert np.array_equal(cv2.imread(str(tmp_path / "c2.png"), cv2.IMREAD_UNCHANGED)[..., ::-1], rgb)
    grey16 = g.integers(0, 65536, (9, 5), dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g.png")
    img, bits, grey = read_image_depth(tmp_path / "g.png")
    assert (bits, grey) == (16, True)
    write_image_depth(img, tmp_path / "g2.png", bits=16, grey=True)
    with Image.open(tmp_path / "g2.png") as im:
        assert np.array_equal(np.asarray(im), grey16)
    with pytest.raises(ValueError, match=r"bits must be 8 or 16, got 12"):
        write_image_depth(img, tmp_path / "x.png", bits=12)


# -- the command ------------------------------------------------------------------------------------------------
def _checkpoint(tmp_path, strategy: str):
    """Weights of an untrained tiny model of ``strategy``, as an exported file (no training needed)."""
    from mio_strategies.checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    cfg = load_config(
        "cpu_demo",
        [
            "backbone=unet_tiny",
            "backbone_kwargs.num_feat=4",
            "backbone_kwargs.num_block=1",
            "backbone_kwargs.levels=2",
            "prompt_size=16",
            f"strategy={strategy}",
        ],
    )
    r = build_restorer(
        cfg.backbone,
        cfg.strategy_prompt,
        backbone_kwargs=cfg.backbone_kwargs,
        seed=cfg.seed,
        prompt_size=cfg.prompt_size,
    )
    path = tmp_path / f"{strategy.replace('+', '_')}.pt"
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
        path,
    )
    return path, r


def _inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    g = np.random.default_rng(1)
    Image.fromarray(g.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(folder / "rgb8.png")
    Image.fromarray(g.integers(0, 256, (20, 11), dtype=np.uint8)).save(folder / "grey8.jpg")
    cv2.imwrite(str(folder / "rgb16.png"), g.integers(0, 65536, (70, 45, 3), dtype=np.uint16))
    return folder


def test_restore_writes_every_image_of_a_folder_with_its_size_and_bit_depth(tmp_path):
    from mio_strategies.cli import main
    from mio_strategies.data import read_image

    ckpt, r = _checkpoint(tmp_path, "S+EP")
    folder = _inputs(tmp_path)
    out = tmp_path / "out"
    assert (
        main(
            [
                "restore",
                str(folder),
                "--checkpoint",
                str(ckpt),
                "--output",
                str(out),
                "--task",
                "noise",
                "--tile",
                "32",
                "--tile-overlap",
                "8",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["grey8.png", "rgb16.png", "rgb8.png"]
    with Image.open(out / "rgb8.png") as a, Image.open(out / "grey8.png") as b:
        assert (a.size, a.mode) == ((53, 37), "RGB") and (b.size, b.mode) == ((11, 20), "L")
    c = cv2.imread(str(out / "rgb16.png"), cv2.IMREAD_UNCHANGED)
    assert c.shape == (70, 45, 3) and c.dtype == np.uint16
    # the file holds what Restorer.restore gives, tiled the same way, rounded to 8 bits
    x = read_image(folder / "rgb8.png")[None]
    with torch.no_grad():
        want = r.restore(x, torch.tensor([2]), tile=32, overlap=8)[0]
    assert (read_image(out / "rgb8.png") - want.clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6


def test_restore_skips_an_unreadable_file_with_on_error_skip_and_stops_without(tmp_path, capsys):
    from mio_strategies.cli import main

    ckpt, _ = _checkpoint(tmp_path, "M")
    folder = _inputs(tmp_path)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    args = [str(folder), "--checkpoint", str(ckpt), "--tile", "0", "--device", "cpu", "--no-progress"]
    assert main(["restore", *args, "--output", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "cannot read image" in err and "--on-error skip" in err
    assert not (tmp_path / "a").exists()  # stopped before anything was written
    assert main(["restore", *args, "--output", str(tmp_path / "b"), "--on-error", "skip"]) == 1
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "broken.png" in captured.err
    assert "restored 3 of 4 images" in captured.out
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if not p.name.startswith(".")) == [
        "grey8.png",
        "rgb16.png",
        "rgb8.png",
    ]


def test_restore_refuses_what_it_cannot_do_before_writing(tmp_path):
    ckpt_ep, _ = _checkpoint(tmp_path, "M+EP")
    ckpt_ap, _ = _checkpoint(tmp_path, "S+AP")
    folder = _inputs(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"M\+EP model \(explicit prompts\): pass task=NAME"):
        restore_images(folder, ckpt_ep, out, device="cpu")
    with pytest.raises(ValueError, match=r"a classifier was given with task='noise': it is used only with task='auto'"):
        restore_images(folder, ckpt_ep, out, task="noise", classifier="clf.pt", device="cpu")
    with pytest.raises(FileNotFoundError, match=r"classifier file .*missing.pt' does not exist"):
        restore_images(folder, ckpt_ep, out, task="auto", classifier=tmp_path / "missing.pt", device="cpu")
    with pytest.raises(ValueError, match=r"is not a task-classifier file \(format 'mio-strategies'"):
        restore_images(folder, ckpt_ep, out, task="auto", classifier=ckpt_ap, device="cpu")
    with pytest.raises(KeyError, match=r"unknown task 'fog'"):
        restore_images(folder, ckpt_ep, out, task="fog", device="cpu")
    with pytest.raises(ValueError, match=r"S\+AP model \(adaptive prompts, read from the image itself\): it takes no"):
        restore_images(folder, ckpt_ap, out, task="noise", device="cpu")
    with pytest.raises(FileNotFoundError, match=r"input .*nowhere.png' does not exist"):
        restore_images([folder, tmp_path / "nowhere.png"], ckpt_ap, out, device="cpu")
    with pytest.raises(ValueError, match=r"on_error must be 'stop' or 'skip'"):
        restore_images(folder, ckpt_ap, out, on_error="ignore")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "rgb8.tif").write_bytes((folder / "rgb8.png").read_bytes())
    with pytest.raises(ValueError, match=r"would both be written as 'rgb8.png'"):
        restore_images([folder, tmp_path / "more"], ckpt_ap, out, device="cpu")
    assert not out.exists()
    # an existing non-empty folder needs overwrite, and overwrite replaces only a folder the library wrote
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"already exists and is not empty: pass overwrite=True"):
        restore_images(folder, ckpt_ap, out, device="cpu")
    with pytest.raises(FileExistsError, match=r"was not written by mio-strategies"):
        restore_images(folder, ckpt_ap, out, device="cpu", overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    ours = tmp_path / "ours"
    rep = restore_images(folder / "rgb8.png", ckpt_ap, ours, device="cpu", tile=16, overlap=4)
    rep = restore_images(folder, ckpt_ap, ours, device="cpu", overwrite=True, tile=16, overlap=4)
    assert len(rep.written) == 3 and not rep.failed
    names = sorted(p.name for p in ours.iterdir() if not p.name.startswith("."))
    assert names == ["grey8.png", "rgb16.png", "rgb8.png"]


def test_restore_task_auto_uses_the_classifiers_prediction(tmp_path):
    from mio_strategies.prompts import TaskClassifier

    ckpt, _ = _checkpoint(tmp_path, "S+EP")
    folder = _inputs(tmp_path)

    class Always(TaskClassifier):
        def forward(self, x):  # always "haze"
            return torch.eye(7)[5].expand(x.shape[0], 7) * 10

    rep = restore_images(
        folder, ckpt, tmp_path / "out", task="auto", classifier=Always(7), device="cpu", tile=32, overlap=8
    )
    assert set(rep.tasks.values()) == {"haze"} and len(rep.written) == 3
