"""implementation="reference": the official code's data path, checked against independent oracles.

The oracles are the operators the reference's data scripts call, called as they call them: basicsr's
``DiffJPEG(differentiable=False)`` and ``torch.nn.functional.interpolate(mode="bicubic")`` (and basicsr's
MATLAB ``imresize`` for the stored low-resolution test files), never the library's own output.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import real_batch

import mio_strategies.degradations as D
from mio_strategies.utils.basicsr_compat import import_basicsr


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.detach().double() - b.detach().double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _q8(x: torch.Tensor) -> torch.Tensor:
    """The reference scripts' rounding: ``torch.clamp((img * 255.0).round(), 0, 255) / 255.``"""
    return torch.clamp((x * 255.0).round(), 0, 255) / 255.0


def _assert_contract(ours: torch.Tensor, oracle: torch.Tensor) -> None:
    """At most one 8-bit level, on a small fraction of pixels, and PSNR >= 60 dB."""
    diff = (ours.detach().double() - oracle.detach().double()).abs() * 255
    assert float(diff.max()) <= 1.0 + 1e-6
    assert float((diff > 1e-6).double().mean()) < 0.001
    assert _psnr(ours, oracle) >= 60.0


# --------------------------------------------------------------------------------------------- jpeg
@pytest.mark.basicsr
@pytest.mark.parametrize("quality", [1, 10, 30, 49, 50, 51, 70, 90, 99])
def test_reference_jpeg_equals_basicsr_diffjpeg_at_any_quality(quality):
    jpeger = import_basicsr("utils.diffjpeg").DiffJPEG(differentiable=False)
    x = D.quantize_8bit(real_batch(3, 64))[..., :61, :53]  # sizes that are not multiples of 16: padding
    ours, params = D.degrade(x, "jpeg", params={"quality": quality}, implementation="reference")
    oracle = torch.cat([_q8(jpeger(torch.clamp(x[i : i + 1], 0, 1), quality=quality)) for i in range(3)])
    _assert_contract(ours, oracle)
    assert params["quality"].tolist() == [quality] * 3


@pytest.mark.basicsr
def test_reference_jpeg_compresses_a_batch_of_different_qualities_at_once_as_basicsr_does_one_by_one(generator):
    jpeger = import_basicsr("utils.diffjpeg").DiffJPEG(differentiable=False)
    x = D.quantize_8bit(real_batch(6, 48))
    ours, p = D.degrade(x, "jpeg", generator=generator, implementation="reference")
    assert len(set(p["quality"].tolist())) > 1
    oracle = torch.cat([_q8(jpeger(x[i : i + 1], quality=int(q))) for i, q in enumerate(p["quality"].tolist())])
    _assert_contract(ours, oracle)


def test_reference_jpeg_refuses_quality_100_where_diffjpeg_divides_by_zero():
    with pytest.raises(ValueError, match=r"quality 100 .* divides by zero"):
        D.degrade(torch.rand(1, 3, 16, 16), "jpeg", params={"quality": 100}, implementation="reference")


def test_reference_jpeg_differs_from_the_library_codec():
    x = D.quantize_8bit(real_batch(2, 64))
    lib = D.degrade(x, "jpeg", params={"quality": 40})[0]
    ref = D.degrade(x, "jpeg", params={"quality": 40}, implementation="reference")[0]
    assert 25.0 < _psnr(lib, ref) < 45.0  # two models of JPEG: close, not equal


# --------------------------------------------------------------------------------------------- sr
@pytest.mark.parametrize("size", [(64, 64), (62, 75)])
@pytest.mark.parametrize("scale", [2, 3, 4, 6])
def test_reference_sr_equals_the_training_scripts_interpolate_calls(size, scale):
    x = D.quantize_8bit(real_batch(2, 80))[..., : size[0], : size[1]]
    ours = D.degrade(x, "sr", params={"scale": scale}, implementation="reference")[0]
    h, w = size
    low = F.interpolate(x, scale_factor=1 / scale, mode="bicubic")  # no rounding of the low-resolution image
    oracle = _q8(F.interpolate(low, size=(h, w), mode="bicubic"))
    _assert_contract(ours, oracle)


def test_reference_sr_with_a_scale_per_image_treats_each_image_at_its_scale():
    x = D.quantize_8bit(real_batch(3, 48))
    ours = D.apply_degradation(x, "sr", {"scale": torch.tensor([2, 4, 2])}, implementation="reference")
    for i, s in enumerate([2, 4, 2]):
        assert torch.equal(ours[i], D.bicubic_sr_torch(x[i : i + 1], s)[0])


def test_reference_sr_is_not_the_library_sr_and_is_harder():
    x = D.quantize_8bit(real_batch(2, 128))
    lib = D.degrade(x, "sr", params={"scale": 4})[0]
    ref = D.degrade(x, "sr", params={"scale": 4}, implementation="reference")[0]
    assert _psnr(lib, ref) < 40.0
    assert _psnr(ref, x) < _psnr(lib, x)  # PyTorch bicubic without antialiasing loses more than MATLAB's


@pytest.mark.basicsr
@pytest.mark.parametrize("scale", [2, 4])
def test_stored_lr_test_path_is_matlab_imresize_stored_as_8_bit_then_pytorch_bicubic(scale):
    imresize = import_basicsr("utils.matlab_functions").imresize
    x = D.quantize_8bit(real_batch(2, 48))
    ours = D.bicubic_sr_stored_lr(x, scale)
    for i in range(2):
        low = _q8(imresize(x[i], 1.0 / scale))  # the stored x{scale} file
        oracle = _q8(F.interpolate(low[None], size=(low.shape[-2] * scale, low.shape[-1] * scale), mode="bicubic"))
        _assert_contract(ours[i : i + 1], oracle)


def test_stored_lr_test_path_refuses_sizes_that_are_not_multiples_of_the_scale():
    with pytest.raises(ValueError, match=r"multiples of the scale 4.*crop_to_multiple"):
        D.bicubic_sr_stored_lr(torch.rand(1, 3, 30, 32), 4)


# --------------------------------------------------------------------------------------------- others
@pytest.mark.parametrize("task", ["rain", "haze"])
def test_reference_rain_and_haze_crop_to_multiples_of_4_then_degrade_as_the_library(task):
    x = real_batch(2, 64)[..., :62, :59]
    p = D.sample_params(task, 2, generator=torch.Generator().manual_seed(3))
    depth = torch.rand(62, 59, generator=torch.Generator().manual_seed(4)) if task == "haze" else None
    ours = D.apply_degradation(x, task, p, depth=depth, implementation="reference")
    assert ours.shape == (2, 3, 60, 56)
    cropped_depth = None if depth is None else depth[:60, :56]
    assert torch.equal(ours, D.apply_degradation(x[..., :60, :56].contiguous(), task, p, depth=cropped_depth))


@pytest.mark.parametrize("task", ["blur", "noise", "lowlight"])
def test_blur_noise_and_lowlight_are_the_same_in_both_implementations(task):
    x = real_batch(2, 40)
    y, p = D.degrade(x, task, generator=torch.Generator().manual_seed(0))
    assert torch.equal(D.degrade(x, task, params=p, implementation="reference")[0], y)


def test_reference_outputs_replay_bit_exactly_from_their_params():
    x = real_batch(2, 48)
    for task in "SBNJRHL":
        y, p = D.degrade(x, task, generator=torch.Generator().manual_seed(1), implementation="reference")
        assert torch.equal(D.degrade(x, task, params=p, implementation="reference")[0], y)
        assert torch.equal(y, torch.round(y * 255) / 255)


def test_an_unknown_implementation_is_refused_naming_the_valid_ones():
    x = torch.rand(1, 3, 16, 16)
    for call in (
        lambda: D.degrade(x, "sr", implementation="matlab"),
        lambda: D.apply_degradation(x, "sr", {"scale": 2}, implementation="Reference"),
    ):
        with pytest.raises(ValueError, match=r"unknown implementation .*\['library', 'reference'\]"):
            call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
def test_reference_jpeg_and_sr_on_cuda_match_the_cpu():
    x = D.quantize_8bit(real_batch(4, 64))
    for task in ("jpeg", "sr"):
        y, p = D.degrade(x, task, generator=torch.Generator().manual_seed(0), implementation="reference")
        yc = D.degrade(x.cuda(), task, params=p, implementation="reference")[0]
        _assert_contract(yc.cpu(), y)


# --------------------------------------------------------------------------------------------- data
def test_reference_dataset_has_one_degraded_version_per_image_and_task_across_epochs():
    from mio_strategies.data import MiODataset, embedded_image_paths

    ds = MiODataset(embedded_image_paths()[:2], "SJ", patch_size=32, seed=0, repeat=2, implementation="reference")
    first = [ds[i]["params"] for i in range(len(ds))]
    ds.set_epoch(5)
    later = [ds[i]["params"] for i in range(len(ds))]
    assert first == later  # fixed per (image, task), as the reference's offline data
    # repeats of the same (image, task) share the parameters but crop elsewhere
    a, b = ds[1], ds[1 + 2 * 2]  # same image, same task, next repetition
    assert a["params"] == b["params"] and a["task"] == b["task"] and not torch.equal(a["gt"], b["gt"])


def test_reference_dataset_patches_are_crops_of_the_whole_degraded_image():
    from mio_strategies.data import MiODataset, embedded_image_paths, read_image

    path = embedded_image_paths()[0]
    ds = MiODataset([path], "J", patch_size=32, seed=3, augment=False, implementation="reference")
    item = ds[0]
    gt = D.crop_to_multiple(read_image(path))
    whole = D.degrade(gt[None], "jpeg", params={"quality": item["params"]["quality"]}, implementation="reference")[0][0]
    # find the patch in the GT, then compare the LQ with the same window of the whole degraded image
    hits = [(t, x) for t in range(gt.shape[1] - 31) for x in range(gt.shape[2] - 31)
            if torch.equal(gt[:, t, x : x + 32], item["gt"][:, 0]) and torch.equal(gt[:, t : t + 32, x : x + 32], item["gt"])]
    assert hits
    t, x = hits[0]
    assert torch.equal(item["lq"], whole[:, t : t + 32, x : x + 32])


def test_the_dataset_refuses_an_unknown_implementation():
    from mio_strategies.data import MiODataset, embedded_image_paths

    with pytest.raises(ValueError, match="unknown implementation 'official'"):
        MiODataset(embedded_image_paths(), implementation="official")


def test_reference_testset_crops_the_gt_uses_the_stored_lr_sr_path_and_records_it(tmp_path):
    from mio_strategies.data import build_testset, embedded_image_paths, read_image

    path = embedded_image_paths()[0]
    out = tmp_path / "set"
    build_testset([path], out, tasks="SJ", implementation="reference")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["implementation"] == "reference"
    gt = read_image(out / "GT" / f"{path.stem}.png")
    assert gt.shape[-2] % 4 == 0 and gt.shape[-1] % 4 == 0
    sr = read_image(out / "sr" / f"{path.stem}.png")
    scale = manifest["entries"][0]["params"]["scale"]
    assert torch.allclose(sr, D.bicubic_sr_stored_lr(gt[None], scale)[0], atol=1e-6)
    with pytest.raises(ValueError, match="composites are not part of the reference"):
        build_testset([path], tmp_path / "c", tasks="S", composites=["blur+noise"], implementation="reference")


def test_degrade_command_takes_implementation(tmp_path):
    from mio_strategies.cli import main

    out = tmp_path / "set"
    assert main(["degrade", "--output", str(out), "--tasks", "J", "--implementation", "reference"]) == 0
    assert json.loads((out / "manifest.json").read_text())["implementation"] == "reference"


# --------------------------------------------------------------------------------------------- profile
def test_reference_profile_fills_only_the_keys_a_config_does_not_set():
    from mio_strategies.harness import load_config

    cfg = load_config("srresnet", ["profile=reference", "strategy=S+EP"])
    assert (cfg.data_implementation, cfg.reset_optimizer_each_stage, cfg.prompt_init) == ("reference", True, "reference")
    assert (cfg.eval_weights, cfg.eval_task_source) == ("plain", "classifier")
    cfg = load_config("srresnet", ["profile=reference", "data.implementation=library", "eval_weights=ema"])
    assert cfg.data_implementation == "library" and cfg.eval_weights == "ema" and cfg.prompt_init == "reference"
    lib = load_config("srresnet")
    assert (lib.profile, lib.data_implementation, lib.prompt_init, lib.eval_weights) == ("library", "library", "library", "ema")


def test_data_implementation_is_read_from_a_nested_yaml_key(tmp_path):
    from mio_strategies.harness import load_config

    f = tmp_path / "c.yaml"
    f.write_text("base: mini_quick\ndata:\n  implementation: reference\n")
    assert load_config(f).data_implementation == "reference"
    f.write_text("base: mini_quick\ndata:\n  implementaton: reference\n")
    with pytest.raises(KeyError, match="'data' must be a mapping with the key 'implementation'"):
        load_config(f)


@pytest.mark.parametrize(("key", "value"), [("profile", "paper"), ("data_implementation", "matlab"),
                                            ("prompt_init", "zero"), ("eval_weights", "best")])
def test_bad_reference_keys_are_refused_naming_the_valid_values(key, value):
    from mio_strategies.harness import load_config

    with pytest.raises(ValueError, match=f"unknown {key} '{value}'"):
        load_config("mini_quick", [f"{key}={value}"])


def test_prompt_maps_need_an_explicit_prompt_strategy():
    from mio_strategies.harness import load_config

    with pytest.raises(ValueError, match="prompt_maps is for explicit prompts"):
        load_config("mini_quick", ["prompt_maps=maps.npy", "strategy=S+AP"])


def test_reference_profile_trains_validates_its_plain_weights_and_evaluates_with_the_classifier(tmp_path, capsys):
    from mio_strategies.cli import main
    from mio_strategies.data import build_testset, embedded_image_paths
    from mio_strategies.harness import load_config, train, train_classifier
    from mio_strategies.harness._train import load_restorer

    cfg = load_config("cpu_demo", [
        "profile=reference", "strategy=S+EP", "backbone=srresnet_tiny", "backbone_kwargs.num_feat=4",
        "backbone_kwargs.num_block=1", "periods=7", "period_iters=2", "batch_size=2", "patch_size=16",
        "val_size=24", "prompt_size=16", "ema_decay=0.9", "log_every=1",
    ])
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.finished and res.validation
    plain, cfg2, state = load_restorer(res.checkpoint, ema=None)
    assert cfg2.profile == "reference" and cfg2.data_implementation == "reference"
    ema, _, _ = load_restorer(res.checkpoint, ema=True)
    w = "backbone.conv_first.weight"
    assert not torch.equal(plain.backbone.state_dict()["conv_first.weight"], ema.backbone.state_dict()["conv_first.weight"]), w
    assert torch.equal(plain.backbone.state_dict()["conv_first.weight"], state["model"]["backbone"]["conv_first.weight"])

    # eval follows the run's profile: classifier-picked prompts (the package's shipped classifier when no
    # --classifier is given), plain weights
    testset = tmp_path / "set"
    build_testset([embedded_image_paths()[0]], testset, tasks="SJ", implementation="reference")
    args = ["eval", "--checkpoint", str(res.checkpoint), "--testset", str(testset)]
    assert main([*args, "--output", str(tmp_path / "e0")]) == 0
    out = capsys.readouterr().out
    assert "task classifier: the one shipped with the package" in out and "task-classifier accuracy" in out
    clf = train_classifier(tmp_path / "clf.pt", steps=2, batch_size=2, crop=18, width=4, progress=False,
                           device="cpu", arch="reference", implementation="reference")
    assert main([*args, "--classifier", str(clf.path), "--output", str(tmp_path / "e1")]) == 0
    out = capsys.readouterr().out
    assert "task-classifier accuracy" in out and "sr " in out and "jpeg " in out
    assert "(overall, then per task)" in (tmp_path / "e1" / "results.md").read_text()
    result = json.loads((tmp_path / "e1" / "results.json").read_text())["results"][0]
    assert set(result["classifier_accuracy_per_task"]) == {"sr", "jpeg"}
    assert main([*args, "--task-source", "given", "--output", str(tmp_path / "e2")]) == 0


# --------------------------------------------------------------------------------------------- model parts
def test_reference_classifier_has_leaky_relu_between_convs_and_nothing_after_the_last():
    from torch import nn

    from mio_strategies.prompts import TaskClassifier

    ref = TaskClassifier(width=8, arch="reference")
    layers = list(ref.features)
    assert isinstance(layers[-1], nn.Conv2d)
    acts = [m for m in layers if not isinstance(m, nn.Conv2d)]
    assert len(acts) == 4 and all(isinstance(a, nn.LeakyReLU) and a.negative_slope == 0.1 for a in acts)
    lib = TaskClassifier(width=8)
    assert isinstance(list(lib.features)[-1], nn.ReLU)
    # same parameters, so a state dict moves between the two
    ref.load_state_dict(lib.state_dict())
    with pytest.raises(ValueError, match="unknown classifier arch"):
        TaskClassifier(arch="paper")


def test_train_classifier_records_and_reloads_the_reference_arch(tmp_path):
    from mio_strategies.harness import load_classifier, train_classifier

    run = train_classifier(tmp_path / "c.pt", steps=2, batch_size=2, crop=18, width=4, progress=False,
                           device="cpu", arch="reference", implementation="reference")
    clf = load_classifier(run.path)
    assert clf.arch == "reference"
    x = torch.rand(2, 3, 18, 18)
    assert torch.equal(clf(x), run.classifier.cpu().eval()(x))


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_reference_prompt_maps_are_reordered_to_the_library_task_ids(tmp_path, suffix):
    from mio_strategies.prompts import ExplicitPrompt, load_reference_prompt_maps
    from mio_strategies.tasks import TASKS

    arr = np.stack([np.full((128, 128), i, dtype=np.float64) for i in range(7)])  # map i holds the value i
    f = tmp_path / f"type7{suffix}"
    np.save(f, arr) if suffix == ".npy" else torch.save(torch.from_numpy(arr), f)
    maps = load_reference_prompt_maps(f)
    assert maps.shape == (7, 1, 128, 128) and maps.dtype == torch.float32
    ref_order = "BNJRHLS"  # blur, noise, jpeg, rain, haze, dark, sr in the reference's file
    assert [int(maps[t.id, 0, 0, 0]) for t in TASKS] == [ref_order.index(t.letter) for t in TASKS]
    src = ExplicitPrompt(maps=maps)
    assert torch.equal(src.maps, maps) and src.size == 128


def test_a_run_with_reference_prompt_maps_trains_on_them_and_loads_without_the_file(tmp_path):
    from mio_strategies.harness import load_config, train
    from mio_strategies.harness._train import load_restorer
    from mio_strategies.prompts import load_reference_prompt_maps

    f = tmp_path / "type7.npy"
    np.save(f, np.random.default_rng(0).uniform(size=(7, 24, 24)))
    cfg = load_config("cpu_demo", [
        "strategy=M+EP", "backbone=srresnet_tiny", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1",
        "periods=1", "period_iters=2", "batch_size=2", "patch_size=16", "val_size=24", "prompt_size=16",
        f"prompt_maps={f}",
    ])
    res = train(cfg, tmp_path / "run", progress=False)
    maps = load_reference_prompt_maps(f)
    f.unlink()  # the maps travel in the checkpoint
    restorer, _, _ = load_restorer(res.checkpoint)
    assert torch.equal(restorer.injector.source.maps, maps)


def test_bad_prompt_map_files_are_refused(tmp_path):
    from mio_strategies.prompts import load_reference_prompt_maps

    f = tmp_path / "maps.npy"
    np.save(f, np.zeros((6, 128, 128)))
    with pytest.raises(ValueError, match=r"must hold a \(7, S, S\) array"):
        load_reference_prompt_maps(f)
    with pytest.raises(FileNotFoundError):
        load_reference_prompt_maps(tmp_path / "none.npy")
    (tmp_path / "maps.txt").write_text("x")
    with pytest.raises(ValueError, match="must be .npy, .pt or .pth"):
        load_reference_prompt_maps(tmp_path / "maps.txt")


def test_reference_prompt_init_starts_away_from_the_identity_and_resets_the_srresnet_convs():
    from mio_strategies.models import build_restorer

    lib = build_restorer("srresnet_tiny", "explicit", seed=0)
    ref = build_restorer("srresnet_tiny", "explicit", seed=0, prompt_init="reference")
    mods = ref.injector.modulators
    assert all(float(m.scale.weight.detach().abs().sum()) > 0 for m in mods.values())
    assert all(float(m.scale.weight.detach().abs().sum()) == 0 for m in lib.injector.modulators.values())
    # PyTorch's default conv init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)): larger than basicsr's 0.1-scaled kaiming
    w = ref.backbone.conv_last.weight.detach()
    bound = 1 / math.sqrt(w[0].numel())
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.5 * bound
    assert float(lib.backbone.conv_last.weight.detach().abs().max()) < 0.5 * bound
    again = build_restorer("srresnet_tiny", "explicit", seed=0, prompt_init="reference")
    assert torch.equal(again.backbone.conv_last.weight, w)  # seeded
    plain = build_restorer("srresnet_tiny", None, seed=0, prompt_init="reference")
    assert torch.equal(plain.backbone.conv_last.weight, lib.backbone.conv_last.weight)  # no prompt: unchanged


def test_reset_modulators_zero_restores_the_identity():
    from torch import nn

    from mio_strategies.prompts import ExplicitPrompt, PromptInjector

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    x = torch.rand(1, 3, 16, 16)
    bare = net(x)
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["0"])
    inj.reset_modulators("default", generator=torch.Generator().manual_seed(0))
    with inj.prompt(task="rain"):
        assert not torch.allclose(net(x), bare)
    inj.reset_modulators("zero")
    with inj.prompt(task="rain"):
        assert torch.equal(net(x), bare)
    with pytest.raises(ValueError, match="init must be 'zero'"):
        inj.reset_modulators("kaiming")


def test_eval_reports_the_classifier_accuracy_of_each_task():
    from mio_strategies.harness._eval import EvalResult

    recs = [{"task": "sr", "predicted": "sr", "psnr": 1.0, "ssim": 1.0},
            {"task": "sr", "predicted": "blur", "psnr": 1.0, "ssim": 1.0},
            {"task": "noise", "predicted": "noise", "psnr": 1.0, "ssim": 1.0}]
    res = EvalResult("m", recs)
    assert res.classifier_accuracy_per_task() == {"sr": 0.5, "noise": 1.0}
    assert res.classifier_accuracy() == pytest.approx(2 / 3)
