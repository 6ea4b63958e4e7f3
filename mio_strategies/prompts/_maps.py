"""Reading the reference's explicit prompt map file (one random 128x128 map per task, its task order)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..tasks import NUM_TASKS, TASKS

__all__ = ["REFERENCE_MAP_ORDER", "load_reference_prompt_maps"]

REFERENCE_MAP_ORDER = "BNJRHLS"
"""The task of each map in the reference's file, by index: blur, noise, jpeg, rain, haze, low-light ("dark"), sr."""


def load_reference_prompt_maps(path: str | os.PathLike) -> torch.Tensor:
    """Read a reference-format prompt map file as ``(7, 1, S, S)`` float32 maps in the library's task order.

    The reference ships its explicit prompts as one ``(7, S, S)`` array (S = 128) whose index follows
    :data:`REFERENCE_MAP_ORDER` (blur, noise, JPEG, rain, haze, low-light, SR); this reorders it to the
    library's ids (S, B, N, J, R, H, L) for ``ExplicitPrompt(maps=...)``.

    Args:
        path: a ``.npy`` file (numpy's format, read without pickles) or a ``.pt`` / ``.pth`` file holding one
            tensor (read with ``torch.load(weights_only=True)``).

    Returns:
        ``(7, 1, S, S)`` float32 tensor; row ``t`` is the map of library task id ``t``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: another suffix, an unreadable file, or an array that is not ``(7, S, S)`` (or
            ``(7, 1, S, S)``) of finite numbers with S >= 5.
        TypeError: a ``.pt`` file holding something other than a tensor.

    Example:
        >>> import tempfile, numpy as np
        >>> f = tempfile.NamedTemporaryFile(suffix=".npy", delete=False).name
        >>> np.save(f, np.arange(7 * 8 * 8, dtype=np.float64).reshape(7, 8, 8))
        >>> m = load_reference_prompt_maps(f)
        >>> m.shape, m[0, 0, 0, 0].item()  # SR is the reference's last map
        (torch.Size([7, 1, 8, 8]), 384.0)
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"prompt map file {str(p)!r} does not exist")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            t = torch.from_numpy(np.load(p, allow_pickle=False).astype(np.float32))
        elif suffix in (".pt", ".pth"):
            t = torch.load(p, map_location="cpu", weights_only=True)
        else:
            raise ValueError(f"prompt map file {str(p)!r} must be .npy, .pt or .pth, got {suffix or 'no suffix'!r}")
    except ValueError:
        raise
    except Exception as exc:  # a corrupt file, a pickled object: one clear message
        raise ValueError(f"cannot read prompt map file {str(p)!r}: {exc}") from exc
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"prompt map file {str(p)!r} must hold one tensor, got {type(t).__name__}")
    t = t.detach().to(torch.float32)
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 3 or t.shape[0] != NUM_TASKS or t.shape[1] != t.shape[2] or t.shape[1] < 5:
        raise ValueError(
            f"prompt map file {str(p)!r} must hold a ({NUM_TASKS}, S, S) array (S >= 5, the reference's 7 x 128 x "
            f"128), got shape {tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"prompt map file {str(p)!r} contains NaN or infinite values")
    index = [REFERENCE_MAP_ORDER.index(task.letter) for task in TASKS]
    return t[index].unsqueeze(1).contiguous()
