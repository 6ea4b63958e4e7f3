"""Synthesis on the training device (``synthesis: device``): the dataset's deferred items, the same batches
as the loader's, the same training run, exact resume, packed runs, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mio_strategies.checkpoints import CheckpointMismatchError
from mio_strategies.cli import main
from mio_strategies.data import MiODataset, degrade_deferred, mio_collate, write_png
from mio_strategies.harness import load_checkpoint, load_config, train
from mio_strategies.harness._packed import train_packed
from tests.tiny_runs import TINY, same_state, tiny_val

pytestmark = pytest.mark.basicsr


# -- synthesis on the training device: the dataset, the batches, the training loop ----------------------
def _loaders(stream: str, tasks: str = "SBNJRHL", batch: int = 14, **kw):

    imgs = _images(3, 40)
    common = dict(tasks=tasks, patch_size=32, seed=3, stream=stream, repeat=2, **kw)
    out = []
    for synthesis in ("loader", "device"):
        ds = MiODataset(imgs, synthesis=synthesis, **common)
        out.append(DataLoader(ds, batch_size=batch, collate_fn=mio_collate))
    return out


def _images(n: int, size: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, size, size, generator=g) for _ in range(n)]


EXACT_TASKS = (2, 4, 6)  # noise, rain, low light: elementwise or per-image arithmetic, equal bit for bit on the CPU


@pytest.mark.parametrize("stream", ["philox", "torch"])
def test_device_synthesis_gives_the_loaders_batches(stream):

    loader, device = _loaders(stream)
    seen = set()
    for k, (a, b) in enumerate(zip(loader, device)):
        if k == 3:
            break
        assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["task"], b["task"])
        # the same parameters were drawn; deferred items still hold the GT, JPEG items their Pillow image
        assert [sorted(p) for p in a["params"]] == [sorted(p) for p in b["params"]]
        assert all(
            torch.equal(pa[k2], pb[k2])
            for pa, pb in zip(a["params"], b["params"])
            for k2 in pa
            if isinstance(pa[k2], torch.Tensor)
        )
        assert b["deferred"] == [t != 3 for t in b["task"].tolist()]
        assert torch.equal(b["lq"][b["task"] != 3], b["gt"][b["task"] != 3])
        lq = degrade_deferred(b, "cpu")
        for t in b["task"].unique().tolist():
            m = a["task"] == t
            diff = (lq[m] - a["lq"][m]).abs()
            # stated tolerance: one 8-bit level on at most 0.1 % of the values; exact for the per-image tasks
            assert float(diff.max()) <= 1 / 255 + 1e-6, t
            assert float((diff > 0).float().mean()) <= 1e-3, t
            if t in EXACT_TASKS or t == 3:
                assert torch.equal(lq[m], a["lq"][m]), t
            seen.add(t)
        assert not torch.equal(b["lq"], lq)  # degrade_deferred did not write into the batch
    assert seen == set(range(7))


def test_device_synthesis_keeps_haze_with_depth_maps_and_jpeg_in_the_loader(tmp_path):

    np.save(tmp_path / "image0000.npy", np.linspace(0.1, 1, 40 * 40).reshape(40, 40))
    img = tmp_path / "image0000.png"

    write_png(_images(1, 40)[0], img)
    depth_dir = tmp_path / "depth"
    depth_dir.mkdir()
    (tmp_path / "image0000.npy").rename(depth_dir / "image0000.npy")
    ds = MiODataset([img], tasks="JHL", patch_size=32, seed=1, synthesis="device", depth_dir=depth_dir)
    ref = MiODataset([img], tasks="JHL", patch_size=32, seed=1, depth_dir=depth_dir)
    flags = [ds[i]["deferred"] for i in range(3)]
    assert flags == [False, False, True]
    for i in range(2):  # JPEG and haze with a depth map: degraded in the loader, as before
        assert torch.equal(ds[i]["lq"], ref[i]["lq"])
    assert "deferred" not in ref[0]  # the loader's items are unchanged


def test_synthesis_values_are_validated_naming_the_fix():

    with pytest.raises(ValueError, match=r"unknown synthesis 'gpu': valid values are \['loader', 'device'\]"):
        MiODataset(_images(1, 40), synthesis="gpu")
    with pytest.raises(ValueError, match="synthesis='device' needs implementation='library'.*synthesis='loader'"):
        MiODataset(_images(1, 40), synthesis="device", implementation="reference")
    with pytest.raises(ValueError, match=r"synthesis must be one of \['loader', 'device'\], got 'gpu'"):
        load_config("cpu_demo", ["synthesis=gpu"])
    with pytest.raises(ValueError, match="data_implementation 'reference' .*use synthesis 'loader'"):
        load_config("cpu_demo", ["synthesis=device", "data_implementation=reference"])
    with pytest.raises(ValueError, match="protocol 'three-task' reads its degraded images from disk"):
        load_config("cpu_demo", ["synthesis=device", "protocol=three-task", "protocol_root=/nonexistent"])
    assert load_config("cpu_demo").synthesis == "loader"
    batch = {"lq": torch.zeros(2, 3, 8, 8), "task": torch.tensor([2, 2]), "params": [{}], "deferred": [True, True]}
    with pytest.raises(ValueError, match="one 'deferred' flag and one params dict per image, got 2 and 1"):
        degrade_deferred(batch)
    plain = {"lq": torch.rand(2, 3, 8, 8)}
    assert degrade_deferred(plain) is plain["lq"]  # nothing deferred: lq as it is


# a tiny run that learns within 8 steps, on noise, rain and low light (the Philox stream)
DEVICE_RUN = ["strategy=M", "order=NRL", "periods=2", "period_iters=4", "lr=5e-3", "lr_min=5e-3",
              "stream=philox", "checkpoint_every=2"]  # fmt: skip


# the same on JPEG and low light with the DiffJPEG codec, whose JPEG is degraded on the device too
JPEG_RUN = ["strategy=M", "order=JL", "periods=2", "period_iters=4", "lr=5e-3", "lr_min=5e-3", "checkpoint_every=2",
            "jpeg_codec=diffjpeg"]  # fmt: skip


def _tiny_cfg(*extra: str, run: list[str] = DEVICE_RUN):

    return load_config("cpu_demo", [*TINY, *run, *extra])


def _tiny_train(cfg, out, **kw):

    return train(cfg, out, val_dataset=tiny_val(cfg), progress=False, **kw)  # the default (embedded) dataset


@pytest.mark.parametrize("run", [DEVICE_RUN, JPEG_RUN], ids=["philox-noise-rain", "diffjpeg"])
def test_device_synthesis_trains_the_loaders_run_and_resumes_exactly(tmp_path, run):

    loader = _tiny_train(_tiny_cfg(run=run), tmp_path / "loader")
    cfg = _tiny_cfg("synthesis=device", run=run)
    full = _tiny_train(cfg, tmp_path / "full")
    # the same batches as the loader's (bit for bit on the CPU for these tasks), so the same run
    assert [h["loss"] for h in full.history] == [h["loss"] for h in loader.history]
    a, ref = load_checkpoint(full.checkpoint), load_checkpoint(loader.checkpoint)
    assert same_state(a["model"], ref["model"]) and a["config"]["synthesis"] == "device"
    assert a["config"]["jpeg_codec"] == cfg.jpeg_codec and a["config"]["stream"] == cfg.stream
    # training moved the loss
    losses = [h["loss"] for h in full.history]
    assert sum(losses[-2:]) < 0.8 * sum(losses[:2])
    # resume equals the uninterrupted run, bit for bit
    _tiny_train(cfg, tmp_path / "part", stop_after=4)
    torch.manual_seed(5)
    done = _tiny_train(cfg, tmp_path / "part", resume=True)
    b = load_checkpoint(done.checkpoint)
    assert same_state(a["model"], b["model"]) and same_state(a["optimizer"], b["optimizer"])
    assert [h["loss"] for h in full.history] == [h["loss"] for h in done.history]


def test_synthesis_is_run_defining_and_has_a_train_flag(tmp_path):

    cfg = _tiny_cfg("synthesis=device")
    _tiny_train(cfg, tmp_path / "run", stop_after=2)
    with pytest.raises(CheckpointMismatchError, match="synthesis: 'device' in the checkpoint, 'loader' requested"):
        _tiny_train(cfg.replace(synthesis="loader"), tmp_path / "run", resume=True)
    out = tmp_path / "cli"
    sets = [a for kv in [*TINY, "order=NL", "periods=2", "period_iters=1"] for a in ("--set", kv)]
    assert main(["train", "--config", "cpu_demo", *sets, "--output", str(out), "--no-progress",
                 "--synthesis", "device"]) == 0  # fmt: skip
    assert load_checkpoint(out / "checkpoint.pt")["config"]["synthesis"] == "device"


def test_packed_runs_degrade_deferred_items_too(tmp_path):

    def pack(synthesis: str) -> list:
        cfgs = [_tiny_cfg(f"synthesis={synthesis}", f"seed={k}", "periods=1") for k in (0, 1)]
        outs = [tmp_path / f"{synthesis}{k}" for k in (0, 1)]
        return train_packed(cfgs, outs, val_datasets=[tiny_val(c) for c in cfgs], progress=False)

    loader, device = pack("loader"), pack("device")
    for a, b in zip(loader, device):
        assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_synthesis_on_cuda_gives_the_cpus_batches_within_one_level():
    _, device = _loaders("philox")
    batch = next(iter(device))
    cpu, gpu = degrade_deferred(batch, "cpu"), degrade_deferred(batch, "cuda")
    assert gpu.device.type == "cuda"
    diff = (gpu.cpu() - cpu).abs()
    assert float(diff.max()) <= 1 / 255 + 1e-6 and float((diff > 0).float().mean()) <= 1e-3
    rain = batch["task"] == 4  # the Philox rain: the same streak layer on both devices
    assert torch.equal(gpu.cpu()[rain], cpu[rain])


def test_evaluate_degrades_the_deferred_items_of_a_device_synthesis_set():
    from mio_strategies.harness import build_restorer, evaluate

    restorer = build_restorer("srresnet_tiny", None, backbone_kwargs={"num_feat": 4, "num_block": 1}, seed=0)
    kw = dict(tasks="NRL", patch_size=24, augment=False, seed=4, stream="philox")
    loader = evaluate(restorer, MiODataset(_images(2, 40), **kw), device="cpu", progress=False)
    device = evaluate(restorer, MiODataset(_images(2, 40), synthesis="device", **kw), device="cpu", progress=False)
    assert device.per_task() == loader.per_task()  # the same degraded inputs, not the GT
