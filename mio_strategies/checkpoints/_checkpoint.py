"""Checkpoints: written atomically, read with ``weights_only=True``; the run folder they live in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from mio_strategies.utils.outputs import atomic_file, output_lock
from mio_strategies.utils.outputs import prepare_output_dir as _prepare

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointMismatchError", "NotACheckpointError", "load_checkpoint",
    "prepare_output_dir", "read_weights_only", "run_folder_lock", "save_checkpoint",
]

#: The ``"format"`` entry of every training checkpoint the harness writes.
CHECKPOINT_FORMAT = "mio-strategies"
#: The checkpoint layout's version: a file of a newer version is refused.
CHECKPOINT_VERSION = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint that belongs to another backbone, strategy or run configuration."""


class NotACheckpointError(ValueError):
    """A readable file that is not a harness checkpoint (e.g. a plain state dict)."""


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then a rename.

    An interrupted save leaves the previous checkpoint intact and no half-written file under ``path``.

    Example:
        >>> save_checkpoint({"version": 1, "model": {}}, "run/last.pt")  # doctest: +SKIP
    """
    path = Path(path)
    with atomic_file(path, "wb", fsync=True) as fh:
        torch.save(dict(state), fh)
    return path


def read_weights_only(path: Path, what: str, map_location: str | torch.device = "cpu", hint: str = "") -> Any:
    """``torch.load(path, weights_only=True)``, with a missing or unreadable file reported by name.

    Raises:
        FileNotFoundError: no such file (``hint`` is appended to the message).
        ValueError: the file cannot be unpickled with ``weights_only=True`` (corrupt or foreign).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist{hint}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read {what} {str(path)!r} ({type(exc).__name__}: {exc})") from exc


def written_by_library(path: str | Path) -> bool:
    """Whether ``path`` is a file the harness wrote (a checkpoint, exported weights, a task classifier):
    what ``overwrite`` may replace."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False
    return isinstance(state, dict) and str(state.get("format", "")).startswith(CHECKPOINT_FORMAT)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by the harness with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be read (corrupt); :class:`NotACheckpointError` (a ValueError): it
            is readable but not a harness checkpoint. The message names the file.
    """
    path = Path(path)
    state = read_weights_only(path, "checkpoint", map_location)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "config" not in state:
        raise NotACheckpointError(f"{str(path)!r} is not a mio-strategies checkpoint (no 'format'/'config' entries)")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has format version {state['version']}, newer than this library's "
            f"{CHECKPOINT_VERSION}: upgrade mio-strategies"
        )
    return state


@contextlib.contextmanager
def run_folder_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on training into ``path`` while the block runs, so that a second process (a
    relaunch while an old one still runs, two jobs given one folder, the same folder reached through a
    symlink or another relative path) is refused instead of interleaving its checkpoints and log with the
    first one's. See :func:`mio_strategies.utils.outputs.output_lock` (keyed on the resolved folder, also
    safe on NFS).

    Raises:
        FileExistsError: another process holds the lock.
    """
    with output_lock(path, activity="trained into", alternative="train into another folder"):
        yield


def prepare_output_dir(path: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """Create the run folder, under the library's output policy
    (:func:`mio_strategies.utils.outputs.prepare_output_dir`).

    Raises:
        FileExistsError: a symlink, a file, or a non-empty folder without ``overwrite``/``resume`` (or,
            with ``overwrite``, one the library did not write).
        PermissionError: not writable.
    """
    return _prepare(path, overwrite=overwrite, resume=resume, what="run folder", command="train")
