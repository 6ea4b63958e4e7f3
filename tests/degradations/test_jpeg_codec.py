"""The JPEG codec as a parameter of a JPEG draw: ``codec="diffjpeg"`` recorded, replayed, versioned (params
without a codec replay Pillow), batched, and its interplay with ``implementation="reference"``."""

from __future__ import annotations

import pytest
import torch

from mio_strategies.degradations import (
    JPEG_CODECS,
    DegradationPipeline,
    apply_degradation,
    degrade,
    jpeg_compress,
    jpeg_diffjpeg,
    sample_params,
)


def _images(b: int = 4, size: int = 40) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_diffjpeg_codec_is_recorded_in_params_and_replays_exactly():
    x = _images()
    y, p = degrade(x, "jpeg", generator=torch.Generator().manual_seed(1), codec="diffjpeg")
    assert p["codec"] == "diffjpeg" and sorted(p) == ["codec", "quality"]
    assert torch.equal(degrade(x, "jpeg", params=p)[0], y)  # replay from the recorded params
    assert torch.equal(apply_degradation(x, "jpeg", p), y)
    assert torch.equal(y, jpeg_diffjpeg(x, p["quality"]))  # it is the DiffJPEG model
    assert torch.equal(y, torch.round(y * 255) / 255)  # on 8-bit levels, like every degradation


def test_the_codec_changes_no_draw_only_the_image():
    x = _images()
    yd, pd = degrade(x, "jpeg", generator=torch.Generator().manual_seed(1), codec="diffjpeg")
    yp, pp = degrade(x, "jpeg", generator=torch.Generator().manual_seed(1))
    assert torch.equal(pd["quality"], pp["quality"])
    assert not torch.equal(yd, yp)  # another codec, other images


def test_params_without_a_codec_replay_pillow_bit_for_bit():
    x = _images()
    old = {"quality": torch.tensor([30, 45, 55, 70])}  # as recorded before codecs existed
    y = degrade(x, "jpeg", params=old)[0]
    assert torch.equal(y, jpeg_compress(x, old["quality"]))  # Pillow's libjpeg
    assert torch.equal(apply_degradation(x, "jpeg", {**old, "codec": "pillow"}), y)
    # sampling with the Pillow codec (named or not) records nothing: its params are the old ones
    for codec in (None, "pillow"):
        p = sample_params("jpeg", 3, generator=torch.Generator().manual_seed(2), codec=codec)
        assert sorted(p) == ["quality"]


def test_diffjpeg_batched_equals_one_image_at_a_time_bit_for_bit():
    x = _images(6, 48)
    y, p = degrade(x, "jpeg", generator=torch.Generator().manual_seed(3), codec="diffjpeg")
    one = torch.cat([apply_degradation(x[i : i + 1], "jpeg", {"quality": p["quality"][i], "codec": "diffjpeg"})
                     for i in range(6)])  # fmt: skip
    assert torch.equal(one, y)


def test_codec_with_the_reference_implementation_diffjpeg_is_the_same_pillow_is_refused():
    x = _images()
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    ref, p_ref = degrade(x, "jpeg", generator=g(), implementation="reference")
    lib, p_lib = degrade(x, "jpeg", generator=g(), codec="diffjpeg")
    both, p_both = degrade(x, "jpeg", generator=g(), implementation="reference", codec="diffjpeg")
    assert torch.equal(ref, lib) and torch.equal(ref, both)
    assert "codec" not in p_ref and p_both["codec"] == "diffjpeg"
    assert torch.equal(degrade(x, "jpeg", params=p_lib, implementation="reference")[0], ref)
    with pytest.raises(ValueError, match="implementation='reference' compresses JPEG with its own codec, DiffJPEG"):
        degrade(x, "jpeg", implementation="reference", codec="pillow")
    with pytest.raises(ValueError, match="codec 'pillow' was asked for .*use implementation='library' for Pillow"):
        apply_degradation(x, "jpeg", {"quality": 50, "codec": "pillow"}, implementation="reference")


def test_bad_codecs_are_refused_naming_the_value_and_the_choices():
    x = _images(2)
    valid = r"valid JPEG codecs are \['pillow', 'diffjpeg'\]"
    assert JPEG_CODECS == ("pillow", "diffjpeg")
    with pytest.raises(ValueError, match=f"unknown JPEG codec 'libjpeg': .*{valid}"):
        degrade(x, "jpeg", codec="libjpeg")
    with pytest.raises(ValueError, match=f"unknown JPEG codec 'DiffJPEG': did you mean 'diffjpeg'.*{valid}"):
        sample_params("jpeg", 2, codec="DiffJPEG")
    with pytest.raises(ValueError, match=f"unknown JPEG codec 3: .*{valid}"):
        DegradationPipeline("BJ", codec=3)
    with pytest.raises(ValueError, match=f"params for task 'jpeg': unknown JPEG codec 'jpg'; {valid}"):
        apply_degradation(x, "jpeg", {"quality": 50, "codec": "jpg"})
    with pytest.raises(ValueError, match=r"unexpected keys \['codec'\]; expected exactly \['gamma'\]"):
        apply_degradation(x, "lowlight", {"gamma": 2.0, "codec": "diffjpeg"})
    with pytest.raises(
        ValueError, match="codec='diffjpeg' with params: a replay uses the JPEG codec its params record"
    ):
        degrade(x, "jpeg", params={"quality": 50}, codec="diffjpeg")
    # DiffJPEG divides by zero at quality 100: a range reaching it is refused when sampling, not mid-training
    with pytest.raises(ValueError, match=r"range of jpeg.quality \(90, 100\) reaches 100.*within \[1, 99\]"):
        sample_params("jpeg", 2, ranges={"quality": (90, 100)}, codec="diffjpeg")
    with pytest.raises(ValueError, match="reaches 100"):
        DegradationPipeline("J", ranges={"jpeg": {"quality": (90, 100)}}, codec="diffjpeg")
    assert sample_params("jpeg", 1, ranges={"quality": (90, 100)})["quality"] >= 90  # Pillow takes 100


def test_other_tasks_ignore_the_codec_and_pipelines_record_it_per_jpeg_stage():
    x = _images(2)
    y, p = degrade(x, "blur", generator=torch.Generator().manual_seed(5), codec="diffjpeg")
    assert "codec" not in p and torch.equal(y, degrade(x, "blur", generator=torch.Generator().manual_seed(5))[0])
    pipe = DegradationPipeline("BJ", codec="diffjpeg")
    y, params = pipe(x, generator=torch.Generator().manual_seed(6))
    assert "codec" not in params[0] and params[1]["codec"] == "diffjpeg"
    assert torch.equal(pipe(x, params=params)[0], y)
    plain = DegradationPipeline("BJ")(x, params=[params[0], {"quality": params[1]["quality"]}])[0]
    assert not torch.equal(plain, y)  # the recorded codec, not the pipeline's default, decides a replay
