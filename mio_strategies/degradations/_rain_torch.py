"""The rain streak layer in torch, batched on the images' device (the Philox stream's layer).

The same recipe and arithmetic as the NumPy layer of :mod:`._rain` (whose docstring describes the
recipe), written in float64 torch operations so that a batch's streak kernels, its sparse scatter of
streak seeds and its normalisation all run where the images are:

- the per-sample warp coefficients and Gaussian rows are the NumPy layer's own values (computed from the
  ``(B,)`` parameters, a few numbers per sample), so the warped diagonals are the same IEEE operations
  on the same inputs (``floor``, ``round`` half to even, ``+``, ``*``, ``/``);
- the Gaussian widening sums its taps one after another (the NumPy layer uses ``einsum``, whose order of
  summation is NumPy's own), so a kernel may differ from the NumPy one in the last bit of a float64;
- the scatter adds, for each output pixel, the contributions of its streak seeds in the NumPy layer's
  order (seeds in raster order, in the same chunks): with ``index_add_`` on the CPU, which adds in that
  order, and on other devices by adding each pixel's contributions one rank at a time (CUDA's
  ``index_add_`` adds atomically, in no fixed order), so the layer is the same on the CPU and on CUDA bit
  for bit (the same IEEE operations, unfused, in the same order).

A last-bit difference of a float64 changes the 0..255 layer only where it crosses an integer of the
truncation, i.e. where a normalised value lies within about ``1e-13`` of an integer: the layers are equal
in every case the tests draw (``tests/degradations/test_device_synthesis.py``), but exact equality is not a theorem.
The NumPy layer itself shares this property across CPUs (its ``einsum`` order depends on the SIMD
instructions NumPy picks). Every kernel sum runs over the taps of one sample in a fixed order with zeros
for the padding of a batch, so a sample's layer does not depend on the batch it is drawn in (bit for bit).
"""

from __future__ import annotations

import numpy as np
import torch

from ._philox import DOMAIN_RAIN, philox_uniform
from ._rain import _CROSS, _SCATTER_CHUNK, inverse_warp, opencv_gaussian_1d

__all__ = ["rain_layer_torch", "reflect_index", "streak_kernels_torch"]

#: seed x tap pairs per ``index_add_`` call of the torch scatter (bounds its temporary memory; splitting a
#: NumPy chunk into several calls keeps the order of summation)
_PAIRS_PER_CALL = 1 << 23


def reflect_index(n: int, pad: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Indices ``(n + 2 * pad,)`` of ``numpy.pad(..., mode="reflect")`` (reflect-101, repeated where
    ``pad >= n``) into an axis of length ``n``.

    Example:
        >>> reflect_index(3, 2).tolist()
        [2, 1, 0, 1, 2, 1, 0]
    """
    i = torch.arange(-pad, n + pad, device=device, dtype=torch.int64)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    m = torch.remainder(i, period)
    return torch.where(m >= n, period - m, m)


def _warped_diagonal_torch(
    xs: torch.Tensor,
    ys: torch.Tensor,
    L: torch.Tensor,
    coef: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """:func:`._rain._warped_diagonal` in torch: the same operations in the same order."""
    a11, a12, b1, a21, a22, b2 = coef
    qx = torch.floor((torch.round(a11 * xs * 1024) + torch.round((a12 * ys + b1) * 1024) + 16) / 32)
    qy = torch.floor((torch.round(a21 * xs * 1024) + torch.round((a22 * ys + b2) * 1024) + 16) / 32)
    x0, y0 = torch.floor(qx / 32), torch.floor(qy / 32)
    ax, ay = qx / 32 - x0, qy / 32 - y0
    d = x0 - y0
    in0 = (x0 >= 0) & (x0 < L)
    in1 = (x0 >= -1) & (x0 < L - 1)
    zero = torch.zeros((), dtype=torch.float64, device=xs.device)
    out = torch.where((d == 0) & in0, (1 - ax) * (1 - ay), zero)
    out = out + torch.where((d == 0) & in1, ax * ay, zero)
    out = out + torch.where((d == 1) & in0, (1 - ax) * ay, zero)
    out = out + torch.where((d == -1) & in1, ax * (1 - ay), zero)
    return out


def streak_kernels_torch(
    length: torch.Tensor, angle: torch.Tensor, width: torch.Tensor, device: torch.device | str | None = None
) -> tuple[torch.Tensor, int]:
    """Every sample's streak kernel on one ``(C, C)`` canvas, built on ``device`` (see
    :func:`._rain.streak_kernels_np`, which it follows).

    Args:
        length, angle, width: ``(B,)`` integer tensors (any device).
        device: where to build the kernels (default: the parameters' device).

    Returns:
        ``(kernels, A)``: ``(B, C, C)`` float64 kernels on ``device``, ``C = 2A + 1``, anchors at index ``A``.

    Example:
        >>> k, a = streak_kernels_torch(torch.tensor([20, 31]), torch.tensor([0, 30]), torch.tensor([3, 5]))
        >>> k.shape, a
        (torch.Size([2, 31, 31]), 15)
    """
    dev = torch.device(device) if device is not None else length.device
    ln_np, an_np, wd_np = (t.detach().cpu().numpy().astype(np.int64) for t in (length, angle, width))
    b = ln_np.shape[0]
    A = int((ln_np // 2).max())
    C = 2 * A + 1
    R = int(wd_np.max()) // 2
    # the per-sample numbers, from the NumPy layer's own code (a few values per sample)
    coef = tuple(torch.from_numpy(np.ascontiguousarray(c)).to(dev) for c in inverse_warp(ln_np, an_np))
    g_np = np.zeros((b, 2 * R + 1))
    for w in np.unique(wd_np).tolist():
        g_np[wd_np == w, R - w // 2 : R + w // 2 + 1] = opencv_gaussian_1d(int(w))
    g = torch.from_numpy(g_np).to(dev)
    ln = torch.from_numpy(ln_np).to(dev)
    half = ln // 2
    p = torch.arange(-R, C + R, device=dev, dtype=torch.int64)[None, :] - A + half[:, None]  # (B, C+2R)
    L = ln[:, None]
    refl = p.abs()
    refl = torch.where(refl >= L, 2 * (L - 1) - refl, refl)
    refl = torch.minimum(torch.clamp(refl, min=0), L - 1).to(torch.float64)
    Lf = ln.to(torch.float64).reshape(-1, 1, 1)
    warped = _warped_diagonal_torch(refl[:, None, :], refl[:, :, None], Lf, coef)  # (B, C+2R, C+2R)
    # separable Gaussian, taps summed in order (zero taps pad a sample's own row: exact no-ops)
    t = warped[:, :, 0:C] * g[:, 0, None, None]
    for j in range(1, 2 * R + 1):
        t = t + warped[:, :, j : j + C] * g[:, j, None, None]  # along x -> (B, C+2R, C)
    k = t[:, 0:C, :] * g[:, 0, None, None]
    for j in range(1, 2 * R + 1):
        k = k + t[:, j : j + C, :] * g[:, j, None, None]  # along y -> (B, C, C)
    inside = (p[:, R : R + C] >= 0) & (p[:, R : R + C] < L)
    k = k * (inside[:, :, None] & inside[:, None, :])
    return k, A


def _cross_correlated_torch(k: torch.Tensor) -> torch.Tensor:
    """:func:`._rain._cross_correlated` in torch (same additions, same order)."""
    b, c, _ = k.shape
    out = torch.zeros((b, c + 2, c + 2), dtype=k.dtype, device=k.device)
    for dy in range(3):
        for dx in range(3):
            if _CROSS[dy, dx]:
                out[:, 2 - dy : 2 - dy + c, 2 - dx : 2 - dx + c] += float(_CROSS[dy, dx]) * k
    return out


def _streak_seeds_torch(seed: torch.Tensor, amount: torch.Tensor, h: int, w: int, device: torch.device) -> torch.Tensor:
    """The Philox streak seeds ``(B, H, W)`` float32 on ``device`` (:func:`._rain.streak_seeds`'s values)."""
    u = philox_uniform(seed, h * w, domain=DOMAIN_RAIN, device=device).view(seed.shape[0], h, w)
    u = u * 256.0
    thresh = (256.0 - amount.detach().cpu().to(torch.float64) * 0.01).to(torch.float32).to(device)
    return torch.where(u < thresh[:, None, None], torch.zeros((), dtype=u.dtype, device=device), u)


def _add_in_order(buf: torch.Tensor, idx: torch.Tensor, wts: torch.Tensor) -> None:
    """``buf[idx[i]] += wts[i]`` for every ``i`` in order, like the CPU's ``index_add_``, on any device: each
    target's additions are made one at a time, in the order of ``idx`` (no atomic additions, whose order a
    GPU does not fix). Zero weights (the padding taps) are skipped: adding ``+0.0`` changes nothing."""
    keep = wts != 0
    idx, wts = idx[keep], wts[keep]
    if idx.numel() == 0:
        return
    sidx, order = torch.sort(idx, stable=True)  # grouped by target, each group in the original order
    sw = wts[order]
    targets, counts = torch.unique_consecutive(sidx, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    r = 0
    while targets.numel():  # the r-th addition of every target that has one (distinct targets: no race)
        buf[targets] = buf[targets] + sw[starts + r]
        r += 1
        live = counts > r
        targets, starts, counts = targets[live], starts[live], counts[live]


def _scatter(upad: torch.Tensor, k2: torch.Tensor, h: int, w: int, ordered: bool | None = None) -> torch.Tensor:
    """``out(y) = sum_j K2[j] * upad(y + j)`` over the non-zero seeds and taps, ``(B, H, W)`` float64, summed
    per output pixel in the NumPy layer's order (seeds in raster order, in its chunks).

    As in the NumPy layer, a seed at padded flat index ``m`` adds ``K2[j]`` to the flat target
    ``base + m - offset(j)`` of a buffer with the padded row stride (targets off the crop are dropped).
    Each seed is paired with all taps of its sample, padded to the batch's largest tap count by zero taps
    aimed at the seed's own target (adding ``+0.0``: no change). ``ordered`` (default: on any device but
    the CPU) adds with :func:`_add_in_order` instead of ``index_add_``, whose CUDA kernel adds atomically
    in no fixed order; the CPU's ``index_add_`` adds in order (the same sums, faster there)."""
    b, hp, wp = upad.shape
    c2 = k2.shape[-1]
    dev = upad.device
    if ordered is None:
        ordered = dev.type != "cpu"
    base = (c2 - 1) * wp + (c2 - 1)
    size = base + hp * wp
    flat = upad.reshape(b, hp * wp)
    sb, m = torch.nonzero(flat, as_tuple=True)  # seeds, image-major, raster order within an image
    k2f = k2.reshape(b, c2 * c2)
    tb, tj = torch.nonzero(k2f, as_tuple=True)  # taps, raster order within a kernel
    acc = torch.zeros(b * size, dtype=torch.float64, device=dev)
    if sb.numel() and tb.numel():
        sval = flat[sb, m].to(torch.float64)
        starget = sb * size + base + m
        tcount = torch.bincount(tb, minlength=b)
        tstart = torch.cumsum(tcount, 0) - tcount
        taps = int(tcount.max())
        rank = torch.arange(tb.numel(), device=dev) - tstart[tb]
        toff = torch.zeros((b, taps), dtype=torch.int64, device=dev)
        toff[tb, rank] = -((tj // c2) * wp + tj % c2)
        tval = torch.zeros((b, taps), dtype=torch.float64, device=dev)
        tval[tb, rank] = k2f[tb, tj]
        # the NumPy layer's chunks: per image, `step` seeds per bincount, whose partial sums are added in turn
        scount = torch.bincount(sb, minlength=b)
        sstart = torch.cumsum(scount, 0) - scount
        step = torch.clamp(_SCATTER_CHUNK // torch.clamp(tcount, min=1), min=1)
        chunk = (torch.arange(sb.numel(), device=dev) - sstart[sb]) // step[sb]
        n_chunks = int(chunk.max()) + 1
        per_call = max(1, _PAIRS_PER_CALL // taps)
        for c in range(n_chunks):
            ids = torch.nonzero(chunk == c, as_tuple=True)[0] if n_chunks > 1 else None
            n = sb.numel() if ids is None else ids.numel()
            buf = acc if n_chunks == 1 else torch.zeros_like(acc)
            for lo in range(0, n, per_call):  # consecutive calls keep the order of summation
                s = slice(lo, lo + per_call) if ids is None else ids[lo : lo + per_call]
                rows = sb[s]
                idx = torch.index_select(toff, 0, rows).add_(starget[s, None])
                wts = torch.index_select(tval, 0, rows).mul_(sval[s, None])
                if ordered:
                    _add_in_order(buf, idx.view(-1), wts.view(-1))
                else:
                    buf.index_add_(0, idx.view(-1), wts.view(-1))
            if n_chunks > 1:
                acc = acc + buf
    return acc.view(b, size)[:, base : base + h * wp].reshape(b, h, wp)[:, :, :w]


def rain_layer_torch(
    seed: torch.Tensor,
    amount: torch.Tensor,
    length: torch.Tensor,
    angle: torch.Tensor,
    width: torch.Tensor,
    h: int,
    w: int,
    device: torch.device | str,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The 0..255 rain layer ``(B, 1, H, W)`` of the Philox stream, computed on ``device``, as ``dtype``.

    The streak seeds are the Philox stream's (as :func:`._rain.streak_seeds` draws them), the streaks the
    NumPy layer's recipe (:func:`._rain.rain_layer`), both in torch on ``device``.

    Args:
        seed, amount, length, angle, width: ``(B,)`` int64 parameters (as :func:`~mio_strategies.degradations.sample_params`
            returns them, on any device).
        h, w: the images' height and width.
        device, dtype: where and as what the layer is returned (it is computed in float64).

    Returns:
        ``(B, 1, H, W)`` integer-valued layer in [0, 255].

    Example:
        >>> p = {k: torch.tensor([v]) for k, v in dict(seed=3, amount=80, length=30, angle=10, width=5).items()}
        >>> layer = rain_layer_torch(p["seed"], p["amount"], p["length"], p["angle"], p["width"], 32, 32, "cpu",
        ...                          torch.float32)
        >>> layer.shape, float(layer.max())
        (torch.Size([1, 1, 32, 32]), 255.0)
    """
    dev = torch.device(device)
    u = _streak_seeds_torch(seed, amount, h, w, dev)
    k, A = streak_kernels_torch(length, angle, width, dev)
    k2 = _cross_correlated_torch(k)  # anchor A + 1
    p = A + 1
    upad = u[:, reflect_index(h, p, dev)][:, :, reflect_index(w, p, dev)]
    r = _scatter(upad, k2, h, w)
    lo = r.amin(dim=(1, 2), keepdim=True)
    hi = r.amax(dim=(1, 2), keepdim=True)
    span = hi - lo
    flat = span <= 0
    scale = 255.0 / torch.where(flat, torch.ones_like(span), span)
    # truncation to integers as the reference's uint8 cast (1e-3 absorbs float error at the maximum)
    layer = torch.floor(torch.clamp((r - lo) * scale + 1e-3, 0, 255))
    layer = torch.where(flat, torch.zeros_like(layer), layer)
    return layer.to(dtype=dtype)[:, None]
