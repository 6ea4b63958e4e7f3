"""Import checks for the optional ``analysis`` extra (scikit-learn, umap-learn, matplotlib)."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

__all__ = ["INSTALL_HINT", "require"]

INSTALL_HINT = "pip install mio-strategies[analysis]"
"""The command that installs the ``analysis`` extra, quoted by the errors of a missing dependency."""

# import name -> distribution name, for the error message
_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "umap": "umap-learn",
    "matplotlib": "matplotlib",
    "threadpoolctl": "threadpoolctl (a dependency of scikit-learn)",
}


def require(module: str, *, feature: str) -> ModuleType:
    """Import an optional dependency, or fail with an error that says how to install it.

    Args:
        module: the import name (``"sklearn.metrics"``, ``"umap"``, ``"matplotlib.figure"``).
        feature: what needs it, for the message (``"project(method='umap')"``).

    Returns:
        The imported module.

    Raises:
        ImportError: the package is missing; the message names it and ``pip install mio-strategies[analysis]``.

    Example:
        >>> metrics = require("sklearn.metrics", feature="calinski_harabasz")
    """
    top = module.split(".")[0]
    try:
        with warnings.catch_warnings():
            # umap-learn warns at import time that ParametricUMAP (TensorFlow) is unavailable;
            # it is not used here.
            warnings.simplefilter("ignore", ImportWarning)
            return importlib.import_module(module)
    except ImportError as exc:
        dist = _DISTRIBUTIONS.get(top, top)
        raise ImportError(
            f"{feature} needs {dist} (import {module!r} failed: {exc}); "
            f"install the analysis extra: {INSTALL_HINT}"
        ) from exc
