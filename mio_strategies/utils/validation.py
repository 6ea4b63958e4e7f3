"""Checked arguments: the one home of the library's argument checks, used by every layer.

Each helper returns the checked value (converted where that is its job: :func:`finite_float` returns a
``float``) or raises with a message that names the argument, the bad value and what is valid, so callers
write ``n = positive_int("num_feat", num_feat)`` instead of an ``isinstance`` test and a message of their own.
A ``bool`` is never accepted where an integer or a number is required (``True`` is an ``int`` to Python, but
``num_block=True`` is a mistake).

Example:
    >>> positive_int("num_feat", 16)
    16
    >>> probability("p", 0.5)
    0.5
    >>> choice("optimizer", "adamw", ("adam", "adamw"))
    'adamw'
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

__all__ = [
    "SUGGESTION_CUTOFF",
    "choice",
    "closest_name",
    "did_you_mean",
    "finite_float",
    "int_in_range",
    "is_int",
    "non_negative_int",
    "positive_int",
    "probability",
]

#: how alike a wrong name and a valid one must be (``difflib`` ratio, case-insensitive) for the valid one to be
#: suggested: a real near miss (``period_iter``: 0.96, ``batchsize``: 0.95, ``srresnt``: 0.93), not any name
#: that shares a few letters (``bogus_key`` and ``log_every``: 0.56; ``lrate`` and ``strategy``: 0.62)
SUGGESTION_CUTOFF = 0.75


def is_int(value: Any, *, numpy: bool = False) -> TypeGuard[int]:
    """Whether ``value`` is an integer and not a bool.

    Args:
        value: anything.
        numpy: also accept integer scalars of other libraries (numpy, a 0-d integer tensor: anything
            with ``__index__``), never a bool of theirs.

    Example:
        >>> is_int(3), is_int(True), is_int(3.0)
        (True, False, False)
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return numpy and hasattr(value, "__index__") and not _is_bool_like(value)


def positive_int(name: str, value: Any, *, note: str = "", type_error: bool = False, numpy: bool = False) -> int:
    """``value`` if it is an integer >= 1.

    Args:
        name: the argument's name, for the message.
        value: the given value.
        note: appended to what is valid, e.g. ``" or None"`` or ``" (the crop's size in pixels)"``.
        type_error: raise :class:`TypeError` (not :class:`ValueError`) for a value that is no integer.
        numpy: also accept numpy integers (see :func:`is_int`); the result is a Python ``int``.

    Returns:
        ``value`` as an ``int``.

    Raises:
        ValueError: ``"<name> must be a positive integer<note>, got <value>"`` for anything else (bools
            included); a :class:`TypeError` with the value's type for a non-integer if ``type_error``.

    Example:
        >>> positive_int("steps", 0)
        Traceback (most recent call last):
        ...
        ValueError: steps must be a positive integer, got 0
    """
    return _checked_int(name, value, 1, None, "a positive integer", note, type_error, numpy)


def non_negative_int(name: str, value: Any, *, note: str = "", type_error: bool = False, numpy: bool = False) -> int:
    """``value`` if it is an integer >= 0.

    Args:
        name: the argument's name, for the message.
        value: the given value.
        note: appended to what is valid (see :func:`positive_int`).
        type_error: raise :class:`TypeError` (not :class:`ValueError`) for a value that is no integer.
        numpy: also accept numpy integers (see :func:`is_int`).

    Returns:
        ``value`` as an ``int``.

    Raises:
        ValueError: ``"<name> must be a non-negative integer<note>, got <value>"`` for anything else (bools
            included); a :class:`TypeError` for a non-integer if ``type_error``.

    Example:
        >>> non_negative_int("seed", 0)
        0
    """
    return _checked_int(name, value, 0, None, "a non-negative integer", note, type_error, numpy)


def int_in_range(
    name: str,
    value: Any,
    low: int | None = None,
    high: int | None = None,
    *,
    note: str = "",
    type_error: bool = False,
    numpy: bool = False,
) -> int:
    """``value`` if it is an integer with ``low <= value <= high`` (both bounds included; ``None``: unbounded).

    Args:
        name: the argument's name, for the message.
        value: the given value.
        low: the smallest valid value.
        high: the largest valid value.
        note: appended to what is valid, e.g. ``" (the extractor's 7x7 stride-2 conv)"``.
        type_error: raise :class:`TypeError` (not :class:`ValueError`) for a value that is no integer.
        numpy: also accept numpy integers (see :func:`is_int`).

    Returns:
        ``value`` as an ``int``.

    Raises:
        ValueError: ``"<name> must be an integer in <low>..<high><note>, got <value>"`` (``>= low`` or
            ``<= high`` with one bound); a :class:`TypeError` for a non-integer if ``type_error``.

    Example:
        >>> int_in_range("levels", 4, 1, 3)
        Traceback (most recent call last):
        ...
        ValueError: levels must be an integer in 1..3, got 4
    """
    if low is not None and high is not None:
        what = f"an integer in {low}..{high}"
    elif low is not None:
        what = f"an integer >= {low}"
    elif high is not None:
        what = f"an integer <= {high}"
    else:
        what = "an integer"
    return _checked_int(name, value, low, high, what, note, type_error, numpy)


def finite_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    note: str = "",
    type_error: bool = True,
) -> float:
    """``value`` as a ``float`` if it is a finite real number within the given bounds.

    Args:
        name: the argument's name, for the message.
        value: an ``int`` or ``float`` (not a bool); numpy and torch scalars convert through ``float``.
        low: the lower bound (``None``: unbounded below).
        high: the upper bound (``None``: unbounded above).
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.
        note: appended to the message, e.g. ``" (paper: 2e-4)"``.
        type_error: raise :class:`TypeError` for a value that is no number (``False``: :class:`ValueError`).

    Returns:
        ``value`` as a ``float``.

    Raises:
        TypeError: not a real number (``"<name> must be a number, got <type> <value>"``). ValueError: NaN,
            infinite, or out of bounds (the message states the valid interval).

    Example:
        >>> finite_float("lr", 1e-3, low=0, low_open=True)
        0.001
        >>> finite_float("lr", 0, low=0, low_open=True)
        Traceback (most recent call last):
        ...
        ValueError: lr must be in (0, inf), got 0
    """
    if isinstance(value, bool) or _is_bool_like(value) or not _is_real(value):
        bounded = low is not None or high is not None
        where = f" in {_interval(low, high, low_open, high_open)}" if bounded else ""
        error = TypeError if type_error else ValueError
        raise error(f"{name} must be a number{where}{note}, got {type(value).__name__} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number{note}, got {value!r}")
    below = low is not None and (out <= low if low_open else out < low)
    above = high is not None and (out >= high if high_open else out > high)
    if below or above:
        raise ValueError(f"{name} must be in {_interval(low, high, low_open, high_open)}{note}, got {value!r}")
    return out


def probability(name: str, value: Any) -> float:
    """``value`` as a ``float`` if it is a number in [0, 1].

    Raises:
        TypeError: not a number. ValueError: outside [0, 1] or NaN.

    Example:
        >>> probability("p", 1)
        1.0
    """
    return finite_float(name, value, low=0.0, high=1.0)


def closest_name(value: Any, candidates: Iterable[str], cutoff: float = SUGGESTION_CUTOFF) -> str | None:
    """The candidate most like ``value`` (``difflib``, ignoring case), or None when none is at least ``cutoff``
    alike.

    Example:
        >>> closest_name("adamm", ["adam", "sgd"]), closest_name("xyz", ["adam", "sgd"])
        ('adam', None)
    """
    by_lower = {str(c).lower(): str(c) for c in candidates}
    close = difflib.get_close_matches(str(value).lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[close[0]] if close else None


def did_you_mean(value: Any, candidates: Iterable[str], cutoff: float = SUGGESTION_CUTOFF) -> str:
    """``"did you mean 'x'? "`` for the closest candidate, or ``""`` when none is alike enough.

    Example:
        >>> did_you_mean("srresnt", ["srresnet", "swinir"])
        "did you mean 'srresnet'? "
    """
    close = closest_name(value, candidates, cutoff)
    return f"did you mean {close!r}? " if close is not None else ""


def choice(
    name: str,
    value: Any,
    choices: Iterable[str],
    *,
    what: str | None = None,
    plural: str | None = None,
    note: str = "",
    error: Callable[[str], Exception] = ValueError,
) -> str:
    """``value`` if it is one of ``choices``.

    Args:
        name: the argument's name.
        value: the given value.
        choices: the valid values.
        what: how to call one of them in the message (default ``name``): ``"unknown <what> 'x': ..."``.
        plural: the plural of ``what`` (default ``what + "s"``).
        note: appended to the message, e.g. ``" (or None, the default)"``.
        error: the exception raised, called with the message (e.g. a ``KeyError`` subclass of the caller's).

    Returns:
        ``value``.

    Raises:
        ValueError: ``"unknown <what> 'x': did you mean 'y'? valid <plural> are [...]<note>"``; the suggestion
            only when a valid value is alike enough (:data:`SUGGESTION_CUTOFF`). ``error`` instead, if given.

    Example:
        >>> choice("optimizer", "adamm", ("adam", "adamw"))
        Traceback (most recent call last):
        ...
        ValueError: unknown optimizer 'adamm': did you mean 'adam'? valid optimizers are ['adam', 'adamw']
    """
    valid = list(choices)
    if isinstance(value, str) and value in valid:
        return value
    noun = what or name
    many = plural or f"{noun}s"
    raise error(f"unknown {noun} {value!r}: {did_you_mean(value, valid)}valid {many} are {valid}{note}")


def _checked_int(
    name: str,
    value: Any,
    low: int | None,
    high: int | None,
    what: str,
    note: str,
    type_error: bool,
    numpy: bool,
) -> int:
    if not is_int(value, numpy=numpy):
        if type_error:
            raise TypeError(f"{name} must be {what}{note}, got {type(value).__name__} {value!r}")
        raise ValueError(f"{name} must be {what}{note}, got {value!r}")
    out = int(value.__index__())
    if (low is not None and out < low) or (high is not None and out > high):
        raise ValueError(f"{name} must be {what}{note}, got {value!r}")
    return out


def _is_bool_like(value: Any) -> bool:
    # numpy's bool (``numpy.bool_``, named ``bool`` since numpy 2) is no subclass of ``bool``
    return type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")


def _is_real(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    try:  # numpy / torch scalars
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
    right = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
    return f"{left}, {right}"
