"""One set of argument checks, shared by every module.

Each check returns the value converted to a plain Python type, or raises :class:`~micmatch.errors.ParameterError`
(or the error class passed as ``error=``) with one line naming the argument, its value and the requirement, e.g.
``n_fft=0 must be a positive integer``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

from micmatch.errors import MicmatchError, ParameterError

__all__ = [
    "finite_float", "float_in_range", "int_in_range", "odd_size", "even_size", "one_of", "positive_float",
    "positive_int", "probability",
]


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def positive_int(value, name: str, *, error: type[MicmatchError] = ParameterError) -> int:
    """``value`` as an ``int`` > 0 (bools and floats are refused)."""
    if not _is_int(value) or value <= 0:
        raise error(f"{name}={value!r} must be a positive integer")
    return int(value)


def int_in_range(value, name: str, *, low: int | None = None, high: int | None = None,
                 error: type[MicmatchError] = ParameterError) -> int:
    """``value`` as an ``int`` with ``low <= value <= high`` (either bound may be None)."""
    if not _is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        raise error(f"{name}={value!r} must be an integer {_bounds(low, high, True, True)}")
    return int(value)


def finite_float(value, name: str, *, error: type[MicmatchError] = ParameterError) -> float:
    """``value`` as a finite ``float`` (NaN and infinities refused)."""
    if not _is_real(value) or not math.isfinite(float(value)):
        raise error(f"{name}={value!r} must be a finite number")
    return float(value)


def float_in_range(value, name: str, *, low: float | None = None, high: float | None = None,
                   low_inclusive: bool = True, high_inclusive: bool = True,
                   error: type[MicmatchError] = ParameterError) -> float:
    """``value`` as a finite ``float`` inside the given bounds (inclusive unless told otherwise)."""
    ok = _is_real(value) and math.isfinite(float(value))
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = value <= high if high_inclusive else value < high
    if not ok:
        raise error(f"{name}={value!r} must be a number {_bounds(low, high, low_inclusive, high_inclusive)}")
    return float(value)


def positive_float(value, name: str, *, error: type[MicmatchError] = ParameterError) -> float:
    """``value`` as a finite ``float`` > 0."""
    if not _is_real(value) or not math.isfinite(float(value)) or value <= 0:
        raise error(f"{name}={value!r} must be positive")
    return float(value)


def probability(value, name: str = "p", *, error: type[MicmatchError] = ParameterError) -> float:
    """``value`` as a ``float`` in [0, 1]."""
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        raise error(f"{name}={value!r} must be a probability in [0, 1]")
    return float(value)


def odd_size(value, name: str, *, error: type[MicmatchError] = ParameterError) -> int:
    """``value`` as a positive odd ``int`` (a centred window: median filters, smoothing kernels)."""
    if not _is_int(value) or value <= 0 or value % 2 == 0:
        raise error(f"{name}={value!r} must be a positive odd integer")
    return int(value)


def even_size(value, name: str, *, error: type[MicmatchError] = ParameterError) -> int:
    """``value`` as a positive even ``int`` (FFT sizes whose half is a bin count)."""
    if not _is_int(value) or value <= 0 or value % 2 == 1:
        raise error(f"{name}={value!r} must be a positive even integer")
    return int(value)


def one_of(value, name: str, choices: Sequence, *, error: type[MicmatchError] = ParameterError):
    """``value`` itself when it is one of ``choices``."""
    if value not in choices:
        raise error(f"{name}={value!r} must be one of {', '.join(repr(c) for c in choices)}")
    return value


def _bounds(low, high, low_inclusive: bool, high_inclusive: bool) -> str:
    if low is not None and high is not None:
        return f"in {'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
    if low is not None:
        return f"{'>=' if low_inclusive else '>'} {low}"
    if high is not None:
        return f"{'<=' if high_inclusive else '<'} {high}"
    return ""
