"""TaskClassifier: a small CNN predicting the task of a degraded image, and its training helper."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks import NUM_TASKS
from ..utils.validation import choice, positive_int
from ._init import check_generator, default_generator, make_layer, seeded_init_

__all__ = ["TaskClassifier", "train_task_classifier", "classifier_accuracy", "ClassifierHistory", "CLASSIFIER_ARCHS"]

#: ``"library"``: ReLU after every conv; ``"reference"``: the reference's LeakyReLU(0.1), none after the last conv
CLASSIFIER_ARCHS = ("library", "reference")


class TaskClassifier(nn.Module):
    """Predict which of the tasks degraded an image; returns logits ``(B, num_tasks)``.

    Layers: conv 3->128 (k3, s3), conv 128->128 (k3, s3), two 1x1 convs 128->128, a 1x1 conv to 32,
    global average pooling, linear 32->num_tasks (the reference's layer sizes). ``arch="library"``
    (default) puts a ReLU after every conv, the last included; ``arch="reference"`` is the reference's
    classifier: LeakyReLU(0.1) between the convs and nothing after the last one. Either is trained with
    cross-entropy on the logits (the reference applied a softmax before its cross-entropy, i.e. twice;
    that is not reproduced).

    Args:
        num_tasks: number of classes (default 7).
        in_channels: image channels.
        width: width of the convs (128 in the reference).
        generator: seeds the initial weights (default seed 0).
        arch: ``"library"`` or ``"reference"``: the activations, as above.

    Raises:
        ValueError: non-positive sizes, an unknown ``arch``.
        TypeError: ``generator`` is not a ``torch.Generator``.

    Example:
        >>> clf = TaskClassifier()
        >>> clf(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 7])
    """

    def __init__(self, num_tasks: int = NUM_TASKS, *, in_channels: int = 3, width: int = 128,
                 generator: torch.Generator | None = None, arch: str = "library") -> None:
        super().__init__()
        for name, v in (("num_tasks", num_tasks), ("in_channels", in_channels), ("width", width)):
            positive_int(name, v)
        choice("arch", arch, CLASSIFIER_ARCHS, what="classifier arch", plural="archs")
        check_generator(generator, "TaskClassifier(generator=...)")
        self.num_tasks = num_tasks
        self.in_channels = in_channels
        self.arch = arch

        def act() -> nn.Module:
            return nn.LeakyReLU(0.1, inplace=True) if arch == "reference" else nn.ReLU(inplace=True)

        last: list[nn.Module] = [] if arch == "reference" else [nn.ReLU(inplace=True)]
        self.features = nn.Sequential(
            make_layer(nn.Conv2d, in_channels, width, 3, stride=3), act(),
            make_layer(nn.Conv2d, width, width, 3, stride=3), act(),
            make_layer(nn.Conv2d, width, width, 1), act(),
            make_layer(nn.Conv2d, width, width, 1), act(),
            make_layer(nn.Conv2d, width, 32, 1), *last,
        )
        self.head = make_layer(nn.Linear, 32, num_tasks)
        seeded_init_(self, generator if generator is not None else default_generator())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != self.in_channels:
            raise ValueError(f"TaskClassifier expects images (B, {self.in_channels}, H, W), got shape {tuple(image.shape)}")
        if image.shape[-1] < 9 or image.shape[-2] < 9:
            raise ValueError(
                f"TaskClassifier needs images of at least 9x9 pixels (two stride-3 convs), got {tuple(image.shape[-2:])}"
            )
        return self.head(self.features(image).mean(dim=(-2, -1)))

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """Predicted task ids ``(B,)`` (long)."""
        return self(image).argmax(dim=1)


@dataclass
class ClassifierHistory:
    """What :func:`train_task_classifier` did: the loss and accuracy of every step."""

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.losses)


def _check_batch(batch: Any, num_tasks: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch {step}: expected (images, task_ids), got {type(batch).__name__}")
    images, ids = batch
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"batch {step}: images must be a (B, C, H, W) tensor")
    ids = torch.as_tensor(ids)
    if ids.dtype.is_floating_point or ids.ndim != 1 or ids.shape[0] != images.shape[0]:
        raise ValueError(f"batch {step}: task_ids must be {images.shape[0]} integer ids, got {ids.dtype} {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_tasks):
        raise ValueError(f"batch {step}: task ids must lie in 0..{num_tasks - 1}, got {ids.tolist()}")
    return images, ids.long()


def train_task_classifier(
    classifier: TaskClassifier,
    batches: Iterable[Any],
    *,
    steps: int | None = None,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    device: torch.device | str | None = None,
    callback: Callable[[int, float, float], None] | None = None,
) -> ClassifierHistory:
    """Train ``classifier`` with cross-entropy on its logits over ``(images, task_ids)`` batches.

    Args:
        classifier: the model to train (its train/eval mode is restored afterwards).
        batches: any iterable (a DataLoader, a list, a generator) of ``(images, task_ids)``.
        steps: stop after this many batches (default: exhaust ``batches``).
        lr: Adam learning rate when ``optimizer`` is not given.
        optimizer: an optimizer over the classifier's parameters.
        device: move each batch there (default: the classifier's device).
        callback: called as ``callback(step, loss, accuracy)`` after every step.

    Returns:
        The per-step losses and batch accuracies.

    Raises:
        ValueError: a malformed batch or ids out of range (nothing is stepped for that batch).

    Example:
        >>> clf = TaskClassifier(width=8)
        >>> data = [(torch.rand(4, 3, 18, 18), torch.tensor([0, 1, 2, 3]))]
        >>> train_task_classifier(clf, data).steps
        1
    """
    if steps is not None:
        positive_int("steps", steps, note=" or None")
    params = [p for p in classifier.parameters() if p.requires_grad]
    opt = optimizer if optimizer is not None else torch.optim.Adam(params, lr=lr)
    dev = torch.device(device) if device is not None else next(classifier.parameters()).device
    was_training = classifier.training
    classifier.train()
    history = ClassifierHistory()
    try:
        for step, batch in enumerate(batches):
            if steps is not None and step >= steps:
                break
            images, ids = _check_batch(batch, classifier.num_tasks, step)
            images, ids = images.to(dev), ids.to(dev)
            logits = classifier(images)
            loss = F.cross_entropy(logits, ids)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc = (logits.detach().argmax(dim=1) == ids).float().mean().item()
            history.losses.append(loss.item())
            history.accuracies.append(acc)
            if callback is not None:
                callback(step, history.losses[-1], acc)
    finally:
        classifier.train(was_training)
    return history


@torch.no_grad()
def classifier_accuracy(
    classifier: nn.Module, batches: Iterable[Any], *, num_tasks: int = NUM_TASKS
) -> tuple[float, torch.Tensor]:
    """Accuracy and confusion matrix ``(num_tasks, num_tasks)`` (rows: true task) over ``(images, ids)`` batches.

    Example:
        >>> acc, confusion = classifier_accuracy(TaskClassifier(width=8), [(torch.rand(2, 3, 18, 18), torch.tensor([0, 6]))])
        >>> confusion.sum().item()
        2
    """
    was_training = classifier.training
    classifier.eval()
    confusion = torch.zeros(num_tasks, num_tasks, dtype=torch.long)
    dev = next(classifier.parameters()).device
    try:
        for step, batch in enumerate(batches):
            images, ids = _check_batch(batch, num_tasks, step)
            pred = classifier(images.to(dev)).argmax(dim=1).cpu()
            confusion.index_put_((ids, pred), torch.ones_like(ids), accumulate=True)
    finally:
        classifier.train(was_training)
    total = int(confusion.sum())
    if total == 0:
        raise ValueError("no samples: batches was empty")
    return float(confusion.diag().sum()) / total, confusion
