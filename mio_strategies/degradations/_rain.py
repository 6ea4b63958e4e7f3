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

How it is computed: each sample's seeds come from its own CPU generator; all streak kernels of a batch are
built at once from coordinate grids (vectorised over the batch, no per-patch image warps). The seeds are
very sparse (0.2-0.6 % of the pixels at the presets' amounts), so steps 2 and 4 are done together as a
scatter: every seed adds ``value * K2`` around itself, ``K2`` being the streak kernel correlated with the
cross (exact, the cross is symmetric), over the reflect-101 padded seed map; only the non-zero taps of
``K2`` are scattered, with ``numpy.bincount`` (deterministic summation order). For the ``"torch"`` stream
the layer is computed in float64 on the CPU with NumPy and moved to the images' device, so a sample's rain
is identical on every device and independent of its batch. The ``"philox"`` stream computes the same
layer with torch on the images' device (:mod:`._rain_torch`).
"""

from __future__ import annotations

import numpy as np
import torch

from ._philox import DOMAIN_RAIN, philox_uniform

# OpenCV's fixed small Gaussian kernels used when sigma <= 0 and ksize <= 9 (getGaussianKernel).
_SMALL_GAUSS = {
    1: [1.0],
    3: [0.25, 0.5, 0.25],
    5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
    7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
    9: [0.015625, 0.05078125, 0.1171875, 0.19921875, 0.234375, 0.19921875, 0.1171875, 0.05078125, 0.015625],
}

_CROSS = np.array([[0.0, 0.1, 0.0], [0.1, 8.0, 0.1], [0.0, 0.1, 0.0]])
_SCATTER_CHUNK = 1 << 22  # seed x tap pairs per bincount call (bounds temporary memory)


def opencv_gaussian_1d(width: int) -> np.ndarray:
    """``cv2.getGaussianKernel(width, 0)`` as float64.

    OpenCV's fixed tables up to size 9, else a Gaussian with sigma = 0.3*((w-1)/2 - 1) + 0.8.
    """
    if width in _SMALL_GAUSS:
        return np.asarray(_SMALL_GAUSS[width], dtype=np.float64)
    sigma = 0.3 * ((width - 1) * 0.5 - 1) + 0.8
    x = np.arange(width, dtype=np.float64) - (width - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def inverse_warp(length: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, ...]:
    """The inverse affine map ``(a11, a12, b1, a21, a22, b2)`` of each sample's streak warp, ``(B, 1, 1)``
    float64 each: ``getRotationMatrix2D((L/2, L/2), angle - 45, 1 - L/100)`` inverted as OpenCV's
    ``invertAffineTransform``. (Shared by the NumPy and torch streak layers, so both use the same values.)"""
    L = length.astype(np.float64).reshape(-1, 1, 1)
    theta = np.deg2rad(angle.astype(np.float64) - 45.0).reshape(-1, 1, 1)
    s = 1.0 - L / 100.0
    c = L / 2.0
    al, be = np.cos(theta) * s, np.sin(theta) * s
    m02 = (1 - al) * c - be * c
    m12 = be * c + (1 - al) * c
    det = 1.0 / (al * al + be * be)
    a11, a12, a21, a22 = al * det, -be * det, be * det, al * det
    b1 = -a11 * m02 - a12 * m12
    b2 = -a21 * m02 - a22 * m12
    return a11, a12, b1, a21, a22, b2


def _warped_diagonal(xs: np.ndarray, ys: np.ndarray, length: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Value of the warped ``length x length`` diagonal at integer kernel coordinates ``(xs, ys)``.

    Follows OpenCV: ``getRotationMatrix2D((L/2, L/2), angle - 45, 1 - L/100)``, inverted as
    ``invertAffineTransform`` does, source coordinates in fixed point snapped to 1/32 pixel (``warpAffine``'s
    ``AB_BITS = 10``, ``INTER_BITS = 5``), bilinear weights, zero outside.

    ``xs`` (B, 1, N) and ``ys`` (B, M, 1) broadcast; returns (B, M, N), float64. (NumPy: these small grids
    are dominated by per-operation overhead, which NumPy keeps lower than torch.)
    """
    L = length.astype(np.float64).reshape(-1, 1, 1)
    a11, a12, b1, a21, a22, b2 = inverse_warp(length, angle)
    # fixed point: round(a*x*1024) + round((b*y + c)*1024) + 16, then >> 5  -> units of 1/32 pixel
    qx = np.floor((np.round(a11 * xs * 1024) + np.round((a12 * ys + b1) * 1024) + 16) / 32)
    qy = np.floor((np.round(a21 * xs * 1024) + np.round((a22 * ys + b2) * 1024) + 16) / 32)
    x0, y0 = np.floor(qx / 32), np.floor(qy / 32)
    ax, ay = qx / 32 - x0, qy / 32 - y0
    # bilinear sample of the identity: only corners with px == py count; d = x0 - y0 selects which
    d = x0 - y0
    in0 = (x0 >= 0) & (x0 < L)  # corner column x0 inside
    in1 = (x0 >= -1) & (x0 < L - 1)  # corner column x0 + 1 inside
    out = np.where((d == 0) & in0, (1 - ax) * (1 - ay), 0.0)
    out += np.where((d == 0) & in1, ax * ay, 0.0)
    out += np.where((d == 1) & in0, (1 - ax) * ay, 0.0)  # (x0, y0 + 1)
    out += np.where((d == -1) & in1, ax * (1 - ay), 0.0)  # (x0 + 1, y0)
    return out


def streak_kernels(length: torch.Tensor, angle: torch.Tensor, width: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Torch view of :func:`streak_kernels_np` (``(B, C, C)`` float64 CPU tensor and the anchor ``A``)."""
    k, a = streak_kernels_np(length.numpy(), angle.numpy(), width.numpy())
    return torch.from_numpy(k), a


def streak_kernels_np(ln: np.ndarray, an: np.ndarray, wd: np.ndarray) -> tuple[np.ndarray, int]:
    """Build every sample's streak kernel on one ``(C, C)`` canvas, anchors aligned at the centre.

    Args:
        ln, an, wd: ``(B,)`` integer arrays of lengths, angles and widths.

    Returns:
        ``(kernels, A)``: ``(B, C, C)`` float64 kernels with ``C = 2A + 1``; canvas index ``A`` is each
        kernel's anchor (its index ``length // 2``), so correlation with reflect padding ``A`` is exact.
    """
    b = ln.shape[0]
    half = ln // 2
    A = int(half.max())
    C = 2 * A + 1
    R = int(wd.max()) // 2
    # canvas positions with the blur margin, as kernel coordinates of each sample, reflected (101) into [0, L)
    p = np.arange(-R, C + R)[None, :] - A + half[:, None]  # (B, C+2R)
    L = ln[:, None]
    refl = np.abs(p)
    refl = np.where(refl >= L, 2 * (L - 1) - refl, refl)
    refl = np.clip(refl, 0, L - 1).astype(np.float64)
    warped = _warped_diagonal(refl[:, None, :], refl[:, :, None], ln, an)  # (B, C+2R, C+2R)
    # per-sample OpenCV Gaussian (zero-padded, centred, to 2R+1), separable
    g = np.zeros((b, 2 * R + 1))
    for w in np.unique(wd).tolist():
        g[wd == w, R - w // 2 : R + w // 2 + 1] = opencv_gaussian_1d(int(w))
    win = np.lib.stride_tricks.sliding_window_view
    t = np.einsum("bynw,bw->byn", win(warped, 2 * R + 1, axis=2), g)  # along x -> (B, C+2R, C)
    t = np.einsum("bnxw,bw->bnx", win(t, 2 * R + 1, axis=1), g)  # along y -> (B, C, C)
    inside = (p[:, R : R + C] >= 0) & (p[:, R : R + C] < L)  # (B, C)
    t = t * (inside[:, :, None] & inside[:, None, :])
    return t, A


def streak_seeds(seed: torch.Tensor, amount: torch.Tensor, h: int, w: int, stream: str = "torch",
                 device: torch.device | None = None) -> np.ndarray:
    """Sparse streak seeds (B, H, W) float32: ``u = 256 * U[0, 1)`` per pixel, zero where
    ``u < 256 - amount * 0.01``; ``U`` is ``torch.rand((H, W))`` from each sample's CPU generator (stream
    ``"torch"``) or the batch's Philox uniforms drawn on ``device`` (stream ``"philox"``)."""
    if stream == "philox":
        field = philox_uniform(seed, h * w, domain=DOMAIN_RAIN, device=device)
        out = field.view(seed.shape[0], h, w).cpu()
    else:
        out = torch.empty(seed.shape[0], h, w, dtype=torch.float32)
        for i, s in enumerate(seed.tolist()):
            torch.rand(h, w, generator=torch.Generator().manual_seed(int(s)), out=out[i])
    out.mul_(256.0)
    u = out.numpy()
    thresh = (256.0 - amount.numpy().astype(np.float64) * 0.01).astype(np.float32)
    u[u < thresh[:, None, None]] = 0.0
    return u


def _cross_correlated(k: np.ndarray) -> np.ndarray:
    """Full correlation of each (C, C) kernel with the 3x3 cross: (B, C + 2, C + 2)."""
    b, c, _ = k.shape
    out = np.zeros((b, c + 2, c + 2))
    for dy in range(3):
        for dx in range(3):
            if _CROSS[dy, dx]:
                out[:, 2 - dy : 2 - dy + c, 2 - dx : 2 - dx + c] += _CROSS[dy, dx] * k
    return out


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
    stream: str = "torch",
) -> torch.Tensor:
    """The integer-valued 0..255 rain layer (B, 1, H, W) of the recipe above, on ``device`` as ``dtype``,
    built with NumPy on the CPU from the ``stream``'s streak seeds.

    The degradations use it for the ``"torch"`` stream (every params dict without a stream); for the
    ``"philox"`` stream they build the same layer with torch on the images' device
    (:func:`._rain_torch.rain_layer_torch`), which this function, given ``stream="philox"``, is the
    NumPy reference of."""
    b = seed.shape[0]
    u = streak_seeds(seed, amount, h, w, stream, device)
    k, A = streak_kernels_np(length.numpy(), angle.numpy(), width.numpy())
    k2 = _cross_correlated(k)  # anchor A + 1
    p = A + 1
    c2 = 2 * p + 1
    # out(y) = sum_j K2[j] * upad(y + j): a seed at padded index m adds K2[j] to out(m - j)
    upad = np.pad(u, ((0, 0), (p, p), (p, p)), mode="reflect").reshape(b, -1)  # numpy "reflect" = reflect-101
    wp = w + 2 * p
    # flat buffer with upad's row stride: target m - j (shifted by `base` to stay >= 0); targets whose column
    # wraps to the previous row land in columns >= w, outside the crop
    base = (c2 - 1) * wp + (c2 - 1)
    size = base + (h + 2 * p) * wp
    layer = np.empty((b, h, w))
    for i in range(b):
        m = np.flatnonzero(upad[i])
        kflat = np.flatnonzero(k2[i])
        acc = np.zeros(size)
        if m.size and kflat.size:
            vals = upad[i, m].astype(np.float64)
            kv = k2[i].ravel()[kflat]
            koff = base - ((kflat // c2) * wp + kflat % c2)
            step = max(1, _SCATTER_CHUNK // kflat.size)
            for s0 in range(0, m.size, step):
                idx = m[s0 : s0 + step, None] + koff[None, :]
                wts = (vals[s0 : s0 + step, None] * kv[None, :]).ravel()
                acc += np.bincount(idx.ravel(), weights=wts, minlength=size)
        r = acc[base : base + h * wp].reshape(h, wp)[:, :w]
        lo, hi = r.min(), r.max()
        if hi > lo:
            # truncation to integers as the reference's uint8 cast (1e-3 absorbs float error at the maximum)
            layer[i] = np.floor(np.clip((r - lo) * (255.0 / (hi - lo)) + 1e-3, 0, 255))
        else:
            layer[i] = 0.0
    return torch.from_numpy(layer).to(device=device, dtype=dtype)[:, None]
