"""Deep degradation representations (DDR): pooled features of one layer, embedded in 2-D, with CHI.

Following DDR (Liu et al., "Discovering distinctive 'semantics' in super-resolution networks"),
as used in section 4.5 of the paper: global-average-pooled features of a chosen layer for every
test input, a 2-D embedding, and the Calinski-Harabasz index (CHI) of the embedding grouped by
task. The CHI of the raw pooled features is reported beside it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from mio_strategies.analysis import ddr
    >>> g = torch.Generator().manual_seed(0)
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    >>> images = torch.rand(12, 3, 8, 8, generator=g) * torch.arange(1, 4).repeat_interleave(4)[:, None, None, None]
    >>> result = ddr(model, images, module="1", labels=[0] * 4 + [1] * 4 + [2] * 4, method="pca")
    >>> result.embedding.shape, result.counts()
    ((12, 2), {'sr': 4, 'blur': 4, 'noise': 4})
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mio_strategies.analysis._validate import (
    _validate_clusters,
    _validate_features,
    _validate_labels,
    _validate_method,
    _validate_seed,
)
from mio_strategies.analysis.features import FeatureSource, capture_features, resolve_module
from mio_strategies.analysis.metrics import calinski_harabasz
from mio_strategies.analysis.projection import project
from mio_strategies.tasks import TASKS, get_task

__all__ = ["DDRResult", "ddr"]


def _source_name(model: nn.Module, module: FeatureSource) -> str:
    if isinstance(module, str):
        return module
    if isinstance(module, nn.Module):
        return resolve_module(model, module)[0]
    return getattr(module, "__qualname__", None) or type(module).__name__


@dataclass(frozen=True)
class DDRResult:
    """The outcome of a DDR analysis.

    Attributes:
        embedding: ``(N, 2)`` float64 projection.
        labels: ``(N,)`` int64 task ids (``mio_strategies.tasks`` order).
        chi: Calinski-Harabasz index of ``embedding`` by task (the paper's figure).
        chi_features: Calinski-Harabasz index of the pooled ``features`` by task.
        features: ``(N, C)`` float32 pooled features.
        method: ``"umap"``, ``"tsne"`` or ``"pca"``.
        module: the analysed layer (its name, or the source's name).
        seed: the projection seed.
    """

    embedding: np.ndarray
    labels: np.ndarray
    chi: float
    chi_features: float
    features: Tensor
    method: str
    module: str
    seed: int

    @classmethod
    def from_features(
        cls,
        features: Any,
        labels: Any,
        *,
        method: str = "umap",
        seed: int = 0,
        module: str = "features",
        **options: Any,
    ) -> DDRResult:
        """Project already captured features and score them.

        Args:
            features: ``(N, C)`` pooled features.
            labels: ``(N,)`` task ids, names or letters.
            method: as :func:`~mio_strategies.analysis.project`.
            seed: as :func:`~mio_strategies.analysis.project`.
            **options: as :func:`~mio_strategies.analysis.project`.
            module: a name recorded in the result.

        Raises:
            ValueError / TypeError: as :func:`~mio_strategies.analysis.calinski_harabasz` and
                :func:`~mio_strategies.analysis.project`; labels that are not tasks.

        Example:
            >>> g = torch.Generator().manual_seed(0)
            >>> feats = torch.randn(20, 4, generator=g)
            >>> DDRResult.from_features(feats, [0] * 10 + [6] * 10, method="pca").counts()
            {'sr': 10, 'lowlight': 10}
        """
        method = _validate_method(method)
        seed = _validate_seed(seed)
        x = _validate_features(features, min_samples=3)
        raw = _validate_labels(labels, x.shape[0])
        ids = np.asarray([get_task(v).id for v in raw.tolist()], dtype=np.int64)
        _validate_clusters(ids)  # before the (slow) projection
        embedding = project(x, method, seed=seed, **options)
        feats = features if isinstance(features, Tensor) else torch.from_numpy(x)
        return cls(
            embedding=embedding,
            labels=ids,
            chi=calinski_harabasz(embedding, ids),
            chi_features=calinski_harabasz(x, ids),
            features=feats.detach().to("cpu", torch.float32),
            method=method,
            module=module,
            seed=seed,
        )

    def counts(self) -> dict[str, int]:
        """Samples per task name, in the canonical task order (only tasks present)."""
        present = np.bincount(self.labels, minlength=len(TASKS))
        return {t.name: int(present[t.id]) for t in TASKS if present[t.id] > 0}

    def summary(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict: CHI (embedding and features), N, C, method, module, seed, counts."""
        return {
            "chi": self.chi,
            "chi_features": self.chi_features,
            "n": int(self.labels.shape[0]),
            "channels": int(self.features.shape[1]),
            "method": self.method,
            "module": self.module,
            "seed": self.seed,
            "counts": self.counts(),
        }


def ddr(
    model: nn.Module,
    data: Tensor | Iterable[Any],
    module: FeatureSource,
    *,
    method: str = "umap",
    seed: int = 0,
    labels: Any = None,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    progress: bool | Any = False,
    **options: Any,
) -> DDRResult:
    """Capture pooled features of ``module`` over ``data``, embed them in 2-D and score the clustering.

    One call from a model and a test set to the projection, CHI and labels (see :class:`DDRResult`).

    Args:
        model: the network.
        data: images and tasks, in any form :func:`~mio_strategies.analysis.capture_features` takes.
        module: the layer name, submodule or feature source (e.g. prompt vectors).
        method: ``"umap"`` (the paper's figure style), ``"tsne"`` or ``"pca"``.
        seed: projection seed; the same seed gives the same embedding.
        labels: as :func:`~mio_strategies.analysis.capture_features`.
        batch_size: as :func:`~mio_strategies.analysis.capture_features`.
        device: as :func:`~mio_strategies.analysis.capture_features`.
        progress: as :func:`~mio_strategies.analysis.capture_features`.
        **options: passed to the projection method.

    Returns:
        A :class:`DDRResult`.

    Raises:
        ValueError: an unknown method or module, fewer than 2 tasks or a task with one sample,
            non-finite features, and the errors of ``capture_features``.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> g = torch.Generator().manual_seed(1)
        >>> x = torch.rand(8, 3, 8, 8, generator=g)
        >>> ddr(model, x, "0", labels=[1, 1, 1, 1, 4, 4, 4, 4], method="pca").summary()["counts"]
        {'blur': 4, 'rain': 4}
    """
    method = _validate_method(method)
    seed = _validate_seed(seed)
    captured = capture_features(
        model, data, module, labels=labels, batch_size=batch_size, device=device, progress=progress
    )
    return DDRResult.from_features(
        captured.features, captured.labels, method=method, seed=seed, module=_source_name(model, module), **options
    )
