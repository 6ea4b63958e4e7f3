"""``MiODataset(jpeg_codec=...)``: the DiffJPEG codec in the dataset's params, and with ``synthesis="device"``
JPEG deferred to the device and degraded there as the loader would (bit for bit on the CPU)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from mio_strategies.data import DEVICE_TASKS, MiODataset, degrade_deferred, mio_collate
from mio_strategies.degradations import apply_degradation

JPEG = 3


def _images(n: int = 3, size: int = 40) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, size, size, generator=g) for _ in range(n)]


def _batches(synthesis: str, tasks: str = "SJNL", **kw) -> list[dict]:
    ds = MiODataset(_images(), tasks=tasks, patch_size=32, seed=7, repeat=2, synthesis=synthesis, **kw)
    loader = DataLoader(ds, batch_size=8, collate_fn=mio_collate)
    return [b for _, b in zip(range(3), loader)]


def test_diffjpeg_jpeg_items_are_deferred_and_degraded_on_the_device_as_the_loader_does():
    assert "jpeg" in DEVICE_TASKS
    loader = _batches("loader", jpeg_codec="diffjpeg")
    device = _batches("device", jpeg_codec="diffjpeg")
    for a, b in zip(loader, device):
        jpeg = b["task"] == JPEG
        assert bool(jpeg.any())
        assert all(b["deferred"][i] for i in jpeg.nonzero().flatten().tolist())  # JPEG deferred now
        assert torch.equal(b["lq"][jpeg], b["gt"][jpeg])  # the loader left the GT
        assert all(p["codec"] == "diffjpeg" for p, t in zip(b["params"], b["task"].tolist()) if t == JPEG)
        assert all(pa["quality"] == pb["quality"] for pa, pb, t in zip(a["params"], b["params"], b["task"].tolist())
                   if t == JPEG)  # fmt: skip
        lq = degrade_deferred(b, "cpu")
        # stated tolerance: none. DiffJPEG is float32 arithmetic per 8x8 block and per image, the same
        # operations whether the batch holds one image or several, so on the CPU the batches are equal bit for bit
        assert torch.equal(lq[jpeg], a["lq"][jpeg])
        assert torch.equal(lq[b["task"] == 2], a["lq"][b["task"] == 2])  # noise, per image: bit for bit too
        diff = (lq - a["lq"]).abs()  # SR's batched resize: the tolerance of the other deferred tasks
        assert float(diff.max()) <= 1 / 255 + 1e-6 and float((diff > 0).float().mean()) <= 1e-3


def test_replaying_a_deferred_jpeg_items_params_gives_the_loaders_image():
    ds = MiODataset(_images(1), tasks="J", patch_size=32, seed=2, jpeg_codec="diffjpeg")
    dev = MiODataset(_images(1), tasks="J", patch_size=32, seed=2, jpeg_codec="diffjpeg", synthesis="device")
    item, deferred = ds[0], dev[0]
    assert deferred["deferred"] and deferred["params"] == item["params"]
    y = apply_degradation(deferred["lq"].unsqueeze(0), "jpeg", deferred["params"])
    assert torch.equal(y[0], item["lq"])


def test_the_pillow_codec_keeps_jpeg_in_the_loader_with_the_same_images_as_before():
    old = MiODataset(_images(1), tasks="J", patch_size=32, seed=2, synthesis="device")
    pil = MiODataset(_images(1), tasks="J", patch_size=32, seed=2, synthesis="device", jpeg_codec="pillow")
    for ds in (old, pil):
        assert ds[0]["deferred"] is False and "codec" not in ds[0]["params"]
    assert torch.equal(old[0]["lq"], pil[0]["lq"])
    dj = MiODataset(_images(1), tasks="J", patch_size=32, seed=2, jpeg_codec="diffjpeg")
    assert torch.equal(dj[0]["gt"], old[0]["gt"]) and not torch.equal(dj[0]["lq"], old[0]["lq"])


def test_the_reference_data_path_takes_diffjpeg_and_refuses_pillow():
    kw = dict(tasks="J", patch_size=32, seed=2, implementation="reference")
    a, b = MiODataset(_images(1), **kw), MiODataset(_images(1), jpeg_codec="diffjpeg", **kw)
    assert torch.equal(a[0]["lq"], b[0]["lq"]) and b[0]["params"]["codec"] == "diffjpeg"
    with pytest.raises(
        ValueError,
        match="jpeg_codec='pillow' with implementation='reference', whose JPEG codec is "
        "DiffJPEG: use implementation='library' for Pillow",
    ):
        MiODataset(_images(1), jpeg_codec="pillow", **kw)
    # device synthesis stays refused with the reference's data path; the message names the way to batch JPEG
    with pytest.raises(
        ValueError, match="needs implementation='library'.*implementation='library' with jpeg_codec='diffjpeg'"
    ):
        MiODataset(_images(1), tasks="J", synthesis="device", implementation="reference")


def test_bad_jpeg_codecs_are_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"unknown jpeg_codec 'libjpeg': valid values are \['pillow', 'diffjpeg'\]"):
        MiODataset(_images(1), tasks="J", jpeg_codec="libjpeg")
    with pytest.raises(ValueError, match=r"range of jpeg.quality \(90, 100\) reaches 100"):  # refused at construction
        MiODataset(_images(1), tasks="J", jpeg_codec="diffjpeg", ranges={"jpeg": {"quality": (90, 100)}})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_diffjpeg_deferred_on_cuda_is_the_cpus_up_to_rare_rounding_flips():
    batch = _batches("device", tasks="J", jpeg_codec="diffjpeg")[0]
    cpu, gpu = degrade_deferred(batch, "cpu"), degrade_deferred(batch, "cuda")
    assert gpu.device.type == "cuda"
    diff = (gpu.cpu() - cpu).abs()
    # float32 on another device: a DCT coefficient within rounding of a half-integer may round the other way,
    # which changes its 8x8 block (16x16 for chroma) by a few levels; stated tolerance: at most 1 % of the
    # values differ, by 0.1/255 on average over the batch at most (a few levels on those 1 %)
    assert float((diff > 0).float().mean()) <= 1e-2 and float(diff.mean()) <= 0.1 / 255
