"""Element-wise activations and their gradients.

Shape:
    any shape -> the same shape

>>> import numpy as np
>>> relu_forward(np.array([-1.0, 0.0, 2.0]))[0].tolist()
[0.0, 0.0, 2.0]
"""

from __future__ import annotations

import math

import numpy as np


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.maximum(x, np.zeros((), np.result_type(x, 0)))  # NaN stays NaN, as in PyTorch
    return out, out


def relu_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    # the gradient at exactly 0 is 0, as in PyTorch (NaN * 0 stays NaN)
    return np.multiply(dout, out > 0, dtype=np.result_type(dout, out))


def leaky_relu_forward(x: np.ndarray, negative_slope: float = 0.01):
    pos = x > 0
    out = np.where(pos, x, x * np.asarray(negative_slope, dtype=x.dtype))
    return out, (pos, negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache) -> np.ndarray:
    pos, slope = cache
    return np.where(pos, dout, dout * np.asarray(slope, dtype=dout.dtype))


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # split by sign so that exp never overflows
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    return out, out


def sigmoid_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    return dout * out * (1 - out)


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.tanh(x)
    return out, out


def tanh_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    return dout * (1 - out * out)


_erf = np.frompyfunc(math.erf, 1, 1)  # the reference: exact, one element at a time
_TANH_C = math.sqrt(2.0 / math.pi)


def gelu_forward(x: np.ndarray, approximate: str = "none"):
    """x * Phi(x), Phi the standard normal CDF 0.5 * (1 + erf(x / sqrt(2))); with
    ``approximate="tanh"``: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).

    >>> [round(v, 4) for v in gelu_forward(np.array([-1.0, 0.0, 2.0]))[0].tolist()]
    [-0.1587, 0.0, 1.9545]
    """
    if approximate == "tanh":
        t = np.tanh(_TANH_C * (x + 0.044715 * x * x * x))
        return (0.5 * x * (1 + t)).astype(x.dtype, copy=False), (x, approximate)
    cdf = 0.5 * (1 + _erf(x * (1 / math.sqrt(2.0))).astype(np.float64))
    return (x * cdf).astype(x.dtype, copy=False), (x, approximate)


def gelu_backward(dout: np.ndarray, cache) -> np.ndarray:
    # d/dx x Phi(x) = Phi(x) + x phi(x); the tanh form: 0.5 (1 + t) + 0.5 x (1 - t^2) t'
    x, approximate = cache
    if approximate == "tanh":
        t = np.tanh(_TANH_C * (x + 0.044715 * x * x * x))
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _TANH_C * (1 + 3 * 0.044715 * x * x)
    else:
        cdf = 0.5 * (1 + _erf(x * (1 / math.sqrt(2.0))).astype(np.float64))
        d = cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return (dout * d).astype(np.result_type(dout, x), copy=False)
