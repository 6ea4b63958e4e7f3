"""Evaluation paths: the task classifier (train_classifier / load_classifier, evaluate(task_source="classifier"),
`mio-strategies train-classifier` / `eval --classifier`), composite test sets, and the eval command."""

from __future__ import annotations

import json

import pytest
import torch

from mio_strategies.cli import main
from mio_strategies.data import PairedFolderDataset, build_testset, embedded_image_paths, open_testset, read_image
from mio_strategies.data._io import write_png
from mio_strategies.harness import (
    evaluate,
    format_table,
    load_classifier,
    load_config,
    load_restorer,
    shipped_classifier,
    train,
    train_classifier,
)
from mio_strategies.prompts import TaskClassifier
from mio_strategies.tasks import TASKS, get_task

pytestmark = pytest.mark.basicsr

TINY_EP = [
    "backbone=srresnet_tiny", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1", "strategy=M+EP",
    "periods=7", "period_iters=1", "batch_size=2", "patch_size=16", "val_size=24", "prompt_size=16",
    "log_every=0", "lr=1e-3", "lr_min=1e-5", "ema_decay=0.0",
]
CLF = ["--steps", "3", "--batch-size", "4", "--crop", "16", "--width", "4", "--no-progress"]


@pytest.fixture(scope="module")
def ep_run(tmp_path_factory):
    """A tiny M+EP checkpoint and a test set of 32-px crops: 2 images x (7 tasks + the composite blur+noise)."""
    from mio_strategies.data import MiODataset

    root = tmp_path_factory.mktemp("clf")
    gt = root / "gt"
    gt.mkdir()
    for p in embedded_image_paths()[:2]:
        write_png(read_image(p)[:, :32, :32], gt / p.name)
    build_testset(gt, root / "testset", tasks="SBNJRHL", composites=["blur+noise"], seed=3)
    cfg = load_config("cpu_demo", TINY_EP)
    data = MiODataset([read_image(p)[:, :48, :48] for p in embedded_image_paths()[:2]], cfg.order, patch_size=16, seed=0)
    res = train(cfg, root / "run", dataset=data, val_dataset=PairedFolderDataset(root / "testset"), progress=False)
    return {"root": root, "checkpoint": res.checkpoint, "testset": root / "testset"}


def _always(task_name: str) -> TaskClassifier:
    """A classifier that predicts ``task_name`` for every image."""
    clf = TaskClassifier(width=4)
    with torch.no_grad():
        clf.head.weight.zero_()
        clf.head.bias.zero_()
        clf.head.bias[get_task(task_name).id] = 10.0
    return clf


def test_train_classifier_is_seeded_saved_atomically_and_loaded_weights_only(tmp_path):
    kw = dict(steps=3, batch_size=4, crop=16, width=4, seed=5, progress=False, device="cpu")
    run = train_classifier(tmp_path / "a.pt", **kw)
    again = train_classifier(tmp_path / "b.pt", **kw)
    assert len(run.losses) == 3 and all(0.0 <= a <= 1.0 for a in run.accuracies)
    assert run.losses == again.losses
    loaded = load_classifier(run.path)
    x = torch.rand(2, 3, 20, 20)
    assert torch.equal(loaded(x), run.classifier(x)) and torch.equal(loaded(x), load_classifier(tmp_path / "b.pt")(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]  # no temporary files left
    with pytest.raises(FileExistsError, match=r"a\.pt' already exists: pass overwrite=True to replace it"):
        train_classifier(tmp_path / "a.pt", **kw)
    assert torch.equal(load_classifier(run.path)(x), run.classifier(x))  # the refused call changed nothing
    with pytest.raises(ValueError, match=r"crop must be at least 9 pixels"):
        train_classifier(tmp_path / "c.pt", **{**kw, "crop": 8})
    with pytest.raises(ValueError, match=r"steps must be a positive integer, got 0"):
        train_classifier(tmp_path / "c.pt", **{**kw, "steps": 0})
    assert not (tmp_path / "c.pt").exists()


def test_train_classifier_device_is_checked_before_anything_is_written(tmp_path, monkeypatch):
    kw = dict(steps=2, batch_size=2, crop=16, width=4, seed=1, progress=False)
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        train_classifier(tmp_path / "c.pt", device="gpu", **kw)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device 'cuda:0' requested but no CUDA device is available: use --device cpu \(device='cpu'\)"):
        train_classifier(tmp_path / "c.pt", device="cuda:0", **kw)
    assert not (tmp_path / "c.pt").exists()
    auto = train_classifier(tmp_path / "auto.pt", **kw)  # auto without CUDA: the CPU, same draws as device="cpu"
    cpu = train_classifier(tmp_path / "cpu.pt", device="cpu", **kw)
    assert auto.losses == cpu.losses
    assert torch.load(tmp_path / "cpu.pt", weights_only=True)["config"]["device"] == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_classifier_on_cuda_writes_cpu_tensors(tmp_path):
    kw = dict(steps=3, batch_size=4, crop=16, width=4, seed=5, progress=False)
    run = train_classifier(tmp_path / "gpu.pt", device="cuda", **kw)
    assert next(run.classifier.parameters()).is_cuda
    state = torch.load(tmp_path / "gpu.pt", weights_only=True)
    assert all(v.device.type == "cpu" for v in state["state"].values()) and state["config"]["device"] == "cuda"
    cpu = train_classifier(tmp_path / "cpu.pt", device="cpu", **kw)
    assert run.losses == pytest.approx(cpu.losses, rel=1e-3, abs=1e-3)  # same crops and initial weights
    x = torch.rand(2, 3, 20, 20)  # (cuDNN may use TF32: about 1e-5 apart)
    assert torch.allclose(load_classifier(run.path)(x), run.classifier(x.cuda()).cpu(), atol=1e-4, rtol=1e-3)


def test_a_training_checkpoint_is_not_taken_for_a_classifier(ep_run, tmp_path):
    with pytest.raises(ValueError, match=r"is not a task-classifier file \(format 'mio-strategies'.*train-classifier"):
        load_classifier(ep_run["checkpoint"])
    with pytest.raises(FileNotFoundError, match=r"missing\.pt' does not exist"):
        load_classifier(tmp_path / "missing.pt")


def test_evaluate_uses_the_classifiers_prediction_for_the_prompt(ep_run):
    restorer, _, _ = load_restorer(ep_run["checkpoint"])
    data = PairedFolderDataset(ep_run["testset"])
    res = evaluate(restorer, data, name="ep", task_source="classifier", classifier=_always("noise"))
    assert {r["predicted"] for r in res.records} == {"noise"}
    assert res.classifier_accuracy() == pytest.approx(1 / 7)
    noise = torch.tensor([get_task("noise").id])
    forced = evaluate(lambda lq, task: restorer.restore(lq, noise), data, name="forced")
    given = evaluate(restorer, data, name="given")
    assert [r["psnr"] for r in res.records] == [r["psnr"] for r in forced.records]
    assert given.classifier_accuracy() is None
    # on the noise pairs the prediction is right, so the prompt is the given one; elsewhere it differs
    pairs = zip(res.records, given.records)
    assert all(a["psnr"] == b["psnr"] for a, b in pairs if a["task"] == "noise")
    assert any(a["psnr"] != b["psnr"] for a, b in zip(res.records, given.records) if a["task"] != "noise")


def test_evaluate_without_a_classifier_uses_the_shipped_one(ep_run):
    restorer, _, _ = load_restorer(ep_run["checkpoint"])
    data = PairedFolderDataset(ep_run["testset"])
    res = evaluate(restorer, data, task_source="classifier")
    shipped = load_classifier(shipped_classifier())
    assert [r["predicted"] for r in res.records] == [
        TASKS[int(shipped(data[i]["lq"][None]).argmax())].name for i in range(len(data))
    ]
    with pytest.raises(TypeError, match=r"classifier must be a classifier file, an nn.Module .* got int"):
        evaluate(restorer, data, task_source="classifier", classifier=3)
    blind = evaluate(lambda lq, task: lq, PairedFolderDataset(ep_run["testset"]), task_source="classifier")
    assert blind.classifier_accuracy() is None  # models without explicit prompts ignore the task source


def test_cli_train_classifier_then_eval_reports_its_accuracy(ep_run, tmp_path, capsys):
    clf = tmp_path / "clf.pt"
    assert main(["train-classifier", "--output", str(clf), *CLF]) == 0
    assert "3 steps" in capsys.readouterr().out
    assert main(["train-classifier", "--output", str(clf), *CLF]) == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    assert main(["train-classifier", "--output", str(tmp_path / "x.pt"), "--device", "tpu", *CLF]) == 2
    assert "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()

    out = tmp_path / "eval"
    args = ["eval", "--checkpoint", str(ep_run["checkpoint"]), "--testset", str(ep_run["testset"]), "--output", str(out)]
    assert main(args + ["--classifier", str(clf), "--baseline", "identity"]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())["results"][0]
    records = data["records"]
    assert len(records) == 16 and all(r["predicted"] in {t.name for t in TASKS} for r in records)
    single = [r for r in records if r["task"] != "blur+noise"]
    acc = sum(r["predicted"] == r["task"] for r in single) / len(single)  # composites have no single true task
    assert data["classifier_accuracy"] == pytest.approx(acc)
    assert f"task-classifier accuracy (srresnet_tiny M+EP): {acc:.3f}" in printed
    assert f"- srresnet_tiny M+EP: {acc:.3f}" in (out / "results.md").read_text()
    # the same numbers as the Python API with the loaded classifier
    restorer, _, _ = load_restorer(ep_run["checkpoint"])
    api = evaluate(restorer, open_testset(ep_run["testset"]), task_source="classifier", classifier=load_classifier(clf))
    assert [r["psnr"] for r in api.records] == [r["psnr"] for r in records]


def test_cli_eval_task_source_classifier_defaults_to_the_shipped_one(ep_run, tmp_path, capsys):
    args = ["eval", "--checkpoint", str(ep_run["checkpoint"]), "--testset", str(ep_run["testset"])]
    assert main(args + ["--output", str(tmp_path / "a"), "--task-source", "classifier"]) == 0
    printed = capsys.readouterr().out
    assert f"task classifier: the one shipped with the package ({shipped_classifier()}" in printed
    data = json.loads((tmp_path / "a" / "results.json").read_text())["results"][0]
    restorer, _, _ = load_restorer(ep_run["checkpoint"])
    api = evaluate(restorer, open_testset(ep_run["testset"]), task_source="classifier", classifier=shipped_classifier())
    assert [r["predicted"] for r in data["records"]] == [r["predicted"] for r in api.records]
    per_task = ", ".join(f"{t} {a:.3f}" for t, a in api.classifier_accuracy_per_task().items())
    assert f"task-classifier accuracy (srresnet_tiny M+EP): {api.classifier_accuracy():.3f} ({per_task})" in printed


def test_cli_eval_errors_name_the_fix(ep_run, tmp_path, capsys):
    ck, ts = str(ep_run["checkpoint"]), str(ep_run["testset"])
    base = ["eval", "--checkpoint", ck, "--testset", ts]
    assert main(base + ["--output", str(tmp_path / "b"), "--task-source", "given", "--classifier", ck]) == 2
    assert "the classifier would not be used" in capsys.readouterr().err
    assert main(base + ["--output", str(tmp_path / "c"), "--classifier", ck]) == 2
    assert "is not a task-classifier file" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() and any((tmp_path / d).iterdir()) for d in "bc")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("x")
    assert main(base + ["--output", str(tmp_path / "d")]) == 2
    assert "exists and is not empty: pass --overwrite" in capsys.readouterr().err
    assert main(base + ["--output", str(tmp_path / "d"), "--overwrite"]) == 2  # a folder it did not write
    assert "was not written by mio-strategies (it has no .mio-strategies marker), so --overwrite will not delete" \
        in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["keep.txt"]
    assert main(base + ["--output", str(tmp_path / "e0")]) == 0
    assert main(base + ["--output", str(tmp_path / "e0"), "--overwrite"]) == 0  # its own output: replaced
    assert (tmp_path / "e0" / "results.json").is_file()
    assert main(base + ["--output", str(tmp_path / "e"), "--device", "gpu"]) == 2
    assert "--device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(base + ["--output", str(tmp_path / "e"), "--device", "cuda"]) == 2
        assert "device 'cuda' requested but no CUDA device is available: use --device cpu" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_composites_get_a_column_of_their_own_and_the_mixed_prompt(ep_run):
    restorer, _, _ = load_restorer(ep_run["checkpoint"])
    data = open_testset(ep_run["testset"])
    assert len(data) == 16
    res = evaluate(restorer, data, name="ep")
    assert res.tasks()[-1] == "blur+noise" and res.single_tasks() == [t.name for t in TASKS]
    per = res.per_task()
    singles = [per[t.name]["psnr"] for t in TASKS]
    assert res.average()["psnr"] == pytest.approx(sum(singles) / 7)  # composites stay out of the average
    comp = [(i, data[i]) for i in range(len(data)) if data[i].get("composite") == "blur+noise"]
    assert len(comp) == 2 and all(item["tasks"] == (1, 2) for _, item in comp)
    from mio_strategies.harness import psnr

    mix = torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]])
    blur = torch.tensor([get_task("blur").id])
    for i, item in comp:
        rec = res.records[i]
        assert rec["task"] == "blur+noise" and rec["stages"] == ["blur", "noise"]
        with torch.no_grad():
            mixed = restorer.restore(item["lq"][None], mix)
            pure = restorer.restore(item["lq"][None], blur)
        assert rec["psnr"] == pytest.approx(float(psnr(mixed, item["gt"][None], 4)[0]), abs=1e-9)
        assert not torch.equal(mixed, pure)
    table = format_table([res], baseline="identity")
    assert "| model | S sr |" in table and "| L lowlight | blur+noise | average |" in table


def _no_evaluation(monkeypatch):
    """Make any evaluation fail: the checks below must refuse bad input before evaluating anything."""
    def refuse(*_, **__):
        raise AssertionError("evaluated before the command line was checked")

    monkeypatch.setattr("mio_strategies.harness._eval.evaluate", refuse)


def test_cli_eval_refuses_two_checkpoints_with_one_label_before_evaluating(ep_run, tmp_path, capsys, monkeypatch):
    ck, ts = str(ep_run["checkpoint"]), str(ep_run["testset"])
    out = tmp_path / "e"
    two = ["eval", "--checkpoint", ck, "--checkpoint", ck, "--testset", ts, "--output", str(out)]
    with monkeypatch.context() as mp:
        _no_evaluation(mp)
        assert main(two) == 2  # the default label '<backbone> <strategy>' is the same for both
        assert ("are both labelled 'srresnet_tiny M+EP', so the table could not tell them apart: pass one --name per "
                "--checkpoint, each distinct") in capsys.readouterr().err
        assert main([*two, "--name", "run", "--name", "run"]) == 2
        assert "both labelled 'run'" in capsys.readouterr().err
        assert main([*two, "--name", "identity", "--name", "run"]) == 2
        assert "the label 'identity' (checkpoint" in capsys.readouterr().err
    assert not out.exists()
    assert main([*two, "--name", "seed 0", "--name", "seed 1", "--baseline", "seed 1"]) == 0
    table = capsys.readouterr().out
    assert "| seed 0 |" in table and "| seed 1 |" in table and table.count("| baseline |") == 1
    assert [r["name"] for r in json.loads((out / "results.json").read_text())["results"]] == ["seed 0", "seed 1"]


def test_cli_eval_checks_output_baseline_and_reference_before_evaluating(ep_run, tmp_path, capsys, monkeypatch):
    ck, ts = str(ep_run["checkpoint"]), str(ep_run["testset"])
    base = ["eval", "--checkpoint", ck, "--testset", ts]
    afile = tmp_path / "afile"
    afile.write_text("x")
    with monkeypatch.context() as mp:
        _no_evaluation(mp)
        assert main([*base, "--output", str(afile)]) == 2
        assert "afile' is a file, not a folder: it is left untouched" in capsys.readouterr().err
        out = str(tmp_path / "o")
        assert main([*base, "--output", out, "--baseline", "identiy"]) == 2
        assert ("--baseline 'identiy' is not a row of the table: rows are ['identity', 'srresnet_tiny M+EP'] "
                "(a checkpoint's label, or 'identity')") in capsys.readouterr().err
        assert main([*base, "--output", out, "--reference", "srresnet:X"]) == 2
        assert "--reference 'srresnet:X': unknown strategy 'X': valid strategies are" in capsys.readouterr().err
        assert main([*base, "--output", out, "--reference", "promptir:s+ep"]) == 2
        err = capsys.readouterr().err
        assert "--reference 'promptir:s+ep': the paper publishes no in-dis row for 'promptir' 'S+EP'" in err
        assert main([*base, "--output", out, "--reference", "srresnet:M:sideways"]) == 2
        assert "unknown split 'sideways'" in capsys.readouterr().err
    assert afile.read_text() == "x" and not (tmp_path / "o").exists()
    # the strategy of --reference is read as `train` reads it: srresnet:m is srresnet:M
    refs = ["--reference", "srresnet:m", "--reference", "srresnet:s+ep"]
    assert main([*base, "--output", str(tmp_path / "o"), *refs]) == 0
    printed = capsys.readouterr().out
    assert "| paper srresnet-M (in-dis) |" in printed and "| paper srresnet-S+EP (in-dis) |" in printed


def test_tables_refuse_two_results_with_one_name(ep_run, tmp_path):
    from mio_strategies.harness import write_tables

    data = PairedFolderDataset(ep_run["testset"])
    a = evaluate(lambda lq, task: lq, data, name="run")
    b = evaluate(lambda lq, task: lq.clamp(0.1, 0.9), data, name="run")
    with pytest.raises(ValueError, match=r"two results are both named 'run', so the table cannot tell them apart: "
                                         r"give each result a distinct name"):
        format_table([a, b])
    with pytest.raises(ValueError, match=r"two results are both named 'run'"):
        write_tables([a, b], tmp_path / "w")
    assert not (tmp_path / "w").exists()  # refused before the folder was made
    named_identity = evaluate(lambda lq, task: lq, data, name="identity")
    with pytest.raises(ValueError, match=r"a result is named 'identity', the name of the unrestored input's row"):
        format_table([named_identity])
    assert "| identity |" in format_table([named_identity], identity=False)  # no identity row: no clash
    with pytest.raises(ValueError, match=r"baseline 'nope' is not a row of the table"):
        write_tables([a], tmp_path / "w", baseline="nope")
    assert not (tmp_path / "w").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match=r"f' is a file, not a folder"):
        write_tables([a], tmp_path / "f")


def test_evaluate_runs_where_the_restorer_is_and_refuses_another_device(ep_run):
    from mio_strategies.harness._eval import _evaluation_device

    data = PairedFolderDataset(ep_run["testset"])
    restorer = load_restorer(ep_run["checkpoint"])[0]
    meta = torch.nn.Conv2d(3, 3, 1, device="meta")
    # the default follows the restorer's parameters (was: always the CPU, which broke CUDA restorers)
    assert _evaluation_device(meta, None) == torch.device("meta")
    assert _evaluation_device(restorer, None) == torch.device("cpu")
    assert _evaluation_device(lambda lq, task: lq, None) == torch.device("cpu")  # no parameters
    assert _evaluation_device(lambda lq, task: lq, "meta") == torch.device("meta")
    assert _evaluation_device(restorer, "cpu:0") == torch.device("cpu")  # the same device, spelled with an index
    buffers_only = torch.nn.BatchNorm2d(3, affine=False).to("meta")
    assert _evaluation_device(buffers_only, None) == torch.device("meta")
    with pytest.raises(ValueError, match=r"the restorer is on meta but device='cpu' was asked for: leave device "
                                         r"unset to evaluate where the restorer is, or move it first "
                                         r"\(restorer.to\('cpu'\)\)"):
        evaluate(meta, data, device="cpu")
    assert evaluate(restorer, data, device="cpu").average()["psnr"] == evaluate(restorer, data).average()["psnr"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
def test_evaluate_a_cuda_restorer_without_naming_the_device(ep_run):
    data = PairedFolderDataset(ep_run["testset"])
    cpu = evaluate(load_restorer(ep_run["checkpoint"])[0], data)
    gpu = evaluate(load_restorer(ep_run["checkpoint"], device="cuda")[0], data)
    assert gpu.average()["psnr"] == pytest.approx(cpu.average()["psnr"], abs=1e-3)
