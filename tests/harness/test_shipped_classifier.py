"""The task classifier shipped with the package: its file, its accuracy, and its use as the default of
`restore --task auto` and `eval --task-source classifier`."""

from __future__ import annotations

import json

import pytest
import torch

from mio_strategies.checkpoints import CLASSIFIER_FORMAT, CLASSIFIER_VERSION
from mio_strategies.cli import main
from mio_strategies.data import MiODataset, embedded_image_paths, read_image
from mio_strategies.data._io import write_png
from mio_strategies.degradations import degrade
from mio_strategies.harness import _shipped_classifier as shipped_module
from mio_strategies.harness import (
    load_classifier,
    restore_images,
    save_checkpoint,
    shipped_classifier,
    shipped_weights,
)
from mio_strategies.prompts import TaskClassifier, classifier_accuracy
from mio_strategies.tasks import TASKS, get_task

pytestmark = pytest.mark.usefixtures("one_thread")

#: accuracy of the shipped file on the fixed crops below (measured 62 of 84 = 0.738; the floor allows for
#: float differences between machines flipping a few borderline crops)
ACCURACY_FLOOR = 0.70


def _always_file(path, task: str):
    """A classifier file whose classifier predicts ``task`` for every image."""
    clf = TaskClassifier(width=4)
    with torch.no_grad():
        clf.head.weight.zero_()
        clf.head.bias.zero_()
        clf.head.bias[get_task(task).id] = 10.0
    config = {"num_tasks": 7, "in_channels": 3, "width": 4, "arch": "library"}
    state = {"format": CLASSIFIER_FORMAT, "version": CLASSIFIER_VERSION, "config": config, "state": clf.state_dict()}
    return save_checkpoint(state, path)


@pytest.fixture
def noisy_photo(tmp_path):
    """A 60 x 44 crop of an embedded photo with noise, as an 8-bit PNG file."""
    gt = read_image(embedded_image_paths()[0])[:, 40:100, 50:94]
    lq, _ = degrade(gt[None], "noise", generator=torch.Generator().manual_seed(0))
    return write_png(lq[0], tmp_path / "noisy.png")


def test_the_shipped_file_is_small_recorded_and_reaches_its_measured_accuracy():
    path = shipped_classifier()
    assert path.stat().st_size < 2_000_000
    state = torch.load(path, weights_only=True)
    assert state["config"]["seed"] == 0 and state["config"]["images"] == "embedded"
    clf = load_classifier(path)
    assert isinstance(clf, TaskClassifier) and not clf.training
    # held-out crops: another dataset seed than the training's (new crops, flips and degradation parameters),
    # rounded to 8 bits as image files are; the log's "test" set draws from the same seed
    ds = MiODataset(embedded_image_paths(), "SBNJRHL", patch_size=state["config"]["crop"], seed=202, repeat=2)
    items = [ds[i] for i in range(len(ds))]
    lq = torch.stack([it["lq"] for it in items]).mul(255).round().div(255)
    ids = torch.tensor([int(it["task"]) for it in items])
    acc, confusion = classifier_accuracy(clf, [(lq[i : i + 42], ids[i : i + 42]) for i in range(0, len(ids), 42)])
    assert confusion.sum() == 84 and acc >= ACCURACY_FLOOR


def test_the_weights_readme_shows_the_logged_accuracy():
    folder = shipped_classifier().parent
    records = [json.loads(line) for line in (folder / "classifier.log.jsonl").read_text().splitlines()]
    config = next(r for r in records if r["kind"] == "config")
    assert config["config"] == torch.load(shipped_classifier(), weights_only=True)["config"]
    readme = (folder / "README.md").read_text()
    assert config["command"] in readme
    evals = [r for r in records if r["kind"] == "eval"]
    assert {r["set"] for r in evals} >= {"test", "demo"}
    for r in evals:
        row = next(line for line in readme.splitlines() if line.startswith(f"| {r['label']} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:] == [f"{r['per_task'][t.name]:.3f}" for t in TASKS] + [f"{r['accuracy']:.3f}"]


def test_restore_task_auto_uses_the_shipped_classifier_by_default(noisy_photo, tmp_path, capsys):
    ckpt = shipped_weights()["S+EP"]
    out = tmp_path / "out"
    assert (
        main(
            [
                "restore",
                str(noisy_photo),
                "--checkpoint",
                str(ckpt),
                "--output",
                str(out),
                "--task",
                "auto",
                "--no-progress",
            ]
        )
        == 0
    )
    clf = load_classifier(shipped_classifier())
    with torch.no_grad():
        expected = TASKS[int(clf(read_image(noisy_photo)[None]).softmax(-1).argmax())].name
    printed = capsys.readouterr().out
    assert f"restored 1 of 1 images into {out} (tasks: {expected})" in printed
    assert "tasks picked by the task classifier shipped with the package: it was trained on six photos" in printed
    assert read_image(out / "noisy.png").shape == (3, 60, 44)
    # the same in Python, where the default is classifier=None
    rep = restore_images(noisy_photo, ckpt, tmp_path / "py", task="auto", device="cpu")
    assert rep.tasks == {noisy_photo: expected}
    assert torch.equal(read_image(tmp_path / "py" / "noisy.png"), read_image(out / "noisy.png"))


def test_restore_classifier_overrides_the_shipped_one(noisy_photo, tmp_path, capsys):
    ckpt = shipped_weights()["M+EP"]
    haze = _always_file(tmp_path / "haze.pt", "haze")
    out = tmp_path / "out"
    assert (
        main(
            [
                "restore",
                str(noisy_photo),
                "--checkpoint",
                str(ckpt),
                "--output",
                str(out),
                "--task",
                "auto",
                "--classifier",
                str(haze),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "(tasks: haze)" in printed and "shipped" not in printed
    rep = restore_images(noisy_photo, ckpt, tmp_path / "py", task="auto", classifier=haze, device="cpu")
    assert rep.tasks == {noisy_photo: "haze"}
    fixed = restore_images(noisy_photo, ckpt, tmp_path / "fixed", task="haze", device="cpu")
    assert torch.equal(read_image(tmp_path / "fixed" / "noisy.png"), read_image(out / "noisy.png"))
    assert fixed.tasks == rep.tasks


def test_a_bad_classifier_file_is_a_clear_error_and_writes_nothing(noisy_photo, tmp_path, capsys):
    ckpt = str(shipped_weights()["S+EP"])
    text = tmp_path / "notes.pt"
    text.write_text("not a classifier")
    damaged = tmp_path / "damaged.pt"
    state = torch.load(_always_file(tmp_path / "ok.pt", "noise"), weights_only=True)
    state["config"]["width"] = 8  # the weights are 4 wide
    save_checkpoint(state, damaged)
    cases = {
        tmp_path
        / "missing.pt": "classifier file '{}' does not exist (train one with `mio-strategies train-classifier`)",
        text: "cannot read classifier file '{}' (UnpicklingError",
        shipped_weights()["S+EP"]: "'{}' is not a task-classifier file (format 'mio-strategies', expected "
        "'mio-strategies-classifier')",
        damaged: "classifier file '{}' is damaged: its config or weights do not make a TaskClassifier",
    }
    for i, (bad, message) in enumerate(cases.items()):
        out = tmp_path / f"out{i}"
        args = ["restore", str(noisy_photo), "--checkpoint", ckpt, "--output", str(out), "--task", "auto"]
        assert main([*args, "--classifier", str(bad), "--no-progress"]) == 2
        assert message.format(bad) in capsys.readouterr().err
        assert not out.exists()


def test_a_missing_shipped_classifier_says_how_to_go_on(noisy_photo, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shipped_module, "SHIPPED_CLASSIFIER", tmp_path / "gone" / "classifier.pt")
    with pytest.raises(
        FileNotFoundError,
        match=r"missing from this installation: reinstall the package, or pass .* \(--classifier FILE",
    ):
        shipped_classifier()
    args = [
        "restore",
        str(noisy_photo),
        "--checkpoint",
        str(shipped_weights()["S+EP"]),
        "--output",
        str(tmp_path / "out"),
        "--task",
        "auto",
        "--no-progress",
    ]
    assert main(args) == 2
    assert "missing from this installation" in capsys.readouterr().err
    assert main([*args, "--classifier", str(_always_file(tmp_path / "n.pt", "noise"))]) == 0
