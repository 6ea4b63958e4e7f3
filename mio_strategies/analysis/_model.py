"""Build a model from ``module:factory`` and load a checkpoint into it (for the ``analyze`` CLI).

The training harness will define the checkpoint format later; until then a checkpoint is a
state dict, or a dict holding one under ``"params"``, ``"state_dict"`` or ``"model"``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

__all__ = ["CHECKPOINT_KEYS", "_load_model"]

CHECKPOINT_KEYS: tuple[str, ...] = ("params", "state_dict", "model")


def _load_model(spec: str, checkpoint: str | Path | None = None, *, key: str | None = None) -> nn.Module:
    """Call the factory named by ``spec`` (``"package.module:function"``) and load ``checkpoint``.

    Args:
        spec: import path and attribute of a callable returning an ``nn.Module`` (no arguments).
        checkpoint: a ``.pt`` file read with ``torch.load(weights_only=True)``; loaded strictly.
        key: the entry of a checkpoint dict holding the state dict (default: the first of
            ``params``, ``state_dict``, ``model`` present, else the dict itself).

    Returns:
        The model on the CPU.

    Raises:
        ValueError: a spec without ``:``, an import or attribute that fails, a factory that does
            not return a module, a missing key, or a state dict that does not fit.
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
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, not a state dict")
    if key is not None:
        if key not in state:
            raise ValueError(f"checkpoint {str(path)!r} has no key {key!r}; its keys: {sorted(map(str, state))[:20]}")
        state = state[key]
    else:
        for candidate in CHECKPOINT_KEYS:
            if isinstance(state.get(candidate), dict):
                state = state[candidate]
                break
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {str(path)!r} does not fit {spec!r}: {exc}") from exc
    return model
