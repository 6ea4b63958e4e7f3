"""Checkpoints: written atomically, read with ``weights_only=True``, checked against the run they resume."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from mio_strategies.utils.outputs import atomic_file, output_lock
from mio_strategies.utils.outputs import prepare_output_dir as _prepare

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointMismatchError", "NotACheckpointError", "check_compatible",
    "load_checkpoint", "run_folder_lock", "save_checkpoint",
]

CHECKPOINT_FORMAT = "mio-strategies"  # the "format" entry of every harness checkpoint
CHECKPOINT_VERSION = 1
_IDENTITY_KEYS = ("backbone", "strategy")
# What defines a run: a resume must repeat all of it (the optimizer's state would silently keep the old
# lr / betas / weight decay, and the data keys would change the training set mid-run). Free on resume:
# name, device, num_workers, log_every, val_every, val_images, val_size, checkpoint_every, and the speed options
# precision, compile, channels_last (a resume is exact within one precision).
_RUN_KEYS = (
    "backbone_kwargs", "order", "periods", "period_iters", "batch_size", "patch_size", "seed",
    "optimizer", "lr", "lr_min", "betas", "weight_decay", "reset_optimizer_each_period", "reset_optimizer_each_stage", "ema_decay",
    "prompt_size", "train_images", "preset", "repeat", "stream",
)


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
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure with the file name
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


def check_compatible(checkpoint: Mapping[str, Any], config: Mapping[str, Any], *, resume: bool,
                     extend: bool = False) -> None:
    """Refuse a checkpoint from another backbone or strategy (and, to resume, another run setup).

    ``extend`` (with ``resume``): the requested config may have more periods than the saved run (the run
    is continued into them); every other run-defining key must still match, and fewer periods is refused.

    Raises:
        CheckpointMismatchError: listing every differing key as ``key: checkpoint -> requested``.
    """
    saved = with_defaults(checkpoint["config"])
    keys = differing_keys(saved, config, resume=resume)
    more_periods = "periods" in keys and adds_periods(saved, config)
    diffs = [f"{k}: {saved.get(k)!r} in the checkpoint, {config.get(k)!r} requested"
             for k in keys if not (k == "periods" and more_periods and extend and resume)]
    if diffs:
        what = ("extend the run saved in" if extend else "resume this run from") if resume else "load"
        fix = ("; resume with the run's own settings (its config.yaml) or train into another folder" if resume else "")
        if extend:
            fix = "; an extension may add periods (not remove them) and must keep every other setting" + fix
        elif resume and more_periods:
            fix += "; to continue it into more periods, extend it (--extend, or train(..., extend=True))"
        raise CheckpointMismatchError(f"cannot {what} this checkpoint: " + "; ".join(diffs) + fix)


def adds_periods(saved: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether ``config`` asks for more periods than the ``saved`` run's config has (both whole numbers):
    what an extension may change."""
    old, new = saved.get("periods"), config.get("periods")
    return _is_int(old) and _is_int(new) and new > old


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a dict) with every ``TrainConfig`` field it lacks at its default: a configuration
    recorded before a field existed (``reset_optimizer_each_stage``) ran with that default."""
    import dataclasses

    from mio_strategies.harness._config import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    return {**defaults, **config}


def differing_keys(saved: Mapping[str, Any], config: Mapping[str, Any], *, resume: bool) -> list[str]:
    """The run-defining keys on which two configs (as dicts) differ: backbone and strategy (and its options),
    plus, for ``resume``, the run setup (data, optimizer, schedule, EMA, prompt size, seed). A field missing
    from one side (a config recorded before the field existed) counts as its ``TrainConfig`` default."""
    keys = _IDENTITY_KEYS + (_RUN_KEYS if resume else ("backbone_kwargs",))
    saved, config = with_defaults(saved), with_defaults(config)
    return [k for k in keys if _norm(saved.get(k)) != _norm(config.get(k))]


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _norm(x) for k, x in v.items()}
    return v


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
