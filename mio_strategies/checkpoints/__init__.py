"""Checkpoint files: written atomically, read with ``torch.load(weights_only=True)``, refused when foreign.

Training checkpoints (``format: mio-strategies``), task-classifier files, the run folder and its lock.
Whether a checkpoint fits the run that resumes it is the application's question
(:mod:`mio_strategies.harness`), not this layer's.

Example:
    >>> from mio_strategies.checkpoints import load_checkpoint, save_checkpoint
    >>> path = save_checkpoint({"format": "mio-strategies", "config": {}}, "run/checkpoint.pt")  # doctest: +SKIP
    >>> load_checkpoint(path)["config"]  # doctest: +SKIP
    {}
"""

from mio_strategies.checkpoints._checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointMismatchError,
    NotACheckpointError,
    load_checkpoint,
    prepare_output_dir,
    read_weights_only,
    run_folder_lock,
    save_checkpoint,
    written_by_library,
)
from mio_strategies.checkpoints._classifier import CLASSIFIER_FORMAT, CLASSIFIER_VERSION, load_classifier

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CLASSIFIER_FORMAT",
    "CLASSIFIER_VERSION",
    "CheckpointMismatchError",
    "NotACheckpointError",
    "load_checkpoint",
    "load_classifier",
    "prepare_output_dir",
    "read_weights_only",
    "run_folder_lock",
    "save_checkpoint",
    "written_by_library",
]
