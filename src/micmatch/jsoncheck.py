"""Checks on numbers read from JSON files (responses, normalizers): type, integrality, finiteness and range.

Python's ``json`` accepts ``NaN``, ``Infinity`` and integers of any size, and a list may hold objects where numbers
belong. Each check here raises ``TypeError`` (wrong type) or ``ValueError`` (wrong value) with a message naming the field, which the loader turns into its
own error naming the file (``ProfileError`` and the like), so a bad file is one line, never a traceback or a
silent wrong answer.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

#: Largest magnitude accepted for a level in dB (a response, a gain, a gate): 1000 dB is far beyond any signal.
MAX_ABS_DB = 1000.0


def as_int(value: object, field: str, *, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``; a float is accepted only when integral (``16000.0``), never ``16000.7``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{field}={_short(value)} must be an integer")
    if isinstance(value, Integral) or (math.isfinite(float(value)) and float(value).is_integer()):
        number = int(value)
    else:
        raise ValueError(f"{field}={_short(value)} must be an integer")
    if not lo <= number <= hi:
        raise ValueError(f"{field}={_short(number)} is outside [{lo}, {hi}]")
    return number


def as_float(value: object, field: str, *, lo: float = -MAX_ABS_DB, hi: float = MAX_ABS_DB) -> float:
    """A finite real number in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{field}={_short(value)} must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{field}={_short(value)} is too large") from None
    if not math.isfinite(number):
        raise ValueError(f"{field}={number} must be finite")
    if not lo <= number <= hi:
        raise ValueError(f"{field}={number:g} is outside [{lo:g}, {hi:g}]")
    return number


def as_float_array(value: object, field: str, *, size: int | None = None, lo: float = -MAX_ABS_DB,
                   hi: float = MAX_ABS_DB) -> np.ndarray:
    """A 1-D list of finite numbers in ``[lo, hi]`` (of ``size`` items when given), as float64."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{field} must be a list of numbers")
    if any(isinstance(v, bool) or not isinstance(v, Real) for v in value):
        raise TypeError(f"{field} must hold only numbers")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise ValueError(f"{field} holds a number too large for a float") from None
    if size is not None and arr.shape != (size,):
        raise ValueError(f"{field} has {arr.size} values, expected {size}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{field}[{int(np.argmax(bad))}] is {arr[bad][0]}: NaN or infinite values are not allowed")
    out = (arr < lo) | (arr > hi)
    if out.any():
        i = int(np.argmax(out))
        raise ValueError(f"{field}[{i}]={arr[i]:g} is outside [{lo:g}, {hi:g}]")
    return arr


def first_non_finite(doc: object, path: str = "") -> str | None:
    """JSON path of the first NaN or infinite number (or integer too large for a float) in ``doc``; None if none."""
    if isinstance(doc, bool) or doc is None or isinstance(doc, str):
        return None
    if isinstance(doc, float):
        return None if math.isfinite(doc) else (path or "(top level)")
    if isinstance(doc, int):
        return None if abs(doc) < 2**1023 else (path or "(top level)")
    if isinstance(doc, dict):
        for k, v in doc.items():
            found = first_non_finite(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found = first_non_finite(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
