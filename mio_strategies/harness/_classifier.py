"""The task classifier of explicit-prompt models: trained on degraded crops, saved, loaded for evaluation.

At test time an explicit-prompt model does not know the task; the paper picks the prompt with a small
classifier (:class:`~mio_strategies.prompts.TaskClassifier`, 0.997 In-Dis accuracy there). This module
trains one on the library's own degradations, writes it atomically as a file read back with
``torch.load(weights_only=True)``, and loads it for ``evaluate(..., task_source="classifier")`` /
``mio-strategies eval --classifier``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mio_strategies.checkpoints import CLASSIFIER_FORMAT, CLASSIFIER_VERSION, save_checkpoint, written_by_library
from mio_strategies.data import MiODataset, embedded_image_paths
from mio_strategies.harness._config import _device_name
from mio_strategies.harness._loop import resolve_device
from mio_strategies.prompts import TaskClassifier, train_task_classifier
from mio_strategies.tasks import NUM_TASKS, parse_tasks
from mio_strategies.utils.outputs import check_output_file
from mio_strategies.utils.validation import choice, finite_float, non_negative_int, positive_int

__all__ = ["ClassifierRun", "train_classifier"]


@dataclass
class ClassifierRun:
    """What :func:`train_classifier` did.

    Attributes:
        path: the written classifier file.
        classifier: the trained :class:`~mio_strategies.prompts.TaskClassifier` (eval mode).
        losses: per-step cross-entropy.
        accuracies: per-step batch accuracy.
    """

    path: Path
    classifier: torch.nn.Module
    losses: list[float]
    accuracies: list[float]

    def recent_accuracy(self, last: int = 50) -> float:
        """Mean batch accuracy over the last ``last`` steps."""
        tail = self.accuracies[-last:]
        return sum(tail) / len(tail) if tail else float("nan")


def train_classifier(
    output: str | Path,
    *,
    images: Any = None,
    tasks: str = "SBNJRHL",
    steps: int = 2000,
    batch_size: int = 16,
    crop: int = 128,
    lr: float = 1e-3,
    width: int = 128,
    preset: str = "in",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    device: str = "auto",
    arch: str = "library",
    implementation: str = "library",
) -> ClassifierRun:
    """Train a :class:`~mio_strategies.prompts.TaskClassifier` on degraded crops and save it to ``output``.

    Batches are drawn from :class:`~mio_strategies.data.MiODataset` (random crops of ``images``, each
    degraded by one of ``tasks`` with the ``preset`` ranges, flips and rotations), all from ``seed``.
    The loss is cross-entropy on the logits (the reference's extra softmax is not repeated).

    Args:
        output: the classifier file to write (e.g. ``classifier.pt``); refused if it exists unless
            ``overwrite``.
        images: GT images (folder, paths or tensors); ``None`` uses the embedded photos.
        tasks: the tasks to tell apart (the classifier always has one logit per library task).
        steps: training budget.
        batch_size: batch size.
        crop: crop side (the reference: 256).
        lr: Adam's learning rate.
        width: conv width (the reference: 128).
        seed: initial weights and data (drawn on the CPU whatever the device: a seed gives the same
            crops, degradations and initial weights on any device).
        implementation: the degradations of the crops, ``"library"`` or ``"reference"``
            (:class:`~mio_strategies.data.MiODataset`).
        arch: ``"library"`` or ``"reference"`` (the reference's activations, see
            :class:`~mio_strategies.prompts.TaskClassifier`; the reference profile's choice).
        device: where to train: ``"auto"`` (CUDA when available, as ``train``), ``"cpu"``, ``"cuda"``
            or ``"cuda:N"``. The file holds CPU tensors either way; the returned classifier stays on
            ``device``.

    Returns:
        :class:`ClassifierRun`.

    Raises:
        FileExistsError: ``output`` is a link or a folder, or exists and not ``overwrite`` (with it, a file
            the library did not write).
        ValueError: a non-positive size, an unknown task or device, or ``"cuda"`` without a CUDA device
            (nothing is written).

    Example:
        >>> run = train_classifier("clf.pt", steps=500, crop=64)  # doctest: +SKIP
        >>> run.recent_accuracy()  # doctest: +SKIP
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("crop", crop), ("width", width)):
        positive_int(name, value)
    if crop < 9:
        raise ValueError(f"crop must be at least 9 pixels (the classifier's two stride-3 convs), got {crop}")
    non_negative_int("seed", seed)
    choice("arch", arch, ("library", "reference"), what="classifier arch", plural="archs")
    finite_float("lr", lr, low=0, low_open=True, type_error=False)
    task_list = parse_tasks(tasks)
    _device_name("device", device)
    dev = resolve_device(device, 0, fix="--device cpu (device='cpu')")
    # a link, a folder, an existing file without overwrite, or with it one the library did not write: refused
    path = check_output_file(output, overwrite=overwrite, what="classifier file", recognise=written_by_library)

    dataset = MiODataset(images if images is not None else embedded_image_paths(), task_list,
                         patch_size=crop, preset=preset, seed=seed, implementation=implementation)
    clf = TaskClassifier(NUM_TASKS, width=width, generator=torch.Generator().manual_seed(seed), arch=arch)
    clf.to(dev)
    gen = torch.Generator().manual_seed(seed + 1)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # items drawn with replacement from the seeded generator; a new dataset epoch (new crops and
        # degradation parameters) once as many items as the dataset holds have been drawn
        n, drawn = len(dataset), 0
        while True:  # train_task_classifier stops after `steps` batches
            dataset.set_epoch(drawn // n)
            items = [dataset[i] for i in torch.randint(n, (batch_size,), generator=gen).tolist()]
            drawn += batch_size
            yield torch.stack([it["lq"] for it in items]), torch.tensor([int(it["task"]) for it in items])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="task classifier", unit="step", dynamic_ncols=True)

    def on_step(step: int, loss: float, acc: float) -> None:
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.2f}")

    with torch.random.fork_rng(devices=[]):
        hist = train_task_classifier(clf, batches(), steps=steps, lr=lr, callback=on_step)
    if bar is not None:
        bar.close()
    clf.eval()
    config = {
        "num_tasks": NUM_TASKS, "in_channels": 3, "width": width, "tasks": "".join(t.letter for t in task_list),
        "steps": steps, "batch_size": batch_size, "crop": crop, "lr": float(lr), "preset": preset, "seed": seed,
        "images": "embedded" if images is None else str(images), "device": dev.type, "arch": arch,
        "implementation": implementation,
    }
    save_checkpoint({
        "format": CLASSIFIER_FORMAT, "version": CLASSIFIER_VERSION, "config": config,
        "state": {k: v.detach().cpu() for k, v in clf.state_dict().items()},
        "history": {"loss": list(hist.losses), "accuracy": list(hist.accuracies)},
    }, path)
    return ClassifierRun(path, clf, list(hist.losses), list(hist.accuracies))
