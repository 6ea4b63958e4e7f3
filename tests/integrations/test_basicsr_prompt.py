"""Prompt learning inside BasicSR 1.4.2: MiOPromptedNet, MiOPromptModel and the MiO datasets, through
BasicSR's own build functions and train pipeline."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import operator
import re
import sys

import pytest
import torch
import yaml

from mio_strategies.prompts import PromptInjector
from mio_strategies.tasks import TASKS
from mio_strategies.utils.basicsr_compat import import_basicsr

pytestmark = [pytest.mark.basicsr, pytest.mark.usefixtures("one_thread")]

RRDB = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "scale": 1, "num_feat": 8, "num_block": 2, "num_grow_ch": 4}


@contextlib.contextmanager
def _basicsr_messages():
    """BasicSR's log messages during the block (its log file exists only if no earlier call set the logger up)."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("basicsr")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _net_opt(**over):
    return {"type": "MiOPromptedNet", "backbone": dict(RRDB), "prompt": {"kind": "explicit", "size": 16},
            "targets": [{"regex": r"body\.\d+"}, "conv_body"], "embed_dim": 8, "example_input": [1, 3, 16, 16], **over}


@pytest.fixture(scope="module")
def build():
    from mio_strategies.integrations.basicsr_prompt import register

    register()
    register()  # idempotent
    return import_basicsr("archs").build_network


def test_prompted_net_is_built_from_yaml_options(build, tmp_path):
    net = build(_net_opt())
    assert net.injector.target_names == ["body.0", "body.1", "conv_body"]
    by_type = build(_net_opt(targets=[{"type": "RRDB"}, "conv_body"]))  # same modules, named by class
    assert by_type.injector.target_names == net.injector.target_names
    for m in net.injector.modulators.values():  # train a little so that the prompt changes the output
        torch.nn.init.normal_(m.shift.weight, std=0.5)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with net.injector.prompt(task=[0, 3]):
        ref = net(x)
    with net.injector.disabled():
        assert not torch.allclose(net(x), ref)

    # BasicSR's save/load helpers see tensors only; the file loads with weights_only=True
    state = net.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    torch.save({"params": state}, tmp_path / "net_g.pth")
    loaded = torch.load(tmp_path / "net_g.pth", weights_only=True)["params"]
    by_type.load_state_dict(loaded)
    with by_type.injector.prompt(task=[0, 3]):
        assert torch.equal(by_type(x), ref)
    other = build(_net_opt(targets=["conv_body"]))
    with pytest.raises(ValueError, match=r"the saved prompt configuration .* differs from this network's .*same prompt, targets"):
        other.load_state_dict(loaded)


def test_scales_inject_only_the_decoder_side(build):
    net = build(_net_opt(targets=None, scales=[{"targets": ["body.0"], "part": "encoder"},
                                               {"targets": ["conv_body"], "part": "decoder", "channels": 8, "name": "out"}]))
    assert net.injector.target_names == ["conv_body"]
    assert PromptInjector.of(net.model) is net.injector


@pytest.mark.parametrize(
    "over, exc, message",
    [
        ({"targetz": ["x"]}, KeyError, r"network_g \(MiOPromptedNet\): unknown option\(s\) 'targetz' \(did you mean 'targets'\?\)"),
        ({"prompt": {"kind": "explicit", "sise": 3}}, KeyError, r"network_g.prompt \(explicit\): unknown option\(s\) 'sise' \(did you mean 'size'\?\)"),
        ({"prompt": {"kind": "implicit"}}, ValueError, r"network_g.prompt must be a mapping with kind: explicit or kind: adaptive, got \{'kind': 'implicit'\}"),
        ({"targets": [{"type": "RRDBX"}]}, ValueError, r"network_g.targets: the backbone has no module of type 'RRDBX' \(closest: \['RRDB', 'RRDBNet'\]\)"),
        ({"targets": [{"module": "x"}]}, TypeError, r"network_g.targets: a target is a module name, \{regex: <pattern>\} or \{type: <ClassName>\}"),
        ({"targets": ["conv_bod"]}, ValueError, r"'conv_bod' matched no module of RRDBNet; closest module names: 'conv_body'"),
        ({"scales": [{"targets": ["conv_body"]}]}, ValueError, r"needs targets: \(one scale\) or scales: \(a U-Net\), not both or neither"),
        ({"targets": None, "scales": [{"targets": ["conv_body"], "parts": "decoder"}]}, KeyError, r"network_g.scales\[0\]: unknown option\(s\) 'parts' \(did you mean 'part'\?\)"),
        ({"example_input": [1, 3, "16"]}, ValueError, r"network_g.example_input must be a shape such as \[1, 3, 64, 64\], got \[1, 3, '16'\]"),
        ({"backbone": {"num_feat": 8}}, ValueError, r"network_g.backbone must be a network's options with a type"),
        ({"prompt": None, "promt": {"kind": "explicit"}}, KeyError, r"unknown option\(s\) 'promt' \(did you mean 'prompt'\?\)"),
        ({"prompt": None}, KeyError, r"network_g \(MiOPromptedNet\) needs prompt:"),
        ({"targets": None, "channels": 8, "scales": [{"targets": ["conv_body"]}]}, ValueError,
         r"network_g: with scales:, give channels: inside each scales entry, not at the top level"),
        ({"targets": None, "channel_axis": 1, "scales": [{"targets": ["conv_body"]}]}, ValueError,
         r"network_g: with scales:, give channel_axis: inside each scales entry, not at the top level"),
    ],
)
def test_bad_options_are_named(build, over, exc, message):
    with pytest.raises(exc, match=message):
        build(_net_opt(**over))


def test_model_without_a_task_says_where_to_get_one(build):
    from mio_strategies.integrations.basicsr_prompt import _prompted

    net = build(_net_opt())
    with pytest.raises(ValueError, match=r"explicit prompt needs each batch's task ids, but the batch has no 'task': use "
                                         r"MiOTrainDataset / MiOTestDataset .*network_g.prompt.classifier"):
        with _prompted(net, None):
            pass
    adaptive = build(_net_opt(prompt={"kind": "adaptive"}))
    with _prompted(adaptive, None):  # the input is the prompt: no task needed
        adaptive(torch.rand(1, 3, 16, 16))
    with pytest.raises(TypeError, match=r"needs network_g of type MiOPromptedNet, got RRDBNet"):
        with _prompted(adaptive.model, None):
            pass


def _options(tmp_path, testset):
    return {
        "name": "mio_prompt_test",
        "model_type": "MiOPromptModel",
        "scale": 1,
        "num_gpu": 0,
        "manual_seed": 3,
        "datasets": {
            "train": {"name": "mio", "type": "MiOTrainDataset", "phase": "train", "tasks": "SBNJRHL", "gt_size": 16,
                      "seed": 1, "num_worker_per_gpu": 0, "batch_size_per_gpu": 2, "dataset_enlarge_ratio": 1,
                      "prefetch_mode": None, "curriculum": {"order": "SBNJRHL", "periods": 7}},
            "val": {"name": "in-dis", "type": "MiOTestDataset", "phase": "val", "dataroot": str(testset), "tasks": "SN"},
        },
        "network_g": _net_opt(),
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {
            "ema_decay": 0.5,
            "optim_g": {"type": "Adam", "lr": 1e-2, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [2] * 7, "restart_weights": [1] * 7, "eta_min": 1e-7},
            "total_iter": 14,
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "val": {"val_freq": 14, "save_img": False, "size_multiple": 4,
                "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": False}}},
        "logger": {"print_freq": 1000, "save_checkpoint_freq": 14, "use_tb_logger": False, "wandb": {"project": None}},
        "dist_params": {"backend": "nccl", "port": 29500},
    }


def test_basicsr_trains_and_validates_with_each_batchs_prompts(build, tmp_path, monkeypatch):
    from mio_strategies.data import build_testset, embedded_image_paths, read_image, write_png
    from mio_strategies.integrations.basicsr_curriculum import train_pipeline

    gt = tmp_path / "gt"
    gt.mkdir()
    for p in embedded_image_paths()[:2]:  # two small crops keep the validation quick; 22 px: RRDBNet at
        write_png(read_image(p)[:, :22, :22], gt / f"{p.stem}.png")  # scale 1 needs multiples of 4 (size_multiple)
    testset = tmp_path / "testset"
    build_testset(gt, testset, tasks="SNJ", seed=0)

    calls: list[tuple[bool, list[int]]] = []  # (training?, task ids) of every prompt request
    original = PromptInjector.prompt

    def recording(self, task=None, **kw):
        calls.append((self.training, list(task)))
        return original(self, task, **kw)

    monkeypatch.setattr(PromptInjector, "prompt", recording)
    opt_file = tmp_path / "opt.yml"
    opt_file.write_text(yaml.safe_dump(_options(tmp_path, testset)))
    monkeypatch.setattr(sys, "argv", ["train.py", "-opt", str(opt_file)])
    epochs: list[int] = []
    from mio_strategies.integrations.basicsr_prompt import MiOTrainDataset

    set_epoch = MiOTrainDataset.set_epoch
    monkeypatch.setattr(MiOTrainDataset, "set_epoch", lambda self, e: (epochs.append(e), set_epoch(self, e))[1])
    with _basicsr_messages() as messages:
        train_pipeline(str(tmp_path))

    train_calls = [ids for training, ids in calls if training]
    assert len(train_calls) == 14 and all(len(ids) == 2 for ids in train_calls)
    # sequential learning: the first period's batches hold super-resolution only, the last ones all tasks
    assert set(train_calls[0] + train_calls[1]) == {TASKS[0].id}
    assert set(functools.reduce(operator.iadd, train_calls, [])) <= {t.id for t in TASKS} and len(set(functools.reduce(operator.iadd, train_calls, []))) > 3
    assert epochs and epochs[0] == 0  # the on-the-fly dataset is told each epoch
    # validation (at iteration 14, and BasicSR's final one): one request per test pair, with that pair's own
    # task (S and N only: the set's JPEG pairs are filtered out), on the EMA net (eval mode)
    val_calls = [ids for training, ids in calls if not training]
    assert sorted(i for ids in val_calls for i in ids) == sorted([TASKS[0].id] * 4 + [TASKS[2].id] * 4)

    exp = tmp_path / "experiments" / "mio_prompt_test"
    saved = torch.load(exp / "models" / "net_g_14.pth", weights_only=True)
    assert set(saved) == {"params", "params_ema"}
    fresh = build(_net_opt())
    fresh.load_state_dict(saved["params_ema"])  # a new network of the same options takes the EMA weights
    trained = [float((m.scale.weight.abs().sum() + m.shift.weight.abs().sum()).detach()) for m in fresh.injector.modulators.values()]
    assert all(t > 0 for t in trained)  # the modulators (zero at start) were trained and averaged
    log = "\n".join(messages)
    assert log.count("# psnr:") == 2 and "Sequential learning" in log
    final_psnr = re.findall(r"# psnr: ([0-9.]+)", log)[-1]

    # BasicSR's test pipeline on the saved EMA weights: the same numbers as the final validation, and the
    # images named after their tasks
    from mio_strategies.integrations.basicsr_prompt import test_pipeline

    test_opt = {k: v for k, v in _options(tmp_path, testset).items() if k in ("model_type", "scale", "num_gpu", "manual_seed", "network_g", "val")}
    test_opt.update(name="mio_prompt_eval", datasets={"test_1": {**_options(tmp_path, testset)["datasets"]["val"], "phase": "test"}},
                    path={"pretrain_network_g": str(exp / "models" / "net_g_14.pth"), "param_key_g": "params_ema", "strict_load_g": True})
    test_opt["val"] = {**test_opt["val"], "save_img": True, "suffix": None}
    opt_file.write_text(yaml.safe_dump(test_opt))
    with _basicsr_messages() as messages:
        test_pipeline(str(tmp_path))
    assert re.findall(r"# psnr: ([0-9.]+)", "\n".join(messages)) == [final_psnr]
    saved_images = sorted(p.name for p in (tmp_path / "results" / "mio_prompt_eval" / "visualization").rglob("*.png"))
    assert len(saved_images) == 4 and {n.split("_")[0] for n in saved_images} == {"sr", "noise"}


def test_the_model_refuses_a_network_without_prompts(build):
    build_model = import_basicsr("models").build_model
    with pytest.raises(TypeError, match=r"model_type MiOPromptModel needs network_g type MiOPromptedNet, got 'RRDBNet'"):
        build_model({"model_type": "MiOPromptModel", "network_g": dict(RRDB), "num_gpu": 0, "is_train": False, "dist": False})


def test_the_docs_yaml_builds(build):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "prompts.md").read_text()
    block = text.split("## Training in BasicSR (YAML)", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    opt = yaml.safe_load(block)
    assert opt["model_type"] == "MiOPromptModel" and opt["scale"] == 1
    net_opt = dict(opt["network_g"])
    net_opt["backbone"] = {**net_opt["backbone"], "num_feat": 8, "num_block": 2}  # small, same layout
    net = build(net_opt)
    assert type(net.model).__name__ == "MiOSRResNet"
    assert sorted(net.injector.target_names) == ["act_hr", "body.0", "body.1", "conv_last"]
    registry = import_basicsr("utils.registry")
    assert {opt["datasets"]["train"]["type"], opt["datasets"]["val"]["type"]} <= set(registry.DATASET_REGISTRY._obj_map)
    train_opt = {**opt["datasets"]["train"], "dataroot_gt": None}  # the embedded photos instead of DF2K
    train_set = registry.DATASET_REGISTRY.get("MiOTrainDataset")(train_opt)
    item = train_set[0]
    assert item["lq"].shape == item["gt"].shape == (3, 128, 128) and len(train_set.task_ids) == len(train_set)


def test_plain_backbone_weights_and_non_strict_loads(build):
    net = build(_net_opt())
    plain = import_basicsr("archs").build_network(dict(RRDB))
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.1)
    net.load_state_dict(plain.state_dict())  # pretrain_network_g of the bare network: into the backbone
    assert all(torch.equal(a, b) for a, b in zip(net.model.state_dict().values(), plain.state_dict().values()))
    assert all(not m.shift.weight.any() for m in net.injector.modulators.values())  # prompt untouched (zero)

    other = build(_net_opt(prompt={"kind": "explicit", "size": 32}))  # another prompt configuration
    with pytest.raises(ValueError, match=r"the saved prompt configuration .* differs"):
        other.load_state_dict(net.state_dict())
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("injector.source.maps")}
    other.load_state_dict(state, strict=False)  # strict_load_g: false loads what fits, without the check
    assert torch.equal(other.model.conv_first.weight, plain.conv_first.weight)


def test_the_task_classifier_follows_the_network(build, tmp_path):
    from mio_strategies.harness import train_classifier

    train_classifier(tmp_path / "clf.pt", steps=1, batch_size=2, crop=16, width=4, progress=False, device="cpu")
    net = build(_net_opt(prompt={"kind": "explicit", "size": 16, "classifier": str(tmp_path / "clf.pt")}))
    net.to(torch.float64)  # what model_to_device(...) does with a device; a dtype runs on this CPU
    assert next(net.injector.source.classifier.parameters()).dtype == torch.float64
    net(torch.rand(1, 3, 16, 16, dtype=torch.float64))  # no task: the classifier picks the prompt


def test_data_parallel_persistent_workers_and_missing_tasks_are_refused(build, tmp_path):
    from mio_strategies.data import build_testset, embedded_image_paths, read_image, write_png

    build_model = import_basicsr("models").build_model
    opt = {"model_type": "MiOPromptModel", "network_g": _net_opt(), "num_gpu": 2, "dist": False, "is_train": False}
    with pytest.raises(ValueError, match=r"num_gpu: 2 without a launcher would use DataParallel.*--launcher pytorch"):
        build_model(opt)
    with pytest.raises(ValueError, match=r"val.size_multiple must be a positive integer, got 0"):
        build_model({**opt, "num_gpu": 0, "val": {"size_multiple": 0}})
    registry = import_basicsr("utils.registry").DATASET_REGISTRY
    with pytest.raises(ValueError, match=r"persistent_workers: true would draw the same crops .* set persistent_workers: false"):
        registry.get("MiOTrainDataset")({"gt_size": 16, "persistent_workers": True, "num_worker_per_gpu": 2})
    gt = tmp_path / "gt"
    gt.mkdir()
    p = embedded_image_paths()[0]
    write_png(read_image(p)[:, :16, :16], gt / f"{p.stem}.png")
    build_testset(gt, tmp_path / "set", tasks="SN", seed=0)
    with pytest.raises(ValueError, match=r"has no folder for task\(s\) \['rain'\] \(it has \['noise', 'sr'\]\): fix tasks:"):
        registry.get("MiOTestDataset")({"dataroot": str(tmp_path / "set"), "tasks": "SR"})
    assert len(registry.get("MiOTestDataset")({"dataroot": str(tmp_path / "set"), "tasks": "N"})) == 1


def _example_options(tmp_path):
    """examples/basicsr's train and test options, shrunk to seconds (smaller SRResNet, 16 px, 20 iterations in
    10 periods, the embedded photos, tiny test sets built here)."""
    from pathlib import Path

    from mio_strategies.data import build_testset, embedded_image_paths, read_image, write_png

    root = Path(__file__).resolve().parents[2] / "examples" / "basicsr"
    for script, fn in (("train.py", "train_pipeline"), ("test.py", "test_pipeline")):
        assert f"import {fn}" in (root / script).read_text() and f"{fn}(os.getcwd())" in (root / script).read_text()
    ordered_yaml = import_basicsr("utils.options").ordered_yaml
    train_opt = yaml.load((root / "options" / "train_SRResNet_SEP.yml").read_text(), Loader=ordered_yaml()[0])
    test_opt = yaml.load((root / "options" / "test_SRResNet_SEP.yml").read_text(), Loader=ordered_yaml()[0])
    assert train_opt["network_g"] == test_opt["network_g"]  # the test builds the network it loads
    assert train_opt["train"]["total_iter"] == 2_500_000 and train_opt["datasets"]["train"]["curriculum"]["periods"] == 10

    gt = tmp_path / "gt"
    gt.mkdir()
    for p in embedded_image_paths()[:2]:
        write_png(read_image(p)[:, :20, :20], gt / f"{p.stem}.png")
    build_testset(gt, tmp_path / "testsets" / "in-dis", tasks="SN", seed=0)
    build_testset(gt, tmp_path / "testsets" / "out-dis", tasks="J", preset="out", seed=0)

    small = {"num_feat": 8, "num_block": 2}
    for opt in (train_opt, test_opt):
        opt["num_gpu"] = 0
        opt["network_g"]["backbone"].update(small)
        opt["network_g"]["prompt"]["size"] = 16
        opt["network_g"]["example_input"] = [1, 3, 16, 16]
        for d in opt["datasets"].values():
            if "dataroot" in d:
                d["dataroot"] = str(tmp_path / d["dataroot"])
    train_set = train_opt["datasets"]["train"]
    train_set.update(dataroot_gt=None, gt_size=16, repeat=1, num_worker_per_gpu=0, batch_size_per_gpu=2)
    train_opt["train"].update(total_iter=20, ema_decay=0.9)
    train_opt["train"]["scheduler"]["periods"] = [2] * 10
    train_opt["val"]["val_freq"] = 20
    train_opt["logger"].update(print_freq=1000, save_checkpoint_freq=20, use_tb_logger=False)

    return train_opt, test_opt


def test_the_basicsr_example_options_train_and_test(build, tmp_path, monkeypatch):
    """examples/basicsr: the S+EP protocol YAML runs through BasicSR's train pipeline, shrunk to seconds
    (smaller SRResNet, 16 px, 20 iterations in 10 periods, the embedded photos), then the test YAML on the
    weights it wrote; train.py / test.py are the two drop-ins."""
    from mio_strategies.integrations.basicsr_curriculum import train_pipeline
    from mio_strategies.integrations.basicsr_prompt import test_pipeline

    train_opt, test_opt = _example_options(tmp_path)
    opt_file = tmp_path / "opt.yml"
    monkeypatch.setattr(sys, "argv", ["train.py", "-opt", str(opt_file)])
    opt_file.write_text(yaml.safe_dump(json_safe(train_opt)))
    train_pipeline(str(tmp_path))
    weights = tmp_path / "experiments" / "SRResNet_SEP" / "models" / "net_g_latest.pth"
    assert set(torch.load(weights, weights_only=True)) == {"params", "params_ema"}
    test_opt["path"]["pretrain_network_g"] = str(weights)
    opt_file.write_text(yaml.safe_dump(json_safe(test_opt)))
    with _basicsr_messages() as messages:
        test_pipeline(str(tmp_path))
    basicsr_psnr = [float(v) for v in re.findall(r"# psnr: ([0-9.]+)", "\n".join(messages))]
    images = sorted(p.name for p in (tmp_path / "results" / "SRResNet_SEP_test" / "visualization").rglob("*.png"))
    assert {n.split("_")[0] for n in images} == {"sr", "noise", "jpeg"} and len(images) == 6

    # the library's per-task tables of the same weights
    from mio_strategies.data import open_testset
    from mio_strategies.harness import evaluate, format_table
    from mio_strategies.integrations.basicsr_prompt import load_basicsr_restorer

    restorer = load_basicsr_restorer(opt_file, weights)
    res = evaluate(restorer, open_testset(tmp_path / "testsets" / "in-dis"), name="S+EP (BasicSR)")
    assert sorted(res.per_task()) == ["noise", "sr"] and "S+EP (BasicSR)" in format_table([res])
    ours = sum(r["psnr"] for r in res.records) / len(res.records)  # BasicSR: the mean over images, on 8-bit
    assert ours == pytest.approx(basicsr_psnr[0], abs=0.01)  # same images, prompts, border crop: same PSNR
    with pytest.raises(ValueError, match=r"has no 'params_x' weights \(it has \['params', 'params_ema'\]\)"):
        load_basicsr_restorer(opt_file, weights, param_key="params_x")

    # the same from the command line: mio-strategies eval --basicsr-options
    from mio_strategies.cli import main

    out = tmp_path / "eval"
    args = ["eval", "--basicsr-options", str(opt_file), "--checkpoint", str(weights), "--testset",
            str(tmp_path / "testsets" / "in-dis"), "--output", str(out), "--baseline", "identity"]
    assert main(args) == 0
    saved = json.loads((out / "results.json").read_text())["results"][0]
    assert saved["name"] == "opt:net_g_latest"
    key = lambda r: (r["task"], r["image"])  # noqa: E731
    assert [key(r) for r in sorted(saved["records"], key=key)] == [key(r) for r in sorted(res.records, key=key)]
    assert [r["psnr"] for r in sorted(saved["records"], key=key)] == pytest.approx([r["psnr"] for r in sorted(res.records, key=key)])
    assert main(args[:2] + [str(tmp_path / "missing.yml")] + args[3:] + ["--overwrite"]) == 2


def json_safe(value):
    """An OrderedDict tree (BasicSR's YAML loader) as plain dicts and lists, for yaml.safe_dump."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def test_early_checks_padding_and_non_strict_plain_weights(build, tmp_path):
    from mio_strategies.integrations.basicsr_prompt import _check_task_sources, load_basicsr_restorer
    from mio_strategies.models import pad_to_multiple

    # a BasicSR validation set has no task ids: refused when the model is built, not at the first validation
    val = {"val": {"type": "PairedImageDataset", "name": "set5"}}
    with pytest.raises(ValueError, match=r"datasets.val \(PairedImageDataset\) has no task ids.*type: MiOTestDataset"):
        _check_task_sources({"network_g": _net_opt(), "datasets": val})
    _check_task_sources({"network_g": _net_opt(prompt={"kind": "adaptive"}), "datasets": val})  # no task needed
    _check_task_sources({"network_g": _net_opt(prompt={"kind": "explicit", "classifier": "c.pt"}), "datasets": val})
    _check_task_sources({"network_g": _net_opt(), "datasets": {"val": {"type": "MiOTestDataset"}}})

    x = torch.rand(1, 3, 2, 9)  # too small to reflect a pad of 2: the edge is repeated
    assert pad_to_multiple(x, 4).shape == (1, 3, 4, 12) and torch.equal(pad_to_multiple(x, 4)[..., :2, :9], x)
    y = torch.rand(1, 3, 6, 7)
    assert torch.equal(pad_to_multiple(y, 4), torch.nn.functional.pad(y, (0, 1, 0, 2), mode="reflect"))
    assert pad_to_multiple(y, 1) is y

    net = build(_net_opt())
    torch.save({"params_ema": net.state_dict()}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"val.size_multiple must be a positive integer, got 0"):
        load_basicsr_restorer(_net_opt(), tmp_path / "w.pth", size_multiple=0)
    # a plain backbone of other output channels, strict_load_g: false: what fits is loaded
    other = import_basicsr("archs").build_network({**RRDB, "num_out_ch": 1})
    net.load_state_dict(other.state_dict(), strict=False)
    assert torch.equal(net.model.conv_first.weight, other.conv_first.weight)
    assert net.model.conv_last.weight.shape[0] == 3


@pytest.mark.parametrize("variant", ["M+EP", "S+AP", "S"])
def test_the_example_yaml_variants_train(build, tmp_path, monkeypatch, variant):
    """The variants the example's header names: mixed curriculum, adaptive prompts, the blind SRModel."""
    from mio_strategies.integrations.basicsr_curriculum import train_pipeline

    opt, _ = _example_options(tmp_path)
    opt["train"].update(total_iter=10)
    opt["train"]["scheduler"]["periods"] = [1] * 10
    opt["val"]["val_freq"] = 10
    opt["logger"]["save_checkpoint_freq"] = 10
    if variant == "M+EP":
        opt["datasets"]["train"]["curriculum"]["mode"] = "mixed"
    elif variant == "S+AP":
        opt["network_g"]["prompt"] = {"kind": "adaptive"}
    else:
        opt["model_type"] = "SRModel"
        opt["network_g"] = {"type": "MiOSRResNet", "num_feat": 8, "num_block": 2}
    opt_file = tmp_path / "opt.yml"
    opt_file.write_text(yaml.safe_dump(json_safe(opt)))
    monkeypatch.setattr(sys, "argv", ["train.py", "-opt", str(opt_file)])
    with _basicsr_messages() as messages:
        train_pipeline(str(tmp_path))
    log = "\n".join(messages)
    assert log.count("# psnr:") == 2  # validated at iteration 10 and at the end
    saved = torch.load(tmp_path / "experiments" / "SRResNet_SEP" / "models" / "net_g_10.pth", weights_only=True)
    keys = set(saved["params_ema"])
    assert any(k.startswith("injector.encoders") for k in keys) == (variant != "S")
    assert ("mixed" in log) == (variant == "M+EP")


@pytest.mark.parametrize(
    "dataset, opt, message",
    [
        ("MiOTrainDataset", {"name": "mio", "gt_size": 16, "curiculum": {"order": "SB"}},
         r"datasets \(mio, MiOTrainDataset\): unknown option\(s\) 'curiculum' \(did you mean 'curriculum'\?\)"),
        ("MiOTrainDataset", {"gt_szie": 16}, r"unknown option\(s\) 'gt_szie' \(did you mean 'gt_size'\?\)"),
        ("MiOTestDataset", {"dataroot": "x", "task": "S"}, r"MiOTestDataset\): unknown option\(s\) 'task' \(did you mean 'tasks'\?\)"),
    ],
)
def test_dataset_option_typos_are_named(build, dataset, opt, message):
    registry = import_basicsr("utils.registry").DATASET_REGISTRY
    with pytest.raises(KeyError, match=message):
        registry.get(dataset)(opt)
