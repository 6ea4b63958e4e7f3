"""The task classifier shipped with the package: the default of ``--task auto`` and ``--task-source classifier``.

``mio_strategies/harness/weights/classifier.pt`` is a :class:`~mio_strategies.prompts.TaskClassifier` trained
by ``mio-strategies train-classifier`` on the package's embedded photos (its command, config, training log and
per-task accuracy are in ``weights/README.md`` and ``weights/classifier.log.jsonl``). Restoring with
``task="auto"`` and evaluating with ``task_source="classifier"`` use it when no classifier is given.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mio_strategies.checkpoints import load_classifier

__all__ = ["SHIPPED_CLASSIFIER", "resolve_classifier", "shipped_classifier"]

#: The shipped classifier file.
SHIPPED_CLASSIFIER = Path(__file__).resolve().parent / "weights" / "classifier.pt"


def shipped_classifier() -> Path:
    """The path of the task classifier shipped with the package.

    Returns:
        ``mio_strategies/harness/weights/classifier.pt`` (read it with
        :func:`~mio_strategies.checkpoints.load_classifier`).

    Raises:
        FileNotFoundError: the file is missing from this installation (the message says how to go on).

    Example:
        >>> from mio_strategies.harness import load_classifier, shipped_classifier
        >>> load_classifier(shipped_classifier()).num_tasks
        7
    """
    if not SHIPPED_CLASSIFIER.is_file():
        raise FileNotFoundError(
            f"the task classifier shipped with mio-strategies ({str(SHIPPED_CLASSIFIER)!r}) is missing from this "
            "installation: reinstall the package, or pass a classifier file of your own (--classifier FILE; train "
            "one with `mio-strategies train-classifier`)"
        )
    return SHIPPED_CLASSIFIER


def resolve_classifier(
    classifier: str | os.PathLike[str] | torch.nn.Module | None, map_location: str | torch.device = "cpu"
) -> torch.nn.Module:
    """A task classifier from a file, a module or ``None`` (the shipped one), in eval mode.

    Args:
        classifier: a classifier file (``mio-strategies train-classifier``), a module returning task logits
            (used as is), or ``None`` for :func:`shipped_classifier`.
        map_location: where a file's tensors are loaded.

    Returns:
        The classifier, in eval mode.

    Raises:
        FileNotFoundError: the file does not exist (or the shipped one is missing).
        ValueError: the file is not a task-classifier file (e.g. a training checkpoint).
        TypeError: ``classifier`` is neither a path nor an ``nn.Module``.

    Example:
        >>> resolve_classifier(None).training
        False
    """
    if isinstance(classifier, torch.nn.Module):
        return classifier.eval()
    if classifier is None:
        return load_classifier(shipped_classifier(), map_location)
    if isinstance(classifier, (str, os.PathLike)):
        return load_classifier(Path(classifier), map_location)
    raise TypeError(
        f"classifier must be a classifier file, an nn.Module returning task logits or None (the shipped one), "
        f"got {type(classifier).__name__}"
    )
