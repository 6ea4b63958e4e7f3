"""Task-classifier files: what ``train_classifier`` writes, read back with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from pathlib import Path

import torch

from mio_strategies.checkpoints._checkpoint import read_weights_only
from mio_strategies.prompts import TaskClassifier

__all__ = ["CLASSIFIER_FORMAT", "CLASSIFIER_VERSION", "load_classifier"]

#: The ``"format"`` entry of a task-classifier file.
CLASSIFIER_FORMAT = "mio-strategies-classifier"
#: The classifier file's version: a file of a newer version is refused.
CLASSIFIER_VERSION = 1


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Read a classifier written by :func:`train_classifier` (``weights_only=True``), in eval mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a classifier file (e.g. a training checkpoint was given), or a damaged one (its
            config or weights do not make a :class:`~mio_strategies.prompts.TaskClassifier`); the message
            says which.

    Example:
        >>> clf = load_classifier("classifier.pt")  # doctest: +SKIP
        >>> clf(torch.rand(1, 3, 64, 64)).argmax(-1)  # doctest: +SKIP
    """
    path = Path(path)
    state = read_weights_only(
        path, "classifier file", map_location, hint=" (train one with `mio-strategies train-classifier`)"
    )
    if not isinstance(state, dict) or state.get("format") != CLASSIFIER_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{str(path)!r} is not a task-classifier file (format {found!r}, expected {CLASSIFIER_FORMAT!r}); "
            "write one with `mio-strategies train-classifier`"
        )
    if state.get("version", 0) > CLASSIFIER_VERSION:
        raise ValueError(
            f"classifier file {str(path)!r} has version {state['version']}, newer than this library's: "
            "upgrade mio-strategies"
        )
    try:
        cfg = state["config"]
        clf = TaskClassifier(
            int(cfg["num_tasks"]),
            in_channels=int(cfg["in_channels"]),
            width=int(cfg["width"]),
            arch=str(cfg.get("arch", "library")),
        )
        clf.load_state_dict(state["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a damaged or hand-edited file
        raise ValueError(
            f"classifier file {str(path)!r} is damaged: its config or weights do not make a TaskClassifier "
            f"({type(exc).__name__}: {exc}); train it again with `mio-strategies train-classifier`"
        ) from exc
    return clf.eval()
