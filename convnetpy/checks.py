"""Argument checks for the layers and F functions: every message names the call, the
argument and the value as given (``Linear(in_features=-1): in_features must be a positive
integer, got -1``). shape.py's ``pair`` words its errors the same way.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def _given(op: str | None, name: str, value: Any) -> str:
    """The prefix that names the call and the argument as given: ``Linear(in_features=-1): ``."""
    return f"{op}({name}={value!r}): " if op else ""


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# NOTE: a bool is never taken for a number (PyTorch takes True as
# 1 for a float such as dropout's p, and as a size at construction).
def check_int(value: Any, name: str, op: str | None = None, low: int | None = 1,
              optional: bool = False) -> int | None:
    """An integer argument (not a bool) of at least ``low`` (None: any); None passes when
    ``optional``.

    >>> check_int(-1, "in_features", "Linear")
    Traceback (most recent call last):
    ValueError: Linear(in_features=-1): in_features must be a positive integer, got -1
    """
    if value is None and optional:
        return None
    who = _given(op, name, value)
    if not _is_int(value):
        raise TypeError(f"{who}{name} must be an integer, got {_kind(value)}")
    if low is not None and value < low:
        need = {1: "a positive integer", 0: "a non-negative integer"}.get(
            low, f"an integer >= {low}")
        raise ValueError(f"{who}{name} must be {need}, got {value!r}")
    return int(value)


def check_ints(value: Any, name: str, op: str | None = None) -> tuple[int, ...]:
    """A sequence of integers of any sign (not bools), as F.pad's ``pad``.

    >>> check_ints((1, 2.5), "pad", "pad")
    Traceback (most recent call last):
    TypeError: pad(pad=(1, 2.5)): pad must be a sequence of ints, got float 2.5 at position 1
    """
    who = _given(op, name, value)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{who}{name} must be a sequence of ints, got {_kind(value)}")
    out = tuple(value)
    for i, v in enumerate(out):
        if not _is_int(v):
            raise TypeError(f"{who}{name} must be a sequence of ints, got {_kind(v)} at "
                            f"position {i}")
    return tuple(int(v) for v in out)


def check_number(value: Any, name: str, op: str | None = None, low: float | None = None,
                 high: float | None = None, optional: bool = False, need: str | None = None,
                 low_open: bool = False) -> float | None:
    """A real-number argument (not a bool, not a string) within [low, high] (``low_open``:
    above ``low``), where they are given; ``need`` words the requirement differently.

    >>> check_number(1.5, "label_smoothing", "CrossEntropyLoss", 0.0, 1.0)
    Traceback (most recent call last):
    ValueError: CrossEntropyLoss(label_smoothing=1.5): label_smoothing must be between 0.0 \
and 1.0, got 1.5
    """
    if value is None and optional:
        return None
    who = _given(op, name, value)
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{who}{name} must be a number, got {_kind(value)}")
    v = float(value)
    bad_low = low is not None and (v <= low if low_open else v < low)
    if bad_low or (high is not None and v > high) or (math.isnan(v) and low is not None):
        if need is None:
            need = (f"{name} must be between {low} and {high}" if high is not None else
                    f"{name} must be {'greater than' if low_open else 'at least'} {low}")
        raise ValueError(f"{who}{need}, got {value!r}")
    return v


def check_probability(value: Any, name: str, op: str | None = None,
                      need: str | None = None) -> float:
    """A probability in [0, 1]."""
    return check_number(value, name, op, 0.0, 1.0, need=need)  # type: ignore[return-value]


def check_choice(value: Any, name: str, choices: tuple, op: str | None = None,
                 need: str | None = None) -> str:
    """One of the strings ``choices``.

    >>> check_choice("avg", "reduction", ("none", "mean", "sum"), "nll_loss")
    Traceback (most recent call last):
    ValueError: nll_loss(reduction='avg'): reduction must be one of ('none', 'mean', 'sum'), \
got 'avg'
    """
    who = _given(op, name, value)
    if not isinstance(value, str):
        raise TypeError(f"{who}{name} must be a string, one of {choices}, got {_kind(value)}")
    if value not in choices:
        raise ValueError(f"{who}{need or f'{name} must be one of {choices}'}, got {value!r}")
    return value


def check_flag(value: Any, name: str, op: str | None = None) -> bool:
    """A bool (PyTorch's F functions take no int for a flag either)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_given(op, name, value)}{name} must be a bool, got {_kind(value)}")
    return bool(value)


def check_dtype(value: Any, name: str = "dtype", op: str | None = None) -> np.dtype | None:
    """None or a floating-point NumPy dtype (float16, float32, float64), as ``np.dtype``."""
    if value is None:
        return None
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise TypeError(f"{_given(op, name, value)}{name} must be a floating-point dtype "
                        f"(float32, float64 or float16), got {dt or _kind(value)}")
    return dt


__all__ = ["check_int", "check_ints", "check_number", "check_probability", "check_choice",
           "check_flag", "check_dtype"]
