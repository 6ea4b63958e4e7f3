"""Input validation shared by every degradation: images, per-sample parameters, params dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ._specs import JPEG_CODECS, STREAM_TASKS, STREAMS, TASK_PARAMS, ParamSpec, _fmt, spec_of


def check_images(images: Any, name: str = "images") -> torch.Tensor:
    """Check that ``images`` is a float ``(B, 3, H, W)`` tensor with values in [0, 1]; return it."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, 3, H, W) with values in [0, 1], got "
            f"{type(images).__name__}; convert with torch.as_tensor(...).permute(...) as needed"
        )
    if not images.is_floating_point():
        hint = " / 255" if images.dtype == torch.uint8 else ""
        raise TypeError(
            f"{name} must be a float tensor with values in [0, 1], got dtype {images.dtype}; "
            f"convert with {name}.float(){hint}"
        )
    shape = tuple(images.shape)
    if images.ndim != 4 or shape[1] != 3:
        if images.ndim == 3 and shape[0] == 3:
            fix = f"add a batch dimension with {name}.unsqueeze(0)"
        elif images.ndim == 4 and shape[1] == 1:
            fix = f"repeat grayscale to RGB with {name}.expand(-1, 3, -1, -1)"
        elif images.ndim == 4 and shape[1] == 4:
            fix = f"drop the alpha channel with {name}[:, :3]"
        elif images.ndim == 4 and shape[-1] == 3:
            fix = f"move channels first with {name}.permute(0, 3, 1, 2)"
        else:
            fix = "give a batch of RGB images, channels first"
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {shape}; {fix}")
    if min(shape[0], shape[2], shape[3]) == 0:
        raise ValueError(f"{name} must be non-empty, got shape {shape}")
    mn, mx = torch.aminmax(images)
    mn_f, mx_f = float(mn), float(mx)
    if not (mn_f >= 0.0 and mx_f <= 1.0):  # also false for NaN
        nan = " (contains NaN)" if bool(torch.isnan(images).any()) else ""
        raise ValueError(
            f"{name} must have values in [0, 1], got min {mn_f:.4g} max {mx_f:.4g}{nan}; "
            f"scale 0-255 images with {name} / 255 and clip with {name}.clamp(0, 1)"
        )
    return images


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other float dtype computes in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def as_param(value: Any, task: str, name: str, batch: int) -> torch.Tensor:
    """Per-sample parameter as a CPU ``(batch,)`` tensor (int64 or float64), validated against its bounds.

    Accepts a Python number, a 0-d tensor/array (broadcast to the batch) or a 1-d sequence of length ``batch``.
    """
    spec = spec_of(task, name)
    where = f"{task}.{name}"
    if isinstance(value, bool):
        raise TypeError(f"{where} must be a number or a tensor of {batch} numbers, got bool {value!r}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:  # beyond int64: out of any bound here
        bounds = f"[{_fmt(spec.bounds[0])}, {_fmt(spec.bounds[1])}]"
        raise ValueError(f"{where} = {value!r} is outside the valid bounds {bounds} ({spec.doc})")
    try:
        # a Python float is kept in float64 (torch.as_tensor would round it to float32)
        t = (value.detach().cpu() if isinstance(value, torch.Tensor)
             else torch.as_tensor(value, dtype=torch.float64) if isinstance(value, float) else torch.as_tensor(value))
    except OverflowError:
        raise ValueError(f"{where} holds a number beyond 64 bits: valid bounds are [{_fmt(spec.bounds[0])}, "
                         f"{_fmt(spec.bounds[1])}] ({spec.doc})") from None
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{where} must be a number or a tensor of {batch} numbers, got {type(value).__name__}"
        ) from None
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{where} must hold real numbers, got dtype {t.dtype}")
    if t.ndim == 0:
        t = t.reshape(1).expand(batch)
    elif t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(
            f"{where} must be a number or have shape ({batch},) (one value per image), got shape {tuple(t.shape)}"
        )
    return _check_values(t, spec, where)


def _check_values(t: torch.Tensor, spec: ParamSpec, where: str) -> torch.Tensor:
    lo, hi = spec.bounds
    if t.is_floating_point() and spec.is_integer:
        # integer parameters given as floats: whole numbers only, compared exactly (float64 rounds 2**63 - 1
        # up to 2**63, which would pass a float comparison and overflow int64)
        t = t.to(torch.float64)
        whole = torch.isfinite(t) & (t == torch.round(t))
        if not bool(whole.all()):
            raise ValueError(f"{where} must be an integer, got {t[~whole][0].item()!r}")
        values = [int(v) for v in t.tolist()]
        bad_ints = [v for v in values if not int(lo) <= v <= int(hi)]
        if bad_ints:
            raise ValueError(f"{where} = {bad_ints[0]!r} is outside the valid bounds [{_fmt(lo)}, {_fmt(hi)}] ({spec.doc})")
        t = torch.tensor(values, dtype=torch.int64)
    if t.is_floating_point():
        t = t.to(torch.float64)
        ok = (t >= lo) & (t <= hi)  # false for NaN
    else:
        t = t.to(torch.int64)
        ok = (t >= int(lo)) & (t <= int(hi))
    if not bool(ok.all()):
        bad = t[~ok][0].item()
        raise ValueError(f"{where} = {bad!r} is outside the valid bounds [{_fmt(lo)}, {_fmt(hi)}] ({spec.doc})")
    if spec.is_integer:
        if t.is_floating_point():
            frac = t != torch.round(t)
            if bool(frac.any()):
                raise ValueError(f"{where} must be an integer, got {t[frac][0].item()!r}")
            t = t.to(torch.int64)
        if spec.kind == "odd" and bool((t % 2 == 0).any()):
            raise ValueError(f"{where} must be odd, got {t[t % 2 == 0][0].item()}")
    else:
        t = t.to(torch.float64)
    return t.contiguous()


def check_params(task: str, params: Any, batch: int) -> dict[str, Any]:
    """Validate a params dict for ``task`` (exact keys, one value per image, values in bounds).

    Noise and rain params may also hold ``"stream"`` (``"torch"`` or ``"philox"``): the random stream of
    their fields; it is kept when present (absent: the ``"torch"`` stream, as every params dict recorded
    before streams were). JPEG params may hold ``"codec"`` (``"pillow"`` or ``"diffjpeg"``), kept when
    present (absent: the implementation's codec, Pillow for the library, as every params dict recorded
    before codecs were).
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            "params must be a dict of per-sample tensors as returned by degrade/sample_params, "
            f"got {type(params).__name__}"
        )
    expected = [s.name for s in TASK_PARAMS[task]]
    missing = [k for k in expected if k not in params]
    optional = "stream" if task in STREAM_TASKS else "codec" if task == "jpeg" else None
    extra = [k for k in params if k not in expected and k != optional]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if extra:
            parts.append(f"unexpected keys {extra}")
        opt = f" (and optionally {optional!r})" if optional else ""
        raise ValueError(f"params for task {task!r}: {' and '.join(parts)}; expected exactly {expected}{opt}")
    out: dict[str, Any] = {k: as_param(params[k], task, k, batch) for k in expected}
    if "stream" in params:
        stream = params["stream"]
        if not isinstance(stream, str) or stream not in STREAMS:
            raise ValueError(f"params for task {task!r}: unknown stream {stream!r}; valid streams are {list(STREAMS)}")
        out["stream"] = stream
    if "codec" in params:
        codec = params["codec"]
        if not isinstance(codec, str) or codec not in JPEG_CODECS:
            raise ValueError(
                f"params for task {task!r}: unknown JPEG codec {codec!r}; valid JPEG codecs are {list(JPEG_CODECS)}"
            )
        out["codec"] = codec
    return out
