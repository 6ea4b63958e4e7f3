"""Guarantees of mio_strategies.degradations: presets, ranges, replay, determinism, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import real_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import mio_strategies.degradations as D
from mio_strategies.degradations import (
    PARAM_BOUNDS,
    PRESETS,
    TASK_PARAMS,
    DegradationPipeline,
    apply_degradation,
    degrade,
    degrade_sequence,
    estimate_depth,
    load_depth,
    quantize_8bit,
    sample_params,
)
from mio_strategies.tasks import TASK_NAMES, UnknownTaskError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def on_8bit_levels(x: torch.Tensor) -> bool:
    return bool(torch.equal(x, quantize_8bit(x)))


def param_names(task: str) -> list[str]:
    return [s.name for s in TASK_PARAMS[task]]


# ------------------------------------------------------------------------------------------- presets
def test_presets_hold_the_reference_ranges():
    assert PRESETS["in"]["sr"] == {"scale": (4, 4)} and PRESETS["out"]["sr"]["scale"][0] > 4
    assert PRESETS["in"]["blur"] == {"sigma": (1.0, 3.0), "kernel_size": (7, 21)}
    assert PRESETS["out"]["blur"]["sigma"] == (3.0, 5.0)
    assert PRESETS["in"]["noise"]["sigma"] == (15.0, 50.0) and PRESETS["out"]["noise"]["sigma"] == (50.0, 70.0)
    assert PRESETS["in"]["jpeg"]["quality"] == (30, 70) and PRESETS["out"]["jpeg"]["quality"] == (10, 30)
    assert PRESETS["in"]["rain"] == {"amount": (50, 100), "length": (20, 40), "angle": (-45, 44), "width": (3, 11)}
    assert PRESETS["out"]["rain"]["amount"] == (100, 150)
    assert PRESETS["in"]["haze"] == {"airlight": (0.8, 1.0), "beta": (0.5, 2.5)}
    assert PRESETS["out"]["haze"]["beta"] == (2.5, 3.0)
    assert PRESETS["in"]["lowlight"]["gamma"] == (1.0, 3.0) and PRESETS["out"]["lowlight"]["gamma"] == (3.0, 4.0)
    for preset in PRESETS.values():
        assert set(preset) == set(TASK_NAMES)
        for task, rng in preset.items():
            for name, (lo, hi) in rng.items():
                blo, bhi = PARAM_BOUNDS[task][name]
                assert blo <= lo <= hi <= bhi, (task, name)


@pytest.mark.parametrize("preset", ["in", "out"])
@pytest.mark.parametrize("task", TASK_NAMES)
def test_every_task_and_preset_degrades_real_images_within_ranges(task, preset):
    x = real_batch(3, 48)
    y, params = degrade(x, task, preset=preset, generator=gen(7))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0 and on_8bit_levels(y)
    assert sorted(params) == sorted(param_names(task))
    for spec in TASK_PARAMS[task]:
        v = params[spec.name]
        assert v.shape == (3,) and v.device.type == "cpu"
        assert v.dtype == (torch.int64 if spec.is_integer else torch.float64)
        if spec.kind != "seed":
            lo, hi = PRESETS[preset][task][spec.name]
            assert bool(((v >= lo) & (v <= hi)).all()), (spec.name, v)
    # every degradation visibly changes each image (mean absolute change of at least half a level)
    change = (y - quantize_8bit(x)).abs().mean(dim=(1, 2, 3))
    assert bool((change > 0.5 / 255).all()), change


def test_out_preset_is_harder_than_in_preset():
    x = real_batch(4, 48)
    for task in ("blur", "noise", "jpeg", "lowlight", "sr"):
        err = {p: float((degrade(x, task, preset=p, generator=gen(3))[0] - x).pow(2).mean()) for p in ("in", "out")}
        assert err["out"] > err["in"], task


# ------------------------------------------------------------------------------------------- hypothesis
def _range_strategy(task: str):
    """Sub-ranges inside the physical bounds (integer ends for integer params; odd params contain an odd)."""
    parts = {}
    for spec in TASK_PARAMS[task]:
        if spec.kind == "seed":
            continue
        lo, hi = spec.bounds
        if spec.is_integer:
            pair = st.tuples(st.integers(int(lo), int(hi)), st.integers(int(lo), int(hi))).map(sorted)
            if spec.kind == "odd":
                pair = pair.filter(lambda p: p[1] > p[0] or p[0] % 2 == 1)
        else:
            fl = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
            pair = st.tuples(fl, fl).map(sorted)
        parts[spec.name] = pair.map(tuple)
    return st.fixed_dictionaries({}, optional=parts)


@st.composite
def task_and_ranges(draw):
    task = draw(st.sampled_from(TASK_NAMES))
    return task, draw(_range_strategy(task))


@settings(max_examples=60, deadline=None)
@given(tr=task_and_ranges(), preset=st.sampled_from(["in", "out"]), n=st.integers(1, 5), seed=st.integers(0, 2**32))
def test_sampled_params_stay_inside_their_ranges(tr, preset, n, seed):
    task, ranges = tr
    params = sample_params(task, n, preset=preset, generator=gen(seed), ranges=ranges)
    for spec in TASK_PARAMS[task]:
        v = params[spec.name]
        assert v.shape == (n,)
        lo, hi = ranges.get(spec.name, PRESETS[preset][task].get(spec.name, spec.bounds))
        assert bool(((v >= lo) & (v <= hi)).all()), (spec.name, v, lo, hi)
        if spec.kind == "odd":
            assert bool((v % 2 == 1).all())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    task=st.sampled_from(TASK_NAMES),
    preset=st.sampled_from(["in", "out"]),
    h=st.integers(8, 28),
    w=st.integers(8, 28),
    seed=st.integers(0, 2**32),
)
def test_outputs_are_in_unit_range_on_8bit_levels_for_any_size(task, preset, h, w, seed):
    x = torch.rand(2, 3, h, w, generator=gen(seed))
    y, params = degrade(x, task, preset=preset, generator=gen(seed + 1))
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert on_8bit_levels(y)
    assert torch.equal(apply_degradation(x, task, params), y)


# ------------------------------------------------------------------------------------------- replay
@pytest.mark.parametrize("task", TASK_NAMES)
def test_returned_params_replay_output_bit_exactly(task):
    x = real_batch(3, 40)
    y, params = degrade(x, task, generator=gen(11))
    assert torch.equal(degrade(x, task, params=params)[0], y)
    assert torch.equal(apply_degradation(x, task, params), y)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_call_without_generator_is_still_replayable(task):
    x = real_batch(2, 32)
    y, params = degrade(x, task)
    assert torch.equal(apply_degradation(x, task, params), y)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_same_seed_same_output_and_different_seed_different_output(task):
    x = real_batch(2, 40)
    a, pa = degrade(x, task, generator=gen(5))
    b, pb = degrade(x, task, generator=gen(5))
    c, _ = degrade(x, task, generator=gen(6))
    assert torch.equal(a, b) and all(torch.equal(pa[k], pb[k]) for k in pa)
    if task == "sr":  # the presets fix the scale: nothing is random
        assert torch.equal(a, c)
    else:
        assert not torch.equal(a, c)


def test_fresh_seeds_differ_between_calls_without_generator():
    x = real_batch(1, 32)
    assert not torch.equal(degrade(x, "noise")[0], degrade(x, "noise")[0])


def test_sampling_does_not_touch_the_global_rng():
    x = real_batch(2, 32)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    for task in TASK_NAMES:
        degrade(x, task, generator=gen(1))
        degrade(x, task)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_a_samples_result_does_not_depend_on_its_batch(task):
    x = real_batch(3, 40)
    y, params = degrade(x, task, generator=gen(2))
    for i in range(3):
        single = apply_degradation(x[i : i + 1], task, {k: v[i : i + 1] for k, v in params.items()})
        if task == "blur":  # kernels are zero-padded to the batch's largest: float rounding may differ on ties
            diff = (single[0] - y[i]).abs()
            assert float(diff.max()) <= 1.0 / 255 + 1e-6 and float((diff > 0).float().mean()) < 0.01
        else:
            assert torch.equal(single[0], y[i])


def test_float64_and_float16_inputs_keep_their_dtype_and_agree_with_float32():
    x = real_batch(2, 32)
    for task in TASK_NAMES:
        y32, p = degrade(x, task, generator=gen(4))
        for dt in (torch.float64, torch.float16):
            y = apply_degradation(x.to(dt), task, p)
            assert y.dtype == dt
            diff = (y.float() - y32).abs()
            assert float(diff.mean()) < 0.5 / 255, (task, dt)


def test_sampled_params_are_cpu_tensors_and_a_function_of_the_generator_seed():
    # CPU-only: params live on the CPU and depend only on the generator's state (the cross-device case,
    # a CPU generator with CUDA images and a CUDA generator with CPU images, is tested under CUDA below)
    for task in TASK_NAMES:
        p = sample_params(task, 3, generator=torch.Generator(device="cpu").manual_seed(5))
        q = sample_params(task, 3, generator=torch.Generator(device="cpu").manual_seed(5))
        assert p and all(v.device.type == "cpu" and v.shape == (3,) for v in p.values()), task
        assert all(torch.equal(p[k], q[k]) for k in p), task
    r = sample_params("noise", 3, generator=torch.Generator(device="cpu").manual_seed(6))
    assert not torch.equal(r["sigma"], sample_params("noise", 3, generator=gen(5))["sigma"])


def test_numbers_broadcast_over_the_batch_in_params():
    x = real_batch(2, 32)
    y = apply_degradation(x, "lowlight", {"gamma": 2.0})
    assert torch.equal(y, D.lowlight(x, torch.tensor([2.0, 2.0])))


def test_sr_with_mixed_scales_equals_per_sample_sr():
    x = real_batch(2, 48)
    y = D.bicubic_sr(x, torch.tensor([2, 4]))
    assert torch.equal(y[0], D.bicubic_sr(x[:1], 2)[0]) and torch.equal(y[1], D.bicubic_sr(x[1:], 4)[0])


def test_custom_ranges_are_used():
    p = sample_params("noise", 64, generator=gen(0), ranges={"sigma": (5.0, 6.0)})
    assert float(p["sigma"].min()) >= 5.0 and float(p["sigma"].max()) <= 6.0
    p = sample_params("blur", 64, generator=gen(0), ranges={"kernel_size": (9, 9)})
    assert bool((p["kernel_size"] == 9).all())


# ------------------------------------------------------------------------------------------- pipeline
def test_pipeline_replays_and_equals_the_stages_applied_in_order():
    x = real_batch(2, 40)
    y, params = degrade_sequence(x, "BNJ", generator=gen(9))
    assert len(params) == 3 and sorted(params[1]) == ["seed", "sigma"]
    assert torch.equal(degrade_sequence(x, "BNJ", params=params)[0], y)
    manual = x
    for task, p in zip(("blur", "noise", "jpeg"), params):
        manual = apply_degradation(manual, task, p)
    assert torch.equal(manual, y)
    assert on_8bit_levels(y)


def test_pipeline_samples_stages_from_one_generator_in_order():
    pipe = DegradationPipeline(["haze", "lowlight"], preset="out")
    a = pipe.sample_params(3, generator=gen(1))
    g = gen(1)
    b = [sample_params("haze", 3, preset="out", generator=g), sample_params("lowlight", 3, preset="out", generator=g)]
    assert all(torch.equal(a[i][k], b[i][k]) for i in range(2) for k in a[i])


def test_pipeline_allows_repeated_tasks_and_per_task_ranges():
    pipe = DegradationPipeline("NN", ranges={"noise": {"sigma": (1.0, 2.0)}})
    x = real_batch(1, 32)
    y, params = pipe(x, generator=gen(0))
    assert all(float(p["sigma"].max()) <= 2.0 for p in params)
    assert not torch.equal(params[0]["seed"], params[1]["seed"])
    assert torch.equal(pipe.apply(x, params), y)


def test_pipeline_passes_depth_to_haze_stages():
    x = real_batch(1, 32)
    depth = torch.linspace(0, 1, 32).reshape(32, 1).expand(32, 32)
    y, params = degrade_sequence(x, "HL", generator=gen(0), depth=depth)
    assert torch.equal(y, D.lowlight(D.add_haze(x, depth, params[0]["airlight"], params[0]["beta"]), params[1]["gamma"]))


def test_pipeline_rejects_wrong_number_of_stage_params_before_running():
    x = real_batch(1, 32)
    _, params = degrade_sequence(x, "BN", generator=gen(0))
    with pytest.raises(ValueError, match=r"params has 1 stages but the pipeline has 2 \(BN\)"):
        degrade_sequence(x, "BN", params=params[:1])
    with pytest.raises(ValueError, match=r"missing keys \['seed'\]"):
        degrade_sequence(x, "BN", params=[params[0], {"sigma": params[1]["sigma"]}])


def test_pipeline_rejects_ranges_for_a_task_not_in_it():
    with pytest.raises(ValueError, match=r"ranges given for task 'jpeg', which is not in the sequence"):
        DegradationPipeline("BN", ranges={"J": {"quality": (10, 20)}})


# ------------------------------------------------------------------------------------------- depth
def test_estimate_depth_is_deterministic_normalised_and_farther_at_the_top():
    x = real_batch(2, 40)
    d = estimate_depth(x)
    assert d.shape == (2, 1, 40, 40) and torch.equal(d, estimate_depth(x))
    assert float(d.min()) > 0 and torch.allclose(d.amax(dim=(2, 3)), torch.ones(2, 1))
    flat = estimate_depth(torch.full((1, 3, 40, 40), 0.5))
    assert bool((flat[0, 0, :-1, 0] > flat[0, 0, 1:, 0]).all())


def test_haze_without_depth_uses_the_default_estimate():
    x = real_batch(2, 32)
    y, p = degrade(x, "haze", generator=gen(0))
    assert torch.equal(y, D.add_haze(x, estimate_depth(x), p["airlight"], p["beta"]))


def test_load_depth_reads_npy_png_and_the_reference_mat(tmp_path):
    from scipy.io import savemat

    small = np.arange(1, 17, dtype=np.float64).reshape(4, 4)
    savemat(tmp_path / "d.mat", {"depth": small})
    d = load_depth(tmp_path / "d.mat")
    assert d.shape == (1, 1, 16, 16) and float(d.max()) == pytest.approx(1.0)
    assert float(d[0, 0, -1, -1]) > float(d[0, 0, 0, 0])  # upsampled x4, order kept
    np.save(tmp_path / "d.npy", small)
    assert torch.equal(load_depth(tmp_path / "d.npy"), torch.from_numpy(small).float()[None, None])
    Image.fromarray(np.full((5, 6), 51, np.uint8)).save(tmp_path / "d8.png")
    assert torch.allclose(load_depth(tmp_path / "d8.png"), torch.full((1, 1, 5, 6), 0.2))
    Image.fromarray(np.full((5, 6), 65535 // 5, np.uint16)).save(tmp_path / "d16.png")
    assert torch.allclose(load_depth(tmp_path / "d16.png"), torch.full((1, 1, 5, 6), 0.2), atol=1e-4)
    assert load_depth(tmp_path / "d.npy", size=(8, 12)).shape == (1, 1, 8, 12)


def test_haze_accepts_a_depth_path(tmp_path):
    x = real_batch(1, 16)
    depth = np.linspace(0, 1, 256).reshape(16, 16)
    np.save(tmp_path / "d.npy", depth)
    y, p = degrade(x, "haze", generator=gen(0), depth=tmp_path / "d.npy")
    assert torch.equal(y, D.add_haze(x, torch.from_numpy(depth).float(), p["airlight"], p["beta"]))


def test_depth_of_another_size_is_rejected_with_both_shapes():
    x = real_batch(2, 32)
    with pytest.raises(ValueError, match=r"depth map of shape \(16, 16\) does not match .*\(32, 32\)"):
        degrade(x, "haze", depth=torch.ones(16, 16))


def test_depth_with_nan_or_negative_values_is_rejected():
    x = real_batch(1, 8)
    bad = torch.ones(8, 8)
    bad[2, 3] = float("nan")
    with pytest.raises(ValueError, match="depth map contains NaN or inf"):
        degrade(x, "haze", depth=bad)
    with pytest.raises(ValueError, match="negative values"):
        degrade(x, "haze", depth=-torch.ones(8, 8))


def test_depth_files_that_are_missing_or_corrupt_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npy does not exist"):
        load_depth(tmp_path / "nope.npy")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read depth map .*bad.png"):
        load_depth(tmp_path / "bad.png")
    np.save(tmp_path / "nan.npy", np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r"nan.npy contains NaN or inf"):
        load_depth(tmp_path / "nan.npy")


def test_depth_given_for_another_task_is_rejected():
    with pytest.raises(ValueError, match="depth is only used by the 'haze' task"):
        degrade(real_batch(1, 8), "blur", depth=torch.ones(8, 8))


# ------------------------------------------------------------------------------------------- bad input
def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(UnknownTaskError, match=r"unknown task 'snow'.*'sr' \(S, id 0\)"):
        degrade(real_batch(1, 8), "snow")
    with pytest.raises(UnknownTaskError):
        sample_params("X", 1)


def test_unknown_preset_lists_in_and_out():
    with pytest.raises(ValueError, match=r"unknown preset 'test': valid presets are 'in' .* and 'out'"):
        degrade(real_batch(1, 8), "blur", preset="test")


def test_params_with_missing_or_unexpected_keys_are_named():
    x = real_batch(2, 16)
    with pytest.raises(ValueError, match=r"missing keys \['width', 'seed'\].*expected exactly"):
        apply_degradation(x, "rain", {"amount": 60, "length": 30, "angle": 0})
    with pytest.raises(ValueError, match=r"unexpected keys \['sigmaa'\]"):
        apply_degradation(x, "lowlight", {"gamma": 2.0, "sigmaa": 1.0})


def test_params_with_wrong_batch_length_are_named():
    with pytest.raises(ValueError, match=r"noise.sigma must be a number or have shape \(2,\).*got shape \(3,\)"):
        apply_degradation(real_batch(2, 16), "noise", {"sigma": torch.ones(3) * 20, "seed": 0})


@pytest.mark.parametrize(
    ("task", "params", "pattern"),
    [
        ("noise", {"sigma": 300.0, "seed": 1}, r"noise.sigma = 300.0 is outside the valid bounds \[0, 255\]"),
        ("blur", {"sigma": 1.0, "kernel_size": 8}, r"blur.kernel_size must be odd, got 8"),
        ("jpeg", {"quality": 0}, r"jpeg.quality = 0 is outside the valid bounds \[1, 100\]"),
        ("jpeg", {"quality": 50.5}, r"jpeg.quality must be an integer, got 50.5"),
        ("lowlight", {"gamma": float("nan")}, r"lowlight.gamma = nan is outside the valid bounds"),
        ("haze", {"airlight": 1.5, "beta": 1.0}, r"haze.airlight = 1.5 is outside the valid bounds \[0, 1\]"),
        ("rain", {"amount": 60, "length": 100, "angle": 0, "width": 3, "seed": 0}, r"rain.length = 100 .*\[1, 99\]"),
        ("noise", {"sigma": 20.0, "seed": -1}, r"noise.seed = -1 is outside the valid bounds \[0, 9223372036854775807\]"),
    ],
)
def test_parameters_outside_their_bounds_are_rejected_with_the_bounds(task, params, pattern):
    with pytest.raises(ValueError, match=pattern):
        apply_degradation(real_batch(1, 32), task, params)


def test_explicit_functions_validate_their_parameters_too():
    with pytest.raises(ValueError, match=r"blur.sigma = 0.0 is outside the valid bounds \[0.1, 25\]"):
        D.gaussian_blur(real_batch(1, 16), sigma=0.0, kernel_size=7)


@pytest.mark.parametrize(
    ("ranges", "pattern"),
    [
        ({"sigma": (10.0, 300.0)}, r"range of noise.sigma \(10, 300\) is outside the valid bounds \[0, 255\]"),
        ({"sigma": (40.0, 20.0)}, r"range of noise.sigma has lo > hi: \(40, 20\)"),
        ({"sigmaa": (1.0, 2.0)}, r"unknown parameter 'sigmaa' for task 'noise': valid parameters are \['sigma', 'seed'\]"),
        ({"seed": (1, 2)}, r"noise.seed is drawn from the generator and has no range"),
        ({"sigma": 5.0}, r"range of noise.sigma must be a pair \(lo, hi\)"),
    ],
)
def test_bad_ranges_are_rejected_with_the_bounds(ranges, pattern):
    with pytest.raises(ValueError, match=pattern):
        degrade(real_batch(1, 16), "noise", generator=gen(0), ranges=ranges)


def test_integer_ranges_need_integer_ends_and_odd_ranges_an_odd_value():
    with pytest.raises(ValueError, match=r"range of jpeg.quality must have integer ends"):
        sample_params("jpeg", 1, ranges={"quality": (10.5, 20)})
    with pytest.raises(ValueError, match=r"range of blur.kernel_size \(8, 8\) contains no odd value"):
        sample_params("blur", 1, ranges={"kernel_size": (8, 8)})


def test_params_together_with_generator_is_rejected():
    x = real_batch(1, 16)
    _, p = degrade(x, "lowlight", generator=gen(0))
    with pytest.raises(ValueError, match="pass either params .* or generator/ranges .*, not both"):
        degrade(x, "lowlight", params=p, generator=gen(0))


@pytest.mark.parametrize(
    ("images", "exc", "pattern"),
    [
        ([[0.5]], TypeError, r"images must be a torch.Tensor of shape \(B, 3, H, W\).*got list"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), TypeError, r"float tensor .*got dtype torch.uint8; convert with images.float\(\) / 255"),
        (torch.zeros(3, 8, 8), ValueError, r"shape \(B, 3, H, W\), got \(3, 8, 8\); add a batch dimension with images.unsqueeze\(0\)"),
        (torch.zeros(1, 1, 8, 8), ValueError, r"got \(1, 1, 8, 8\); repeat grayscale to RGB"),
        (torch.zeros(1, 4, 8, 8), ValueError, r"got \(1, 4, 8, 8\); drop the alpha channel"),
        (torch.zeros(1, 8, 8, 3), ValueError, r"got \(1, 8, 8, 3\); move channels first"),
        (torch.full((1, 3, 8, 8), 255.0), ValueError, r"values in \[0, 1\], got min 255 max 255; scale 0-255 images with images / 255"),
        (torch.full((1, 3, 8, 8), -0.5), ValueError, r"got min -0.5 max -0.5"),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, r"\(contains NaN\)"),
        (torch.zeros(0, 3, 8, 8), ValueError, r"must be non-empty, got shape \(0, 3, 8, 8\)"),
    ],
)
def test_bad_images_are_rejected_with_shape_dtype_range_and_fix(images, exc, pattern):
    with pytest.raises(exc, match=pattern):
        degrade(images, "blur", generator=gen(0))


def test_images_smaller_than_the_sr_scale_are_rejected():
    with pytest.raises(ValueError, match=r"sr.scale 6 is larger than the image size \(H, W\) = \(5, 40\)"):
        degrade(torch.rand(1, 3, 5, 40), "sr", preset="out", generator=gen(0))


def test_bad_batch_size_and_generator_types_are_rejected():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        sample_params("blur", 0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
        sample_params("blur", 1, generator=0)


def test_quantize_8bit_rounds_and_clips():
    x = torch.tensor([-0.2, 0.0, 0.5, 0.999, 1.3])
    assert torch.equal(quantize_8bit(x), torch.tensor([0.0, 0.0, 128.0, 255.0, 255.0]) / 255.0)
    with pytest.raises(TypeError, match="quantize_8bit expects a float tensor"):
        quantize_8bit(torch.tensor([1, 2]))


# ------------------------------------------------------------------------------------------- CUDA
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")


@cuda
@pytest.mark.parametrize("task", TASK_NAMES)
def test_cuda_images_with_a_cpu_generator_replay_and_match_cpu(task):
    x = real_batch(3, 64)
    xc = x.cuda()
    y, params = degrade(xc, task, generator=gen(21))
    assert y.device == xc.device and y.dtype == xc.dtype and on_8bit_levels(y)
    assert torch.equal(apply_degradation(xc, task, params), y)
    ycpu = apply_degradation(x, task, params)
    diff = (y.cpu() - ycpu).abs()
    # the same 8-bit levels up to float rounding (k/255 computed on another device differs in the last bit),
    # with at most a few values one level apart where a rounding boundary falls between the two devices
    assert float(diff.max()) <= 1 / 255 + 1e-6 and float((diff > 1e-6).float().mean()) < 0.01
    yh = apply_degradation(xc.half(), task, params)
    assert yh.dtype == torch.float16 and float((yh.float() - y).abs().mean()) < 0.5 / 255


@cuda
@pytest.mark.parametrize("task", TASK_NAMES)
def test_generator_on_another_device_than_the_images_is_accepted(task):
    x = real_batch(2, 32)
    # a CPU generator with CUDA images, and a CUDA generator with CPU images
    for images, generator in ((x.cuda(), torch.Generator(device="cpu")), (x, torch.Generator(device="cuda"))):
        y, params = degrade(images, task, generator=generator.manual_seed(3))
        assert y.device == images.device, task
        assert all(v.device.type == "cpu" for v in params.values()), task
        assert torch.equal(apply_degradation(images, task, params), y), task


@cuda
def test_cuda_pipeline_moves_a_cpu_depth_map_to_the_device():
    x = real_batch(2, 32).cuda()
    depth = torch.linspace(0, 1, 32).reshape(32, 1).expand(32, 32)
    y, params = degrade_sequence(x, "HNJ", generator=gen(0), depth=depth)
    assert y.is_cuda and torch.equal(degrade_sequence(x, "HNJ", params=params, depth=depth)[0], y)
