"""Tiled inference: apply an image-to-image function to overlapping tiles and blend them back.

Memory then grows with the tile, not with the image: a network sees one ``tile x tile`` crop at a time,
while the input, the output and one weight map (three image-sized tensors) stay wherever the input is
(e.g. on the CPU while the network runs on a GPU).

Pure torch; nothing here imports any other part of the package.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from mio_strategies.utils.validation import is_int, positive_int

__all__ = ["pad_to_multiple", "tile_starts", "tiled_apply"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` so that its last two sides are multiples of ``multiple``.

    By reflection, or by repeating the edge where the image is too small to reflect (a pad as long as its side).

    Args:
        x: a tensor ``(..., H, W)``.
        multiple: the size multiple (1: nothing to pad).

    Returns:
        ``x`` itself when nothing needs padding, else the padded tensor ``(..., H', W')``.

    Example:
        >>> pad_to_multiple(torch.zeros(1, 3, 5, 8), 4).shape
        torch.Size([1, 3, 8, 8])
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of the tiles that cover ``[0, length)`` with tiles of side ``tile``.

    Neighbouring tiles overlap by at least ``overlap`` pixels; the first starts at 0 and the last ends at
    ``length``; the tiles are spread evenly and every start is a multiple of ``multiple`` (so that a network
    that downsamples sees the same pixel grid in every tile as in the whole image).

    Args:
        length: the side to cover (a multiple of ``multiple`` when ``tile < length``).
        tile: the tile side.
        overlap: the least overlap of two neighbours.
        multiple: every start is a multiple of it.

    Returns:
        The sorted starts (``[0]`` when one tile covers the side).

    Example:
        >>> tile_starts(100, 40, 8)
        [0, 30, 60]
    """
    if tile >= length:
        return [0]
    if length % multiple or tile % multiple:
        raise ValueError(f"length {length} and tile {tile} must be multiples of {multiple}")
    step_units = (tile - overlap) // multiple  # the largest step, in units of `multiple`
    if step_units < 1:
        raise ValueError(f"tile {tile} must exceed overlap {overlap} by at least the size multiple {multiple}")
    last_units = (length - tile) // multiple
    gaps = -(-last_units // step_units)  # so that no gap exceeds step_units
    return sorted({(i * last_units // gaps) * multiple for i in range(gaps + 1)})


def _ramp(size: int, overlap: int, before: bool, after: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A 1-D blending weight: 1 inside, 0 for the outer quarter of the overlap at an inner edge, then linear.

    Two neighbours overlapping by exactly ``overlap`` have weights that sum to 1 over their overlap.
    """
    w = torch.ones(size, dtype=dtype, device=device)
    if overlap <= 0:
        return w
    margin = overlap // 4
    ramp_len = overlap - 2 * margin
    # weight at distance d from the edge: 0 for d < margin, (d - margin + 0.5) / ramp_len up to 1
    d = torch.arange(size, dtype=dtype, device=device)
    ramp = ((d - margin + 0.5) / ramp_len).clamp(0, 1)
    if before:
        w = torch.minimum(w, ramp)
    if after:
        w = torch.minimum(w, ramp.flip(0))
    return w


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int | None,
    overlap: int = 32,
    multiple: int = 1,
    *,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """``fn(x)`` computed tile by tile, for a size-preserving image-to-image function ``fn``.

    ``x`` is first padded to a multiple of ``multiple`` (as :func:`pad_to_multiple`), cut into tiles of side
    ``tile`` that overlap by at least ``overlap`` pixels, each tile passed to ``fn`` alone, and the outputs
    blended with weights that are zero in the outer quarter of each overlap and ramp linearly across its middle
    half; the result is cropped back to ``x``'s size. Hence:

    - a tile only contributes to pixels at least ``overlap // 4`` pixels away from its inner edges, so for a
      network whose receptive field reaches at most ``overlap // 4`` pixels from each output pixel (a stack of
      ``k`` 3x3 convolutions reaches ``k``) the result equals ``fn`` on the whole padded image up to float
      rounding;
    - a network with a global operation (channel attention's pooling, a transformer's global attention) gives
      a close but not equal result, without visible seams where the weights ramp.

    Args:
        fn: maps ``(B, C, h, w)`` to ``(B, C', h, w)`` (same height and width), for ``h`` and ``w`` multiples of
            ``multiple``. It may run elsewhere (``lambda t: net(t.cuda())``): its output is moved back to ``x``'s
            device.
        x: the image batch ``(B, C, H, W)``, any size.
        tile: the tile side, a multiple of ``multiple``; ``None`` (or a tile at least as large as the padded
            image) applies ``fn`` once to the whole padded image.
        overlap: the least overlap of neighbouring tiles, ``0 <= overlap < tile / 2``.
        multiple: the network's size multiple (e.g. 8 for a U-Net with three downsamplings).
        on_tile: called as ``on_tile(done, total)`` after each tile (for a progress bar).

    Returns:
        ``(B, C', H, W)`` on ``x``'s device, in ``fn``'s output dtype.

    Raises:
        ValueError: ``x`` is not 4-D; ``multiple`` < 1; ``tile`` not a positive multiple of ``multiple``;
            ``overlap`` out of range; ``fn`` changed the tile's height or width.

    Example:
        >>> net = torch.nn.Conv2d(3, 3, 3, padding=1)
        >>> x = torch.rand(1, 3, 100, 70)
        >>> with torch.no_grad():
        ...     torch.allclose(tiled_apply(net, x, tile=32, overlap=8), net(x), atol=1e-5)
        True
    """
    if x.ndim != 4:
        raise ValueError(f"x must be a batch (B, C, H, W), got shape {tuple(x.shape)}: add a batch axis with x[None]")
    positive_int("multiple", multiple)
    if tile is not None:
        if not is_int(tile) or tile < 1 or tile % multiple:
            hint = f"e.g. {max(multiple, tile - tile % multiple)}" if isinstance(tile, int) else f"e.g. {16 * multiple}"
            raise ValueError(
                f"tile must be a positive multiple of {multiple} (the network's size multiple), got {tile!r}: {hint}"
            )
        if not isinstance(overlap, int) or overlap < 0 or 2 * overlap >= tile or tile - overlap < multiple:
            raise ValueError(
                f"overlap must be an int with 0 <= overlap < tile / 2 and tile - overlap >= {multiple} "
                f"(the size multiple), got {overlap!r} for tile {tile}"
            )
    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, multiple)
    hp, wp = xp.shape[-2:]
    if tile is None or (tile >= hp and tile >= wp):
        whole = fn(xp)
        _check_size(whole, xp)
        if on_tile is not None:
            on_tile(1, 1)
        return whole[..., :h, :w].to(x.device)
    ys = tile_starts(hp, tile, overlap, multiple)
    xs = tile_starts(wp, tile, overlap, multiple)
    th, tw = min(tile, hp), min(tile, wp)
    total = len(ys) * len(xs)
    out: torch.Tensor | None = None
    weight = torch.zeros(1, 1, hp, wp, dtype=torch.float32, device=x.device)
    done = 0
    for i, y0 in enumerate(ys):
        wy = _ramp(th, overlap, i > 0, i < len(ys) - 1, torch.float32, x.device)
        for j, x0 in enumerate(xs):
            wx = _ramp(tw, overlap, j > 0, j < len(xs) - 1, torch.float32, x.device)
            piece = xp[..., y0 : y0 + th, x0 : x0 + tw]
            res = fn(piece)
            _check_size(res, piece)
            res = res.to(x.device)
            if out is None:
                out = torch.zeros(*res.shape[:2], hp, wp, dtype=res.dtype, device=x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]
            out[..., y0 : y0 + th, x0 : x0 + tw] += res * wt.to(res.dtype)
            weight[..., y0 : y0 + th, x0 : x0 + tw] += wt
            done += 1
            if on_tile is not None:
                on_tile(done, total)
    assert out is not None
    return (out / weight.to(out.dtype))[..., :h, :w]


def _check_size(out: torch.Tensor, inp: torch.Tensor) -> None:
    if out.ndim != 4 or out.shape[-2:] != inp.shape[-2:] or out.shape[0] != inp.shape[0]:
        raise ValueError(
            f"fn must keep the batch, height and width of its input: {tuple(inp.shape)} -> "
            f"{tuple(out.shape)} (a super-resolution network with a scale factor is not supported)"
        )
