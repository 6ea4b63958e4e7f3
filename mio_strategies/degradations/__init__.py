"""On-the-fly synthesis of the seven MiO degradations: reproducible, batched, on any device.

``degrade(images, task, ...)`` samples per-image parameters from an explicit ``torch.Generator`` (or a
fresh recorded seed), applies them, and returns ``(degraded, params)``; passing ``params`` back replays
the call bit-exactly. Each task also has an explicit-parameter function:

====  =========  ================================================================
S     sr         :func:`bicubic_sr` (MATLAB bicubic down by ``scale``, then up)
B     blur       :func:`gaussian_blur` (isotropic Gaussian, reflect borders)
N     noise      :func:`gaussian_noise` (additive colour Gaussian, per-image seed)
J     jpeg       :func:`jpeg_compress` (Pillow's libjpeg, 4:2:0; ``codec="diffjpeg"``: :func:`jpeg_diffjpeg`)
R     rain       :func:`add_rain` (the reference's streak recipe)
H     haze       :func:`add_haze` (``I t + A (1 - t)``, ``t = exp(-beta d)``)
L     lowlight   :func:`lowlight` (``I ** gamma``)
====  =========  ================================================================

``implementation="reference"`` (on :func:`degrade` and :func:`apply_degradation`) gives the official
code's training data path instead where it differs: :func:`bicubic_sr_torch` (PyTorch bicubic),
:func:`jpeg_diffjpeg` (basicsr's ``DiffJPEG`` model) and a crop to multiples of 4 for rain and haze;
:func:`bicubic_sr_stored_lr` is the SR input of its test sets.

Example:
    >>> import torch
    >>> from mio_strategies.degradations import degrade
    >>> x = torch.rand(4, 3, 64, 64)
    >>> y, params = degrade(x, "rain", generator=torch.Generator().manual_seed(0))
    >>> torch.equal(degrade(x, "rain", params=params)[0], y)
    True
"""

from __future__ import annotations

from ._api import apply_degradation, degrade, sample_params
from ._depth import estimate_depth, load_depth
from ._functional import (
    add_haze,
    add_rain,
    bicubic_sr,
    gaussian_blur,
    gaussian_noise,
    imresize,
    jpeg_compress,
    lowlight,
    quantize_8bit,
)
from ._philox import use_compiled_philox
from ._pipeline import DegradationPipeline, degrade_sequence
from ._reference import IMPLEMENTATIONS, bicubic_sr_stored_lr, bicubic_sr_torch, crop_to_multiple, jpeg_diffjpeg
from ._specs import (
    DEFAULT_STREAM,
    IMPLEMENTATION_CODECS,
    JPEG_CODECS,
    PARAM_BOUNDS,
    PRESETS,
    STREAMS,
    TASK_PARAMS,
    ParamSpec,
)

__all__ = [
    "degrade",
    "sample_params",
    "apply_degradation",
    "DegradationPipeline",
    "degrade_sequence",
    "PRESETS",
    "PARAM_BOUNDS",
    "TASK_PARAMS",
    "ParamSpec",
    "STREAMS",
    "DEFAULT_STREAM",
    "JPEG_CODECS",
    "IMPLEMENTATION_CODECS",
    "use_compiled_philox",
    "quantize_8bit",
    "bicubic_sr",
    "imresize",
    "gaussian_blur",
    "gaussian_noise",
    "jpeg_compress",
    "add_rain",
    "add_haze",
    "lowlight",
    "load_depth",
    "estimate_depth",
    "IMPLEMENTATIONS",
    "bicubic_sr_torch",
    "bicubic_sr_stored_lr",
    "jpeg_diffjpeg",
    "crop_to_multiple",
]
