"""The ``jpeg_codec`` key of the harness: it changes the training data, is validated, recorded, run-defining,
and has a ``train`` flag. (A device run with ``jpeg_codec: diffjpeg`` equals the loader's, moves the loss and
resumes exactly: ``test_harness_device_synthesis.py``.)"""

from __future__ import annotations

import pytest
import torch

from mio_strategies.checkpoints import CheckpointMismatchError
from mio_strategies.cli import main
from mio_strategies.harness import load_checkpoint, load_config, train
from tests.harness.test_harness_device_synthesis import JPEG_RUN  # a tiny run of JPEG and low light
from tests.tiny_runs import TINY, tiny_val


def _cfg(*extra: str):
    return load_config("cpu_demo", [*TINY, *JPEG_RUN, *extra])


def _train(cfg, out, **kw):
    return train(cfg, out, val_dataset=tiny_val(cfg), progress=False, **kw)  # the default (embedded) dataset


def test_the_codec_changes_the_training_data():
    from mio_strategies.harness._loop import default_dataset

    cfg = _cfg("order=J", "periods=1")
    dj, pil = default_dataset(cfg, 1), default_dataset(cfg.replace(jpeg_codec=None), 1)
    assert dj.jpeg_codec == "diffjpeg" and pil.jpeg_codec is None
    assert torch.equal(dj[0]["gt"], pil[0]["gt"]) and not torch.equal(dj[0]["lq"], pil[0]["lq"])


def test_jpeg_codec_is_run_defining_and_has_a_train_flag(tmp_path):
    cfg = _cfg("synthesis=device", "periods=1")
    _train(cfg, tmp_path / "run", stop_after=2)
    with pytest.raises(CheckpointMismatchError, match="jpeg_codec: 'diffjpeg' in the checkpoint, None requested"):
        _train(cfg.replace(jpeg_codec=None), tmp_path / "run", resume=True)
    out = tmp_path / "cli"
    sets = [a for kv in [*TINY, "order=JL", "periods=2", "period_iters=1"] for a in ("--set", kv)]
    assert main(["train", "--config", "cpu_demo", *sets, "--output", str(out), "--no-progress",
                 "--synthesis", "device", "--jpeg-codec", "diffjpeg"]) == 0  # fmt: skip
    assert load_checkpoint(out / "checkpoint.pt")["config"]["jpeg_codec"] == "diffjpeg"


def test_jpeg_codec_values_are_validated_naming_the_fix(capsys):
    with pytest.raises(ValueError, match=r"unknown jpeg_codec 'jpg': valid values are \['pillow', 'diffjpeg'\]"):
        load_config("cpu_demo", ["jpeg_codec=jpg"])
    with pytest.raises(ValueError, match="jpeg_codec 'pillow' with data_implementation 'reference'"):
        load_config("cpu_demo", ["jpeg_codec=pillow", "data_implementation=reference"])
    with pytest.raises(
        ValueError, match="protocol 'three-task' reads its degraded training images from its folders: leave jpeg_codec"
    ):
        load_config("cpu_demo", ["jpeg_codec=diffjpeg", "protocol=three-task", "protocol_root=/nonexistent"])
    with pytest.raises(
        ValueError, match="use synthesis 'loader' with it .*data_implementation 'library' with jpeg_codec 'diffjpeg'"
    ):
        load_config("cpu_demo", ["synthesis=device", "data_implementation=reference"])
    assert load_config("cpu_demo").jpeg_codec is None
    assert load_config("cpu_demo", ["data_implementation=reference", "jpeg_codec=diffjpeg"]).jpeg_codec == "diffjpeg"
    with pytest.raises(SystemExit):
        main(["train", "--jpeg-codec", "jpg"])
    err = capsys.readouterr().err
    assert "--jpeg-codec: invalid choice: 'jpg'" in err and "pillow" in err and "diffjpeg" in err


def test_null_stream_and_codec_resume_as_what_they_mean():
    """``stream: null`` is the default stream and ``jpeg_codec: null`` the data implementation's codec: the same
    data, so a run started with one resumes with the other; another stream or codec is still refused."""
    from mio_strategies.harness._resume import check_compatible

    def requested(*sets):
        return load_config("cpu_demo", list(sets)).to_dict()

    def ckpt(*sets):
        return {"config": requested(*sets)}

    check_compatible(ckpt(), requested("stream=torch", "jpeg_codec=pillow"), resume=True)
    check_compatible(ckpt("stream=torch", "jpeg_codec=pillow"), requested(), resume=True)
    check_compatible(
        ckpt("data_implementation=reference"),
        requested("data_implementation=reference", "jpeg_codec=diffjpeg"),
        resume=True,
    )
    with pytest.raises(CheckpointMismatchError, match="stream: None in the checkpoint, 'philox' requested"):
        check_compatible(ckpt(), requested("stream=philox"), resume=True)
    with pytest.raises(CheckpointMismatchError, match="jpeg_codec: None in the checkpoint, 'diffjpeg' requested"):
        check_compatible(ckpt(), requested("jpeg_codec=diffjpeg"), resume=True)
