"""Degradation-representation analysis: pooled features, Calinski-Harabasz index, DDR projections, plots.

Needs the ``analysis`` extra (``pip install mio-strategies[analysis]``: scikit-learn, umap-learn,
matplotlib); those are imported only when a function needs them, so importing this package is light.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from mio_strategies.analysis import ddr, plot_ddr
    >>> g = torch.Generator().manual_seed(0)
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    >>> images = torch.rand(20, 3, 16, 16, generator=g)
    >>> result = ddr(model, images, module="1", labels=[0] * 10 + [2] * 10, method="pca", seed=0)
    >>> fig = plot_ddr(result, title="demo")
"""

from __future__ import annotations

from mio_strategies.analysis._deps import INSTALL_HINT, require
from mio_strategies.analysis._testset import iter_image_batches
from mio_strategies.analysis.features import (
    CapturedFeatures,
    FeatureRecorder,
    FeatureSource,
    capture_features,
    pool_features,
    resolve_module,
)
from mio_strategies.analysis.metrics import CalinskiHarabasz, calinski_harabasz
from mio_strategies.analysis.plots import (
    TASK_COLORS,
    plot_ddr,
    plot_ddr_comparison,
    plot_psnr_bars,
    save_figure,
    task_color,
)
from mio_strategies.analysis.projection import PROJECTION_METHODS, project
from mio_strategies.analysis.representation import DDRResult, ddr

__all__ = [
    "INSTALL_HINT",
    "PROJECTION_METHODS",
    "TASK_COLORS",
    "CalinskiHarabasz",
    "CapturedFeatures",
    "DDRResult",
    "FeatureRecorder",
    "FeatureSource",
    "calinski_harabasz",
    "capture_features",
    "ddr",
    "iter_image_batches",
    "plot_ddr",
    "plot_ddr_comparison",
    "plot_psnr_bars",
    "pool_features",
    "project",
    "require",
    "resolve_module",
    "save_figure",
    "task_color",
]
