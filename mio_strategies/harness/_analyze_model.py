"""The model the ``analyze`` CLI reads features from: a ``mio-strategies train`` checkpoint, or a
``module:factory`` plus a plain state dict.

A harness checkpoint is read by the harness' own loader (:func:`mio_strategies.harness.load_restorer`);
a plain checkpoint is a state dict, or a dict holding one under ``"params"``, ``"state_dict"`` or
``"model"`` (BasicSR and common training scripts).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mio_strategies.checkpoints import CHECKPOINT_FORMAT, NotACheckpointError, read_weights_only
from mio_strategies.harness._train import load_restorer

__all__ = ["CHECKPOINT_KEYS", "_RestorerModule", "_load_model", "_load_train_checkpoint"]

CHECKPOINT_KEYS: tuple[str, ...] = ("params", "state_dict", "model")


class _RestorerModule(nn.Module):
    """A harness ``Restorer`` as one module: ``forward(lq, task_ids)`` restores with each input's task.

    The backbone and the prompt injector are submodules (so ``eval()`` and the device reach both); the
    backbone's own module names are those of ``restorer.backbone.named_modules()``. With an explicit
    prompt the task ids select the prompt (the true task, as ``mio-strategies eval`` does by default);
    other strategies ignore them. Inputs are padded to the backbone's size multiple.
    """

    def __init__(self, restorer: Any) -> None:
        super().__init__()
        self.backbone = restorer.backbone
        if restorer.injector is not None:
            self.injector = restorer.injector
        self.__dict__["_restorer"] = restorer  # not a module: kept out of named_modules()

    def forward(self, lq: Tensor, task_ids: Tensor | None = None) -> Tensor:
        return self.__dict__["_restorer"].restore(lq, task_ids)


def _load_train_checkpoint(path: str | Path, *, ema: bool = True) -> tuple[_RestorerModule, str]:
    """The model a ``mio-strategies train`` checkpoint holds, and a label ``"<backbone> <strategy>"``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a harness checkpoint (the message says to give ``--model`` for a plain one).
    """
    try:
        restorer, cfg, _ = load_restorer(path, ema=ema)
    except NotACheckpointError as exc:
        raise ValueError(f"{exc}; for a plain state dict give --model MODULE:FACTORY as well") from exc
    return _RestorerModule(restorer), f"{cfg.backbone} {cfg.strategy}"


def _load_model(spec: str, checkpoint: str | Path | None = None, *, key: str | None = None) -> nn.Module:
    """Call the factory named by ``spec`` (``"package.module:function"``) and load ``checkpoint``.

    Args:
        spec: import path and attribute of a callable returning an ``nn.Module`` (no arguments).
        checkpoint: a ``.pt`` state dict read with ``torch.load(weights_only=True)``; loaded strictly.
        key: the entry of a checkpoint dict holding the state dict (default: the first of
            ``params``, ``state_dict``, ``model`` present, else the dict itself).

    Returns:
        The model on the CPU.

    Raises:
        ValueError: a spec without ``:``, an import or attribute that fails, a factory that does
            not return a module, a ``mio-strategies train`` checkpoint (it builds its own model: give
            it without ``--model``), a missing key, or a state dict that does not fit.
        FileNotFoundError: the checkpoint file does not exist.

    Example:
        >>> model = _load_model("torch.nn:Identity")
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model must look like 'package.module:factory', got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load model factory {spec!r}: {exc}") from exc
    if not callable(factory):
        raise ValueError(f"{spec!r} is a {type(factory).__name__}, not a callable returning an nn.Module")
    model = factory()
    if not isinstance(model, nn.Module):
        raise ValueError(f"{spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    if checkpoint is None:
        return model
    path = Path(checkpoint)
    state = read_weights_only(path, "checkpoint")
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, not a state dict")

    if state.get("format") == CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint {str(path)!r} was written by `mio-strategies train` and names its own backbone "
            f"({state.get('backbone')!r}, {state.get('strategy')!r}): give it without --model"
        )
    if key is not None:
        if key not in state:
            raise ValueError(f"checkpoint {str(path)!r} has no key {key!r}; its keys: {sorted(map(str, state))[:20]}")
        state = state[key]
    else:
        for candidate in CHECKPOINT_KEYS:
            if isinstance(state.get(candidate), dict):
                state = state[candidate]
                break
    if not isinstance(state, dict):
        raise ValueError(f"entry {key!r} of checkpoint {str(path)!r} holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        # entries that are state dicts themselves (BasicSR's {"params_ema": {...}}), not a module's extra state
        nested = [str(k) for k, v in state.items()
                  if isinstance(v, dict) and v and all(isinstance(t, Tensor) for t in v.values())]
        hint = f" (its entries {nested} hold state dicts: pass --checkpoint-key {nested[0]})" if nested else ""
        raise ValueError(f"checkpoint {str(path)!r} does not fit {spec!r}{hint}: {exc}") from exc
    return model
