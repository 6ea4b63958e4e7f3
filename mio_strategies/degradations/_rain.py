"""Rain streaks (the reference's Photoshop-style recipe), batched: all streak kernels built at once.

Recipe per image, on the 0-255 scale (PROTOCOL.md):
1. ``u ~ U[0, 256)`` per pixel; keep ``u`` where ``u >= 256 - amount * 0.01`` (sparse streak seeds), else 0.
2. Correlate with the cross ``[[0, .1, 0], [.1, 8, .1], [0, .1, 0]]``.
3. Streak kernel: the ``length x length`` identity diagonal warped (bilinear, zero outside) by a rotation of
   ``angle - 45`` degrees about ``(length/2, length/2)`` with scale ``1 - length/100`` (OpenCV's
   ``getRotationMatrix2D`` + ``warpAffine``), then Gaussian-blurred by a ``width x width`` kernel as
   OpenCV's ``GaussianBlur(k, (w, w), 0)`` (its fixed tables up to 9, reflect-101 inside the ``length`` box).
4. Correlate the seeds with the streak kernel (reflect-101 borders, anchor ``length // 2``), min-max
   normalise to 0..255, truncate to integers, add to every channel, clip.

All seeds of a batch are drawn on the CPU from per-sample generators (so a sample's rain does not depend on
the batch or the device); the kernels are built together on the images' device from coordinate grids, and
the large correlation is done by FFT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._kernels import pad_reflect101

# OpenCV's fixed small Gaussian kernels used when sigma <= 0 and ksize <= 9 (getGaussianKernel).
_SMALL_GAUSS = {
    1: [1.0],
    3: [0.25, 0.5, 0.25],
    5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
    7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
    9: [0.015625, 0.05078125, 0.1171875, 0.19921875, 0.234375, 0.19921875, 0.1171875, 0.05078125, 0.015625],
}

_CROSS = torch.tensor([[0.0, 0.1, 0.0], [0.1, 8.0, 0.1], [0.0, 0.1, 0.0]])


def opencv_gaussian_1d(width: int) -> torch.Tensor:
    """``cv2.getGaussianKernel(width, 0)`` as float64: OpenCV's fixed tables up to 9, else sigma = 0.3*((w-1)/2 - 1) + 0.8."""
    if width in _SMALL_GAUSS:
        return torch.tensor(_SMALL_GAUSS[width], dtype=torch.float64)
    sigma = 0.3 * ((width - 1) * 0.5 - 1) + 0.8
    x = torch.arange(width, dtype=torch.float64) - (width - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _warped_diagonal(xs: torch.Tensor, ys: torch.Tensor, length: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Value of the warped ``length x length`` diagonal at integer kernel coordinates ``(xs, ys)``.

    Follows OpenCV: ``getRotationMatrix2D((L/2, L/2), angle - 45, 1 - L/100)``, inverted as
    ``invertAffineTransform`` does, source coordinates in fixed point snapped to 1/32 pixel (``warpAffine``'s
    ``AB_BITS = 10``, ``INTER_BITS = 5``), bilinear weights, zero outside.

    ``xs`` (B, 1, N) and ``ys`` (B, M, 1) broadcast; returns (B, M, N), float64.
    """
    L = length.to(torch.float64).reshape(-1, 1, 1)
    theta = torch.deg2rad(angle.to(torch.float64) - 45.0).reshape(-1, 1, 1)
    s = 1.0 - L / 100.0
    c = L / 2.0
    al, be = torch.cos(theta) * s, torch.sin(theta) * s
    m02 = (1 - al) * c - be * c
    m12 = be * c + (1 - al) * c
    det = 1.0 / (al * al + be * be)
    a11, a12, a21, a22 = al * det, -be * det, be * det, al * det
    b1 = -a11 * m02 - a12 * m12
    b2 = -a21 * m02 - a22 * m12
    # fixed point: round(a*x*1024) + round((b*y + c)*1024) + 16, then >> 5  -> units of 1/32 pixel
    qx = torch.floor((torch.round(a11 * xs * 1024) + torch.round((a12 * ys + b1) * 1024) + 16) / 32)
    qy = torch.floor((torch.round(a21 * xs * 1024) + torch.round((a22 * ys + b2) * 1024) + 16) / 32)
    x0, y0 = torch.floor(qx / 32), torch.floor(qy / 32)
    ax, ay = qx / 32 - x0, qy / 32 - y0
    out = torch.zeros(torch.broadcast_shapes(qx.shape, qy.shape), dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    for ix, wx in ((0, 1 - ax), (1, ax)):
        for iy, wy in ((0, 1 - ay), (1, ay)):
            px, py = x0 + ix, y0 + iy
            on = (px == py) & (px >= 0) & (px < L)
            out = out + torch.where(on, wx * wy, zero)
    return out


def streak_kernels(length: torch.Tensor, angle: torch.Tensor, width: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Build every sample's streak kernel on one ``(C, C)`` canvas, anchors aligned at the centre.

    Args:
        length, angle, width: ``(B,)`` int64 CPU tensors.

    Returns:
        ``(kernels, A)``: ``(B, C, C)`` float64 CPU kernels with ``C = 2A + 1``; canvas index ``A`` is each
        kernel's anchor (its index ``length // 2``), so correlation with reflect padding ``A`` is exact.
    """
    b = length.shape[0]
    half = length // 2
    A = int(half.max())
    C = 2 * A + 1
    R = int(width.max()) // 2
    # canvas positions with the blur margin, as kernel coordinates of each sample
    p = torch.arange(-R, C + R, dtype=torch.int64)[None, :] - A + half[:, None]  # (B, C+2R)
    L = length[:, None]
    refl = torch.where(p < 0, -p, p)
    refl = torch.where(refl >= L, 2 * (L - 1) - refl, refl).clamp(min=0)
    refl = torch.minimum(refl, L - 1).to(torch.float64)
    warped = _warped_diagonal(refl[:, None, :], refl[:, :, None], length, angle)  # (B, C+2R, C+2R)
    # per-sample OpenCV Gaussian (zero-padded, centred, to 2R+1)
    g = torch.zeros(b, 2 * R + 1, dtype=torch.float64)
    for w in torch.unique(width).tolist():
        sel = width == w
        g[sel, R - w // 2 : R + w // 2 + 1] = opencv_gaussian_1d(int(w))
    t = torch.einsum("bynw,bw->byn", warped.unfold(2, 2 * R + 1, 1), g)  # along x -> (B, C+2R, C)
    t = torch.einsum("bxnw,bw->bnx", t.transpose(1, 2).unfold(2, 2 * R + 1, 1), g)  # along y -> (B, C, C)
    inside = (p[:, R : R + C] >= 0) & (p[:, R : R + C] < L)  # (B, C)
    t = t * (inside[:, :, None] & inside[:, None, :])
    return t, A


def streak_seeds(seed: torch.Tensor, amount: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Sparse streak seeds (B, 1, H, W) float32 on the CPU, one generator per sample."""
    out = torch.empty(seed.shape[0], 1, h, w, dtype=torch.float32)
    for i, s in enumerate(seed.tolist()):
        gen = torch.Generator().manual_seed(int(s))
        torch.rand(h, w, generator=gen, out=out[i, 0])
    out.mul_(256.0)
    thresh = (256.0 - amount.to(torch.float64) * 0.01).to(torch.float32).reshape(-1, 1, 1, 1)
    return out * (out >= thresh)


def rain_layer(
    seed: torch.Tensor,
    amount: torch.Tensor,
    length: torch.Tensor,
    angle: torch.Tensor,
    width: torch.Tensor,
    h: int,
    w: int,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The integer-valued 0..255 rain layer (B, 1, H, W) of the recipe above."""
    b = seed.shape[0]
    seeds = streak_seeds(seed, amount, h, w).to(device=device, dtype=dtype)
    cross = _CROSS.to(device=device, dtype=dtype).reshape(1, 1, 3, 3)
    n = F.conv2d(pad_reflect101(seeds, 1, 1), cross)  # (B, 1, H, W)
    k, A = streak_kernels(length, angle, width)
    k = k.to(device=device, dtype=dtype)
    C = 2 * A + 1
    npad = pad_reflect101(n[:, 0], A, A)  # (B, H+2A, W+2A)
    sh, sw = h + 2 * A, w + 2 * A
    # correlation == convolution with the flipped kernel; valid part of the circular convolution
    kf = torch.fft.rfft2(torch.flip(k, dims=(-2, -1)), s=(sh, sw))
    full = torch.fft.irfft2(torch.fft.rfft2(npad) * kf, s=(sh, sw))
    r = full[:, C - 1 : C - 1 + h, C - 1 : C - 1 + w]
    flat = r.reshape(b, -1)
    lo = flat.min(dim=1).values.reshape(b, 1, 1)
    hi = flat.max(dim=1).values.reshape(b, 1, 1)
    span = hi - lo
    scale = torch.where(span > 0, 255.0 / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(span))
    # truncation to integers as the reference's uint8 cast; the 1e-3 absorbs float error so the maximum is 255
    r = torch.floor(((r - lo) * scale + 1e-3).clamp(0, 255))
    return r[:, None]
