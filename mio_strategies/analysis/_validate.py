"""Input checks shared by the analysis functions. Each returns clean NumPy data or raises with a fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mio_strategies.utils.validation import int_in_range

__all__ = [
    "PROJECTION_METHODS",
    "_as_numpy",
    "_validate_clusters",
    "_validate_features",
    "_validate_labels",
    "_validate_method",
    "_validate_seed",
]

PROJECTION_METHODS: tuple[str, ...] = ("umap", "tsne", "pca")
"""The projection methods :func:`project` accepts."""


def _as_numpy(x: Any, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{what} must be a torch.Tensor, numpy array or list, got {type(x).__name__}")


def _validate_features(features: Any, *, min_samples: int = 1) -> np.ndarray:
    """Features as a finite float64 array of shape (N, C).

    Raises:
        TypeError: not an array or tensor, or not numeric.
        ValueError: not 2-D, too few samples, no channels, or NaN/inf values.
    """
    arr = _as_numpy(features, "features")
    if arr.ndim != 2:
        raise ValueError(
            f"Expected 2D features of shape (N, C), got {arr.ndim}D with shape {tuple(arr.shape)}; "
            "pool spatial dimensions first (capture_features does)"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"features must be numeric, got dtype {arr.dtype}")
    n, c = arr.shape
    if n < min_samples:
        raise ValueError(f"Expected at least {min_samples} samples (rows of features), got {n}")
    if c < 1:
        raise ValueError(f"features have no channels (shape {tuple(arr.shape)})")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise ValueError(
            f"features contain NaN or inf: {int((~finite).sum())} non-finite values in "
            f"{bad_rows.size} rows (first rows {bad_rows[:5].tolist()}); remove those samples or fix the model output"
        )
    return arr


def _validate_labels(labels: Any, n: int | None = None) -> np.ndarray:
    """Labels as a 1-D array, optionally of length ``n``.

    Raises:
        TypeError: not an array/tensor/list, or float labels.
        ValueError: not 1-D, or a length other than ``n``.
    """
    arr = _as_numpy(labels, "labels")
    if arr.ndim != 1:
        raise ValueError(f"Expected 1D labels of shape (N,), got {arr.ndim}D with shape {tuple(arr.shape)}")
    if np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"labels must be integers or strings (task ids or names), got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(
            f"mismatched lengths: features have {n} rows but labels have {arr.shape[0]} entries; "
            "give one label per sample"
        )
    return arr


def _validate_clusters(labels: np.ndarray) -> None:
    """At least two distinct labels, each with at least two samples.

    Raises:
        ValueError: fewer than 2 distinct labels, or a label with a single sample.
    """
    values, counts = np.unique(labels, return_counts=True)
    if values.size < 2:
        found = values.tolist()
        raise ValueError(
            f"Calinski-Harabasz needs at least 2 distinct labels, got {values.size} ({found}); "
            "give samples of two or more tasks"
        )
    single = values[counts < 2].tolist()
    if single:
        raise ValueError(
            f"labels {single} have only 1 sample each; every label needs at least 2 samples "
            "(add samples or drop those labels)"
        )


def _validate_method(method: Any) -> str:
    """A projection method name, lower-cased.

    Raises:
        ValueError: not one of ``umap``, ``tsne``, ``pca``.
    """
    if not isinstance(method, str) or method.lower() not in PROJECTION_METHODS:
        raise ValueError(f"unknown projection method {method!r}: choose one of {list(PROJECTION_METHODS)}")
    return method.lower()


def _validate_seed(seed: Any) -> int:
    """A seed usable as a NumPy/scikit-learn ``random_state``.

    Raises:
        TypeError: not an integer.
        ValueError: outside ``0 .. 2**32 - 1``.
    """
    return int_in_range("seed", seed, 0, 2**32 - 1, type_error=True, numpy=True)
