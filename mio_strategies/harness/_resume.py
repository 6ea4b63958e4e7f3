"""Resuming a run: is a checkpoint's configuration the one requested (same backbone, strategy and setup)?"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mio_strategies.checkpoints import CheckpointMismatchError
from mio_strategies.degradations import DEFAULT_STREAM, IMPLEMENTATION_CODECS
from mio_strategies.harness._config import TrainConfig
from mio_strategies.utils.validation import is_int

__all__ = ["adds_periods", "check_compatible", "differing_keys", "with_defaults"]

_IDENTITY_KEYS = ("backbone", "strategy")
# What defines a run: a resume must repeat all of it (the optimizer's state would silently keep the old
# lr / betas / weight decay, and the data keys would change the training set mid-run). Free on resume:
# name, device, num_workers, log_every, val_every, val_images, val_size, checkpoint_every, and the speed options
# precision, compile, channels_last (a resume is exact within one precision).
_RUN_KEYS = (
    "backbone_kwargs",
    "order",
    "periods",
    "period_iters",
    "batch_size",
    "patch_size",
    "seed",
    "optimizer",
    "lr",
    "lr_min",
    "betas",
    "weight_decay",
    "reset_optimizer_each_period",
    "reset_optimizer_each_stage",
    "ema_decay",
    "prompt_size",
    "train_images",
    "preset",
    "repeat",
    "data_implementation",
    "prompt_init",
    "prompt_maps",
    "stream",
    "synthesis",
    "jpeg_codec",
)


def check_compatible(
    checkpoint: Mapping[str, Any], config: Mapping[str, Any], *, resume: bool, extend: bool = False
) -> None:
    """Refuse a checkpoint from another backbone or strategy (and, to resume, another run setup).

    ``extend`` (with ``resume``): the requested config may have more periods than the saved run (the run
    is continued into them); every other run-defining key must still match, and fewer periods is refused.

    Raises:
        CheckpointMismatchError: listing every differing key as ``key: checkpoint -> requested``.
    """
    saved = with_defaults(checkpoint["config"])
    keys = differing_keys(saved, config, resume=resume)
    more_periods = "periods" in keys and adds_periods(saved, config)
    diffs = [
        f"{k}: {saved.get(k)!r} in the checkpoint, {config.get(k)!r} requested"
        for k in keys
        if not (k == "periods" and more_periods and extend and resume)
    ]
    if diffs:
        what = ("extend the run saved in" if extend else "resume this run from") if resume else "load"
        fix = "; resume with the run's own settings (its config.yaml) or train into another folder" if resume else ""
        if extend:
            fix = "; an extension may add periods (not remove them) and must keep every other setting" + fix
        elif resume and more_periods:
            fix += "; to continue it into more periods, extend it (--extend, or train(..., extend=True))"
        raise CheckpointMismatchError(f"cannot {what} this checkpoint: " + "; ".join(diffs) + fix)


def adds_periods(saved: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether ``config`` asks for more periods than the ``saved`` run's config has (both whole numbers):
    what an extension may change."""
    old, new = saved.get("periods"), config.get("periods")
    return is_int(old) and is_int(new) and new > old


def with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a dict) with every ``TrainConfig`` field it lacks at its default: a configuration
    recorded before a field existed (``reset_optimizer_each_stage``) ran with that default."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    return {**defaults, **config}


def differing_keys(saved: Mapping[str, Any], config: Mapping[str, Any], *, resume: bool) -> list[str]:
    """The run-defining keys on which two configs (as dicts) differ: backbone and strategy (and its options),
    plus, for ``resume``, the run setup (data, optimizer, schedule, EMA, prompt size, seed). A field missing
    from one side (a config recorded before the field existed) counts as its ``TrainConfig`` default."""
    keys = _IDENTITY_KEYS + (_RUN_KEYS if resume else ("backbone_kwargs",))
    saved, config = _resolved(with_defaults(saved)), _resolved(with_defaults(config))
    return [k for k in keys if _norm(saved.get(k)) != _norm(config.get(k))]


def _resolved(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with a null ``stream`` / ``jpeg_codec`` replaced by what null means (the default stream; the
    data implementation's codec): ``stream: null`` and ``stream: torch`` train on the same data, so a run
    started with one resumes with the other."""
    out = dict(config)
    if out.get("stream") is None:
        out["stream"] = DEFAULT_STREAM
    if out.get("jpeg_codec") is None:
        out["jpeg_codec"] = IMPLEMENTATION_CODECS.get(str(out.get("data_implementation")))
    return out


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _norm(x) for k, x in v.items()}
    return v
