"""Parameter specifications, physically valid bounds and the reference presets of the seven degradations."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mio_strategies.tasks import TASK_NAMES, TaskLike, get_task
from mio_strategies.utils.validation import choice

SEED_BOUNDS = (0, 2**63 - 1)

STREAMS = ("torch", "philox")
"""Random streams of the per-image noise and rain fields. ``"torch"``: one CPU
``torch.Generator().manual_seed(seed)`` per image (every params dict recorded without a stream);
``"philox"``: Philox4x32-10 in torch integer ops, the batch drawn at once on the images' device, the same
on every device. Params drawn from the Philox stream record ``"stream": "philox"``; params without a
``stream`` entry replay the ``"torch"`` stream."""

DEFAULT_STREAM = "torch"
"""The stream new draws use unless one is asked for (the torch stream: faster on a CPU, and the one every
recorded test set and run was built with)."""

STREAM_TASKS = ("noise", "rain")
"""The tasks that draw a random field from their per-image seed (the only ones a stream applies to)."""

JPEG_CODECS = ("pillow", "diffjpeg")
"""JPEG codecs of the JPEG degradation. ``"pillow"``: Pillow's libjpeg, a real codec, on the CPU, one image
at a time (the library implementation's, and every params dict recorded without a codec);
``"diffjpeg"``: the differentiable JPEG model of basicsr (``DiffJPEG``, the reference implementation's),
batched torch on the images' device. Params drawn with the DiffJPEG codec record ``"codec": "diffjpeg"``;
params without a ``codec`` entry replay the implementation's codec (Pillow for ``"library"``, DiffJPEG
for ``"reference"``)."""

IMPLEMENTATION_CODECS = {"library": "pillow", "reference": "diffjpeg"}
"""Each implementation's own JPEG codec: the one used when none is asked for or recorded."""


@dataclass(frozen=True)
class ParamSpec:
    """One per-sample parameter of a degradation.

    Attributes:
        name: key in the ``params`` dict.
        kind: ``"float"`` (uniform real), ``"int"`` (uniform integer, both ends included), ``"odd"``
            (uniform over the odd integers of the range) or ``"seed"`` (a 63-bit seed drawn from the
            generator; not part of presets or ``ranges``).
        bounds: the closed interval of physically valid values; presets and ``ranges`` must lie inside.
        doc: one line of what the parameter means.
    """

    name: str
    kind: str
    bounds: tuple[float, float]
    doc: str

    @property
    def is_integer(self) -> bool:
        return self.kind in ("int", "odd", "seed")


def _p(name: str, kind: str, lo: float, hi: float, doc: str) -> ParamSpec:
    return ParamSpec(name, kind, (lo, hi), doc)


# Sampling order is the order listed here (it fixes which generator draw feeds which parameter).
TASK_PARAMS: dict[str, tuple[ParamSpec, ...]] = {
    "sr": (_p("scale", "int", 1, 16, "bicubic down-scaling factor (then bicubic up to the input size)"),),
    "blur": (
        _p("sigma", "float", 0.1, 25.0, "standard deviation of the isotropic Gaussian, in pixels"),
        _p("kernel_size", "odd", 1, 63, "odd side length of the Gaussian kernel"),
    ),
    "noise": (
        _p("sigma", "float", 0.0, 255.0, "standard deviation of the additive Gaussian noise, 0-255 scale"),
        _p("seed", "seed", *SEED_BOUNDS, "seed of the per-sample noise generator"),
    ),
    "jpeg": (_p("quality", "int", 1, 100, "JPEG quality (the IJG scale of libjpeg's and DiffJPEG's tables)"),),
    "rain": (
        _p("amount", "int", 0, 25600, "streak density: the top amount*0.01 of 256 uniform levels seed streaks"),
        _p("length", "int", 1, 99, "side of the streak kernel in pixels (its scale is 1 - length/100)"),
        _p("angle", "int", -180, 180, "streak angle in degrees (0 = vertical; the diagonal is rotated by angle-45)"),
        _p("width", "odd", 1, 31, "odd size of the Gaussian that widens the streaks"),
        _p("seed", "seed", *SEED_BOUNDS, "seed of the per-sample streak-seed generator"),
    ),
    "haze": (
        _p("airlight", "float", 0.0, 1.0, "global atmospheric light A"),
        _p("beta", "float", 0.0, 20.0, "scattering coefficient: t = exp(-beta * depth)"),
    ),
    "lowlight": (_p("gamma", "float", 0.05, 20.0, "exponent of the gamma curve I**gamma"),),
}
"""Task name -> the specifications (name, kind, bounds, meaning) of its degradation's parameters."""

PARAM_BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    task: {s.name: s.bounds for s in specs if s.kind != "seed"} for task, specs in TASK_PARAMS.items()
}
"""Task name -> parameter name -> the (low, high) bounds a sampled or given value must lie in."""

# The reference code's ranges (PROTOCOL.md). "in": training and In-Dis test; "out": Out-Dis test.
PRESETS: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "in": {
        "sr": {"scale": (4, 4)},
        "blur": {"sigma": (1.0, 3.0), "kernel_size": (7, 21)},
        "noise": {"sigma": (15.0, 50.0)},
        "jpeg": {"quality": (30, 70)},
        "rain": {"amount": (50, 100), "length": (20, 40), "angle": (-45, 44), "width": (3, 11)},
        "haze": {"airlight": (0.8, 1.0), "beta": (0.5, 2.5)},
        "lowlight": {"gamma": (1.0, 3.0)},
    },
    "out": {
        "sr": {"scale": (6, 6)},
        "blur": {"sigma": (3.0, 5.0), "kernel_size": (7, 21)},
        "noise": {"sigma": (50.0, 70.0)},
        "jpeg": {"quality": (10, 30)},
        "rain": {"amount": (100, 150), "length": (20, 40), "angle": (-45, 44), "width": (3, 11)},
        "haze": {"airlight": (0.8, 1.0), "beta": (2.5, 3.0)},
        "lowlight": {"gamma": (3.0, 4.0)},
    },
}
"""Preset name (``"in"``: In-Dis, the training distribution; ``"out"``: Out-Dis, harder) -> task -> parameter
-> sampling range."""


def task_name(task: TaskLike) -> str:
    """Canonical name of a task (raises UnknownTaskError listing the valid ones)."""
    return get_task(task).name


def spec_of(task: str, name: str) -> ParamSpec:
    for s in TASK_PARAMS[task]:
        if s.name == name:
            return s
    valid = [s.name for s in TASK_PARAMS[task]]
    raise ValueError(f"unknown parameter {name!r} for task {task!r}: valid parameters are {valid}")


def check_stream(stream: Any) -> str:
    """``stream`` if it names a known random stream (None: the default), else a ValueError listing them."""
    if stream is None:
        return DEFAULT_STREAM
    return choice("stream", stream, STREAMS, what="random stream", plural="streams", note=" (or None, the default)")


def check_codec(codec: Any) -> str | None:
    """``codec`` if it names a JPEG codec, or None (the implementation's), else a ValueError listing them.

    Example:
        >>> check_codec("diffjpeg")
        'diffjpeg'
    """
    if codec is None:
        return None
    return choice(
        "codec",
        codec,
        JPEG_CODECS,
        what="JPEG codec",
        plural="JPEG codecs",
        note=" (or None: the implementation's, 'pillow' for 'library', 'diffjpeg' for 'reference')",
    )


def check_preset(preset: Any) -> str:
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: valid presets are 'in' (training, In-Dis) and 'out' (Out-Dis)")
    return preset


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def resolve_ranges(task: str, preset: str, ranges: Mapping[str, Any] | None) -> dict[str, tuple[float, float]]:
    """The preset's ranges for ``task`` with ``ranges`` overriding some of them, all validated."""
    out = dict(PRESETS[check_preset(preset)][task])
    if ranges is None:
        return out
    if not isinstance(ranges, Mapping):
        raise TypeError(
            f"ranges must be a dict {{param: (lo, hi)}}, got {type(ranges).__name__}; "
            f"e.g. ranges={{{next(iter(out))!r}: {out[next(iter(out))]}}}"
        )
    for name, rng in ranges.items():
        spec = spec_of(task, name)
        if spec.kind == "seed":
            raise ValueError(
                f"{task}.{name} is drawn from the generator and has no range; pass params={{'{name}': ...}} to fix it"
            )
        out[name] = check_range(task, spec, rng)
    return out


def check_range(task: str, spec: ParamSpec, rng: Any) -> tuple[float, float]:
    """Validate one ``(lo, hi)`` range against the parameter's physical bounds."""
    where = f"range of {task}.{spec.name}"
    try:
        lo, hi = rng
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a pair (lo, hi) of numbers, got {rng!r}") from None
    blo, bhi = spec.bounds
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{where} must be finite, got ({lo:g}, {hi:g})")
    if lo > hi:
        raise ValueError(f"{where} has lo > hi: ({lo:g}, {hi:g}); give (lo, hi) with lo <= hi")
    if lo < blo or hi > bhi:
        raise ValueError(
            f"{where} ({lo:g}, {hi:g}) is outside the valid bounds [{_fmt(blo)}, {_fmt(bhi)}] ({spec.doc})"
        )
    if spec.is_integer:
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f"{where} must have integer ends for an integer parameter, got ({lo:g}, {hi:g})")
        lo, hi = int(lo), int(hi)
        if spec.kind == "odd":
            first = lo if lo % 2 == 1 else lo + 1
            if first > hi:
                raise ValueError(f"{where} ({lo}, {hi}) contains no odd value; {spec.name} must be odd")
        return (lo, hi)
    return (lo, hi)


__all__ = [
    "ParamSpec",
    "TASK_PARAMS",
    "PARAM_BOUNDS",
    "PRESETS",
    "SEED_BOUNDS",
    "STREAMS",
    "DEFAULT_STREAM",
    "STREAM_TASKS",
    "check_stream",
    "JPEG_CODECS",
    "IMPLEMENTATION_CODECS",
    "check_codec",
    "TASK_NAMES",
    "check_preset",
    "check_range",
    "resolve_ranges",
    "spec_of",
    "task_name",
]
