"""The one place where basicsr is imported.

basicsr 1.4.2 (its last release) imports ``torchvision.transforms.functional_tensor``, a module that
torchvision removed in 0.17. The well-known fix, applied here and nowhere else, is to alias that name
to ``torchvision.transforms.functional`` (which holds the same ``rgb_to_grayscale``) before basicsr is
imported. Nothing is faked: torchvision itself must be installed.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

_INSTALL_HINT = (
    "basicsr is not installed (the `basicsr` extra, needed by SwinIR and the BasicSR integration): "
    "`pip install torch==2.14.1 torchvision==0.29.1` then "
    "`pip install --no-build-isolation basicsr==1.4.2` (see the README's environment recipe)"
)


def _alias_functional_tensor() -> None:
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    try:
        functional = importlib.import_module("torchvision.transforms.functional")
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError(f"torchvision is required by basicsr but failed to import ({exc}). {_INSTALL_HINT}") from exc
    sys.modules[name] = functional


def import_basicsr(submodule: str | None = None) -> Any:
    """Import ``basicsr`` (or ``basicsr.<submodule>``) after applying the torchvision alias.

    Returns:
        The module, typed ``Any``: basicsr ships no type information, and callers read its attributes.

    Raises:
        ImportError: basicsr or torchvision missing, with the install recipe.
    """
    _alias_functional_tensor()
    try:
        mod = importlib.import_module("basicsr" if submodule is None else f"basicsr.{submodule}")
    except ImportError as exc:
        if getattr(exc, "name", None) == "basicsr":  # basicsr itself is not installed
            raise ImportError(_INSTALL_HINT) from exc
        raise
    return mod


def basicsr_available() -> bool:
    """True when basicsr (with torchvision) imports."""
    try:
        import_basicsr()
    except ImportError:
        return False
    return True
