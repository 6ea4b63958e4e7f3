"""2-D embeddings of pooled features: UMAP, t-SNE or PCA, reproducible for a seed.

Example:
    >>> import torch
    >>> from mio_strategies.analysis import project
    >>> feats = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    >>> project(feats, method="pca", seed=0).shape
    (50, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mio_strategies.analysis._deps import require
from mio_strategies.analysis._validate import (
    PROJECTION_METHODS,
    _validate_features,
    _validate_method,
    _validate_seed,
)
from mio_strategies.utils.validation import positive_int

__all__ = ["PROJECTION_METHODS", "project"]


def _check_options(options: dict[str, Any]) -> None:
    reserved = {"n_components", "random_state"}
    clash = sorted(reserved & set(options))
    if clash:
        raise ValueError(
            f"options {clash} are set by project() itself (2 components, random_state=seed); "
            "remove them and use the seed argument"
        )


def project(
    features: Any, method: str = "umap", *, seed: int = 0, threads: int | None = 1, **options: Any
) -> np.ndarray:
    """Embed ``(N, C)`` features in two dimensions.

    The same features, method and seed give the same embedding (UMAP runs single-threaded when
    seeded; t-SNE and PCA are deterministic for a ``random_state``).

    Args:
        features: ``(N, C)`` finite features (tensor or array), ``N >= 3``, ``C >= 2``.
        method: ``"umap"`` (umap-learn), ``"tsne"`` or ``"pca"`` (scikit-learn).
        seed: ``random_state`` of the method, ``0 .. 2**32 - 1``.
        threads: OpenMP/BLAS threads for the method's native code (``None``: the libraries'
            defaults). One thread is fast for DDR-sized sets (about 700 points) and avoids the
            many-fold slowdown of spinning OpenMP threads on a busy machine; raise it for large sets.
        **options: passed to ``umap.UMAP`` / ``sklearn.manifold.TSNE`` / ``sklearn.decomposition.PCA``.
            By default UMAP uses ``n_neighbors=min(15, N - 1)`` and t-SNE
            ``perplexity=min(30, (N - 1) / 3)`` so that small sets work.

    Returns:
        A float64 NumPy array of shape ``(N, 2)``.

    Raises:
        ValueError: an unknown method, bad features (see :func:`calinski_harabasz`), fewer than
            3 samples or 2 channels, options that clash with ``seed``, or ``threads < 1``.
        TypeError: a non-integer seed or thread count.
        ImportError: umap-learn or scikit-learn is missing (``pip install mio-strategies[analysis]``).

    Example:
        >>> import torch
        >>> feats = torch.randn(40, 6, generator=torch.Generator().manual_seed(0))
        >>> emb = project(feats, method="tsne", seed=1)
        >>> emb.shape
        (40, 2)
    """
    method = _validate_method(method)
    seed = _validate_seed(seed)
    x = _validate_features(features, min_samples=3)
    _, c = x.shape
    if c < 2:
        raise ValueError(f"project() needs at least 2 feature channels to embed in 2-D, got {c}")
    _check_options(options)
    if threads is not None:
        positive_int("threads", threads, note=" (or None for the libraries' defaults)", type_error=True)
    if threads is None:
        return _fit(x, method, seed, options)
    threadpoolctl = require("threadpoolctl", feature="project(threads=...)")
    with threadpoolctl.threadpool_limits(limits=threads):
        return _fit(x, method, seed, options)


def _fit(x: np.ndarray, method: str, seed: int, options: dict[str, Any]) -> np.ndarray:
    n = x.shape[0]
    if method == "pca":
        decomposition = require("sklearn.decomposition", feature="project(method='pca')")
        options.setdefault("svd_solver", "full")
        out = decomposition.PCA(n_components=2, random_state=seed, **options).fit_transform(x)
    elif method == "tsne":
        manifold = require("sklearn.manifold", feature="project(method='tsne')")
        options.setdefault("perplexity", min(30.0, (n - 1) / 3.0))
        options.setdefault("init", "pca")
        out = manifold.TSNE(n_components=2, random_state=seed, **options).fit_transform(x)
    else:
        umap = require("umap", feature="project(method='umap')")
        options.setdefault("n_neighbors", min(15, n - 1))
        # a seeded UMAP is only reproducible single-threaded; saying so avoids umap's warning
        options.setdefault("n_jobs", 1)
        out = umap.UMAP(n_components=2, random_state=seed, **options).fit_transform(x)
    return np.asarray(out, dtype=np.float64)

