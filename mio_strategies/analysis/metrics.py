"""The Calinski-Harabasz index (CHI): how strongly samples cluster by label.

CHI is the ratio of between-cluster to within-cluster dispersion, scaled by
``(N - k) / (k - 1)``; higher means tighter, better separated clusters. The paper reports it for
the 2-D DDR projections of 700 inputs (e.g. 832 for sequential vs 366 for mixed learning).

Example:
    >>> import torch
    >>> from mio_strategies.analysis import calinski_harabasz
    >>> g = torch.Generator().manual_seed(0)
    >>> labels = torch.arange(3).repeat_interleave(20)
    >>> feats = torch.randn(60, 4, generator=g) + 5 * labels[:, None]
    >>> calinski_harabasz(feats, labels) > 100
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mio_strategies.analysis._deps import require
from mio_strategies.analysis._validate import _validate_clusters, _validate_features, _validate_labels

__all__ = ["CalinskiHarabasz", "calinski_harabasz"]


def calinski_harabasz(features: Any, labels: Any) -> float:
    """Calinski-Harabasz index of ``features`` grouped by ``labels`` (scikit-learn's score).

    Args:
        features: ``(N, C)`` tensor, array or nested list of finite numbers.
        labels: ``(N,)`` integer or string labels (e.g. task ids), at least 2 distinct values, each
            with at least 2 samples.

    Returns:
        The index as a Python float (higher is stronger clustering).

    Raises:
        ValueError: features not 2-D, NaN/inf values, mismatched lengths, fewer than 2 labels, or a
            label with a single sample.
        TypeError: non-numeric features or float labels.
        ImportError: scikit-learn is missing (``pip install mio-strategies[analysis]``).

    Example:
        >>> calinski_harabasz([[0.0], [0.1], [5.0], [5.1]], [0, 0, 1, 1]) > 1000
        True
    """
    x = _validate_features(features)
    y = _validate_labels(labels, x.shape[0])
    _validate_clusters(y)
    metrics = require("sklearn.metrics", feature="calinski_harabasz")
    return float(metrics.calinski_harabasz_score(x, y))


class CalinskiHarabasz:
    """Accumulate features and labels over batches, then compute the Calinski-Harabasz index.

    A stateful form of :func:`calinski_harabasz` (torchmetrics style): ``update()`` per batch,
    ``compute()`` at the end, ``reset()`` to start again. Validation happens in ``update`` for
    shapes and values, and in ``compute`` for the cluster sizes.

    Example:
        >>> import torch
        >>> metric = CalinskiHarabasz()
        >>> metric.update(torch.tensor([[0.0], [0.1]]), torch.tensor([0, 0]))
        >>> metric.update(torch.tensor([[5.0], [5.1]]), torch.tensor([1, 1]))
        >>> metric.compute() > 1000
        True
    """

    def __init__(self) -> None:
        self._features: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._channels: int | None = None

    def update(self, features: Any, labels: Any) -> None:
        """Add a batch of ``(B, C)`` features and their ``(B,)`` labels.

        Raises:
            ValueError: bad shapes or values (as :func:`calinski_harabasz`), or a channel count
                that differs from earlier batches.
        """
        x = _validate_features(features)
        y = _validate_labels(labels, x.shape[0])
        if self._channels is not None and x.shape[1] != self._channels:
            raise ValueError(
                f"features have {x.shape[1]} channels but earlier batches had {self._channels}; "
                "use one layer for all batches or call reset()"
            )
        self._channels = x.shape[1]
        self._features.append(x)
        self._labels.append(y)

    def compute(self) -> float:
        """The index over everything added since the last ``reset()``.

        Raises:
            ValueError: nothing was added, or the clusters are invalid (see :func:`calinski_harabasz`).
        """
        if not self._features:
            raise ValueError("CalinskiHarabasz.compute() called before update(): add features first")
        return calinski_harabasz(np.concatenate(self._features), np.concatenate(self._labels))

    def reset(self) -> None:
        """Forget all added samples."""
        self._features.clear()
        self._labels.clear()
        self._channels = None

    @property
    def num_samples(self) -> int:
        """How many samples have been added."""
        return int(sum(f.shape[0] for f in self._features))
