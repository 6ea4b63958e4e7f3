"""Image-quality metrics: PSNR and SSIM as the paper's reference computes them (8-bit RGB levels), and
under the conventions of the all-in-one benchmarks' published rows (``convention_psnr``, ``convention_ssim``).

Example:
    >>> import torch
    >>> from mio_strategies.metrics import psnr
    >>> x = torch.zeros(1, 3, 16, 16)
    >>> float(psnr(x, x))
    inf
"""

from mio_strategies.metrics._conventions import (
    SSIM_WINDOWS,
    convention_psnr,
    convention_ssim,
    rgb_to_y,
)
from mio_strategies.metrics._psnr_ssim import psnr, ssim, to_uint8_levels

__all__ = ["SSIM_WINDOWS", "convention_psnr", "convention_ssim", "psnr", "rgb_to_y", "ssim", "to_uint8_levels"]
