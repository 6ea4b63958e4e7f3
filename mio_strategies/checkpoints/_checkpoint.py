"""Checkpoints: written atomically, read with ``weights_only=True``; the run folder they live in."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointMismatchError", "NotACheckpointError", "load_checkpoint",
    "prepare_output_dir", "read_weights_only", "run_folder_lock", "save_checkpoint",
]

CHECKPOINT_FORMAT = "mio-strategies"  # the "format" entry of every harness checkpoint
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(dict(state), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure with the file name
        raise ValueError(f"cannot read {what} {str(path)!r} ({type(exc).__name__}: {exc})") from exc


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
    relaunch while an old one still runs, two jobs given one folder) is refused instead of interleaving its
    checkpoints and log with the first one's. The lock is ``.<name>.lock`` beside the folder (the folder
    itself may be replaced by ``overwrite``), removed at the end; the parent folder is created if missing.
    Without ``fcntl`` (not POSIX) nothing is locked.

    Raises:
        FileExistsError: another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileExistsError(
                f"{str(path)!r} is being trained into by another process (it holds {str(lock)!r}): wait for it to "
                "finish or stop it, or train into another folder"
            ) from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)  # still held: a process that opens it now finds a new file


def prepare_output_dir(path: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """Create the run folder; an existing non-empty one is refused unless ``overwrite`` or ``resume``.

    Raises:
        FileExistsError: the folder exists and has files (the message says to pass --overwrite or --resume).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"output {str(path)!r} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not resume:
        if not overwrite:
            raise FileExistsError(
                f"output folder {str(path)!r} already exists and is not empty: pass --overwrite "
                "(overwrite=True) to replace it, or --resume to continue the run in it"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
