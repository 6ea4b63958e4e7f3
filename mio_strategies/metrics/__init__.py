"""Image-quality metrics as the paper's reference computes them: PSNR and SSIM on 8-bit RGB levels.

Example:
    >>> import torch
    >>> from mio_strategies.metrics import psnr
    >>> x = torch.zeros(1, 3, 16, 16)
    >>> float(psnr(x, x))
    inf
"""

from mio_strategies.metrics._psnr_ssim import psnr, ssim, to_uint8_levels

__all__ = ["psnr", "ssim", "to_uint8_levels"]
