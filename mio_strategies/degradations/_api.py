"""Sampling parameters from an explicit generator, applying them, and both at once (``degrade``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from mio_strategies.tasks import TaskLike
from mio_strategies.utils.validation import int_in_range

from . import _functional as fn
from . import _reference as ref
from ._depth import DepthLike
from ._specs import (
    IMPLEMENTATION_CODECS,
    SEED_BOUNDS,
    STREAM_TASKS,
    TASK_PARAMS,
    check_codec,
    check_preset,
    check_stream,
    resolve_ranges,
    task_name,
)
from ._validation import check_images, check_params

__all__ = ["sample_params", "apply_degradation", "degrade", "fresh_generator"]


def fresh_generator() -> torch.Generator:
    """A CPU generator with a fresh nondeterministic seed (``Generator.seed()``), never the global RNG."""
    g = torch.Generator()
    g.seed()
    return g


def _check_generator(generator: Any) -> torch.Generator:
    if generator is None:
        return fresh_generator()
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}; "
            f"use torch.Generator().manual_seed(seed)"
        )
    return generator


def _check_batch_size(batch_size: Any) -> int:
    return int_in_range("batch_size", batch_size, 1, type_error=True)


def _draw(kind: str, lo: float, hi: float, n: int, g: torch.Generator) -> torch.Tensor:
    dev = g.device
    if kind == "float":
        u = torch.rand(n, generator=g, device=dev, dtype=torch.float64).cpu()
        return lo + (hi - lo) * u
    if kind == "int":
        return torch.randint(int(lo), int(hi) + 1, (n,), generator=g, device=dev, dtype=torch.int64).cpu()
    if kind == "odd":
        first = int(lo) if int(lo) % 2 == 1 else int(lo) + 1
        count = (int(hi) - first) // 2 + 1
        return first + 2 * torch.randint(0, count, (n,), generator=g, device=dev, dtype=torch.int64).cpu()
    if kind == "seed":
        return torch.randint(SEED_BOUNDS[0], SEED_BOUNDS[1], (n,), generator=g, device=dev, dtype=torch.int64).cpu()
    raise AssertionError(kind)  # pragma: no cover


def sample_params(
    task: TaskLike,
    batch_size: int,
    *,
    preset: str = "in",
    generator: torch.Generator | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    stream: str | None = None,
    codec: str | None = None,
) -> dict[str, Any]:
    """Draw one set of parameters per image for ``task`` from the preset's ranges.

    Draws come only from ``generator`` (any device; the tensors are returned on the CPU), in the fixed
    order of the task's parameters. Float parameters are float64 and uniform on ``[lo, hi]``, integer ones
    int64 and uniform on ``lo..hi`` (odd ones on the odd values); noise and rain also get a 63-bit
    per-image ``seed``.

    Args:
        task: name, letter or id (``"rain"``, ``"R"``, ``4``).
        batch_size: number of images.
        preset: ``"in"`` (training, In-Dis) or ``"out"`` (Out-Dis).
        generator: explicit generator; ``None`` draws a fresh nondeterministic seed (the returned params
            still replay the call exactly).
        ranges: ``{param: (lo, hi)}`` overriding the preset, validated against :data:`PARAM_BOUNDS`.
        stream: the random stream of the noise and rain fields, ``"torch"`` (one CPU generator per image)
            or ``"philox"`` (counter-based, drawn batched on the images' device, the same on every device);
            ``None``: :data:`DEFAULT_STREAM`. The Philox stream is recorded as ``params["stream"]``; it
            changes no other draw.
        codec: the JPEG codec, ``"pillow"`` or ``"diffjpeg"`` (see :data:`JPEG_CODECS`; ``None``: the
            implementation's). The DiffJPEG codec is recorded as ``params["codec"]`` (JPEG only); it
            changes no draw. Other tasks ignore it.

    Returns:
        ``{param: (batch_size,) tensor}``, plus ``"stream": "philox"`` for noise and rain on that stream
        and ``"codec": "diffjpeg"`` for JPEG with that codec.

    Raises:
        UnknownTaskError: unknown task. ValueError: unknown preset, parameter, stream, codec or out-of-bounds
            range (for the DiffJPEG codec, a quality range reaching 100).

    Example:
        >>> p = sample_params("blur", 4, generator=torch.Generator().manual_seed(0))
        >>> sorted(p), p["kernel_size"].shape
        (['kernel_size', 'sigma'], torch.Size([4]))
    """
    name = task_name(task)
    check_preset(preset)
    n = _check_batch_size(batch_size)
    rng = resolve_ranges(name, preset, ranges)
    stream = check_stream(stream)
    codec = check_codec(codec)
    if name == "jpeg" and codec == "diffjpeg" and rng["quality"][1] >= 100:
        raise ValueError(
            f"range of jpeg.quality {rng['quality']} reaches 100, outside the DiffJPEG codec's range: its tables "
            "are scaled by (200 - 2 * quality) / 100 = 0 there; use a range within [1, 99]"
        )
    g = _check_generator(generator)
    out: dict[str, Any] = {}
    for spec in TASK_PARAMS[name]:
        lo, hi = rng.get(spec.name, SEED_BOUNDS)
        out[spec.name] = _draw(spec.kind, lo, hi, n, g)
    if name in STREAM_TASKS and stream != "torch":
        out["stream"] = stream
    if name == "jpeg" and codec == "diffjpeg":
        out["codec"] = codec
    return out


def _dispatch(
    images: torch.Tensor, name: str, p: dict[str, Any], depth: DepthLike | None, implementation: str = "library"
) -> torch.Tensor:
    """Apply validated params to validated images (the explicit functions minus their checks)."""
    if implementation == "reference":
        return _dispatch_reference(images, name, p, depth)
    if name == "sr":
        return fn._sr_impl(images, p["scale"])
    if name == "blur":
        return fn._blur_impl(images, p["sigma"], p["kernel_size"])
    if name == "noise":
        return fn._noise_impl(images, p["sigma"], p["seed"], stream=p.get("stream", "torch"))
    if name == "jpeg":
        if p.get("codec", IMPLEMENTATION_CODECS["library"]) == "diffjpeg":
            return ref._jpeg_diffjpeg_impl(images, p["quality"])
        return fn._jpeg_impl(images, p["quality"])
    if name == "rain":
        return fn._rain_impl(images, p["amount"], p["length"], p["angle"], p["width"], p["seed"],
                             stream=p.get("stream", "torch"))
    if name == "haze":
        return fn._haze_impl(images, depth, p["airlight"], p["beta"])
    if name == "lowlight":
        return fn._lowlight_impl(images, p["gamma"])
    raise AssertionError(name)  # pragma: no cover


_REFERENCE_CODEC = (
    "implementation='reference' compresses JPEG with its own codec, DiffJPEG, but codec 'pillow' was asked for "
    "(as an argument or params['codec']): use implementation='library' for Pillow, or codec 'diffjpeg' (or no "
    "codec) with the reference"
)


def _dispatch_reference(
    images: torch.Tensor, name: str, p: dict[str, torch.Tensor], depth: DepthLike | None
) -> torch.Tensor:
    """The reference's training path: its own SR and JPEG, its crop for rain and haze, else the library's."""
    if name == "sr":
        return ref._sr_torch_impl(images, p["scale"])
    if name == "jpeg":
        if p.get("codec", IMPLEMENTATION_CODECS["reference"]) != "diffjpeg":
            raise ValueError(_REFERENCE_CODEC)
        return ref._jpeg_diffjpeg_impl(images, p["quality"])
    if name in ref.CROPPING_TASKS:
        full = (images.shape[-2], images.shape[-1])
        images = ref.crop_to_multiple(images)
        depth = ref.crop_depth(depth, full, (images.shape[-2], images.shape[-1]))
    return _dispatch(images, name, p, depth)


def apply_degradation(
    images: torch.Tensor,
    task: TaskLike,
    params: Mapping[str, Any],
    *,
    depth: DepthLike | None = None,
    implementation: str = "library",
) -> torch.Tensor:
    """Apply ``task`` with explicit per-image ``params`` (as returned by :func:`sample_params`).

    Deterministic: the same images, params (and depth) give bit-identical output on the same device.
    The parameters mean the same in both implementations.

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1], any device and float dtype.
        task: name, letter or id.
        params: exactly the task's keys, each a number or a ``(B,)`` tensor.
        depth: haze only: depth map or path (see :func:`add_haze`); ``None`` uses :func:`estimate_depth`.
        implementation: ``"library"`` (default) or ``"reference"``, the official code's training data path
            (see :func:`degrade`). JPEG params recording a codec (``params["codec"]``) use it; with
            ``"reference"`` only ``"diffjpeg"`` (its own codec) is accepted.

    Returns:
        Degraded images, same dtype/device, on 8-bit levels; same shape, except that the reference's rain
        and haze crop H and W down to multiples of 4.

    Raises:
        UnknownTaskError, TypeError, ValueError: bad task, images, params or depth (messages name them).

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> apply_degradation(x, "lowlight", {"gamma": torch.tensor([2.0, 3.0])}).shape
        torch.Size([2, 3, 16, 16])
    """
    name = task_name(task)
    ref.check_implementation(implementation)
    check_images(images)
    p = check_params(name, params, images.shape[0])
    if depth is not None and name != "haze":
        raise ValueError(f"depth is only used by the 'haze' task, got task {name!r} with a depth map")
    return _dispatch(images, name, p, depth, implementation)


def degrade(
    images: torch.Tensor,
    task: TaskLike,
    *,
    params: Mapping[str, Any] | None = None,
    preset: str = "in",
    generator: torch.Generator | None = None,
    depth: DepthLike | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    implementation: str = "library",
    stream: str | None = None,
    codec: str | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Degrade a batch with one task: sample parameters (or take ``params``) and apply them.

    Passing the returned ``params`` back reproduces the output bit-exactly (same device), whether or not a
    generator was given.

    ``implementation="reference"`` follows the official code's training data path where it differs from
    the library's: SR is PyTorch bicubic (``F.interpolate``, a = -0.75, no antialiasing) down by the scale
    and back up, rounded once at the end (the library: MATLAB ``imresize`` with an 8-bit low-resolution
    image); JPEG is basicsr's ``DiffJPEG`` model (the library: Pillow's libjpeg); rain and haze first crop
    the images (top-left) to multiples of 4. The other tasks, the parameters and their sampling are the same.

    ``codec`` picks the JPEG codec independently of the implementation: ``codec="diffjpeg"`` with the
    library's implementation gives the reference's batched DiffJPEG (on the images' device) for JPEG and
    the library's choices for everything else. With ``implementation="reference"`` the codec is DiffJPEG:
    ``codec="diffjpeg"`` is the same, ``codec="pillow"`` is refused (a contradiction).

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1], any device and float dtype.
        task: name, letter or id (``"sr"``, ``"S"``, ``0``).
        params: replay these parameters instead of sampling (then ``generator`` and ``ranges`` must be None).
        preset: ``"in"`` (training and In-Dis test) or ``"out"`` (Out-Dis test).
        generator: explicit ``torch.Generator`` (a CPU one is fine for CUDA images); ``None`` uses a fresh
            nondeterministic seed.
        depth: haze only: depth map or path; ``None`` uses :func:`estimate_depth` (not the reference's maps).
        ranges: ``{param: (lo, hi)}`` overriding the preset's ranges.
        implementation: ``"library"`` (default) or ``"reference"`` (above).
        stream: random stream of the noise and rain fields when sampling (see :func:`sample_params`); a
            replay uses the stream ``params`` record (none recorded: ``"torch"``).
        codec: JPEG codec when sampling, ``"pillow"`` or ``"diffjpeg"`` (``None``: the implementation's;
            see above); a replay uses the codec ``params`` record (none recorded: the implementation's).

    Returns:
        ``(degraded, params)``: the images on 8-bit levels (for the reference's rain and haze, cropped to
        multiples of 4), and ``{param: (B,) CPU tensor}`` (plus ``"stream"`` for noise and rain drawn from
        the Philox stream, ``"codec"`` for JPEG with the DiffJPEG codec).

    Raises:
        UnknownTaskError: unknown task. TypeError/ValueError: bad images, preset, params, ranges, depth,
            implementation or codec, or ``codec="pillow"`` with ``implementation="reference"``.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> y, p = degrade(x, "noise", generator=torch.Generator().manual_seed(0))
        >>> torch.equal(degrade(x, "noise", params=p)[0], y)
        True
    """
    name = task_name(task)
    check_preset(preset)
    ref.check_implementation(implementation)
    if check_codec(codec) == "pillow" and implementation == "reference":
        raise ValueError(_REFERENCE_CODEC)
    check_images(images)
    b = images.shape[0]
    if depth is not None and name != "haze":
        raise ValueError(f"depth is only used by the 'haze' task, got task {name!r} with a depth map")
    if params is not None:
        if generator is not None or ranges is not None:
            raise ValueError("pass either params (to replay) or generator/ranges (to sample), not both")
        if stream is not None:
            raise ValueError(
                f"stream={stream!r} with params: a replay uses the stream its params record (params['stream'], "
                "none: 'torch'); pass stream only to sample, or set params['stream']"
            )
        if codec is not None:
            raise ValueError(
                f"codec={codec!r} with params: a replay uses the JPEG codec its params record (params['codec'], "
                "none: the implementation's); pass codec only to sample, or set params['codec']"
            )
        p = check_params(name, params, b)
    else:
        p = sample_params(name, b, preset=preset, generator=generator, ranges=ranges, stream=stream, codec=codec)
    return _dispatch(images, name, p, depth, implementation), p
