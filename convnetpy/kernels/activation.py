"""Element-wise activations and their gradients.

Shape:
    any shape -> the same shape

>>> import numpy as np
>>> relu_forward(np.array([-1.0, 0.0, 2.0]))[0].tolist()
[0.0, 0.0, 2.0]
"""

from __future__ import annotations

import numpy as np

from ._compiled import loops
from ._parallel import parallel_for, rows
from ._workspace import fresh


def _flat_loop(name: str, *arrays, value=None) -> bool:
    """Run the compiled element-wise loop ``name`` over flat parts of ``arrays`` (the last
    one is written; ``value``, when given, goes first) split over the cores; False (nothing
    done) when the loops are off or an array is not a C-contiguous float32/float64 array of
    the shape and dtype of the first."""
    first, lp = arrays[0], loops()
    if not lp or not all(
            a.shape == first.shape and a.dtype == first.dtype and a.flags.c_contiguous
            and a.dtype in (np.float32, np.float64) for a in arrays):
        return False
    flat, fn = [a.reshape(-1) for a in arrays], getattr(lp, name)
    lead = () if value is None else (value,)
    parallel_for(lambda lo, hi: fn(*lead, *(a[lo:hi] for a in flat)), first.size)
    return True


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = fresh(x.shape, np.result_type(x, 0))
    if not _flat_loop("relu_forward", x, out):
        rows(lambda p: np.maximum(x[p], 0, out=out[p]), out)
    return out, out


def relu_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    # the gradient at exactly 0 is 0, as in PyTorch
    dx = fresh(out.shape, np.result_type(dout, out))
    dout = np.broadcast_to(dout, out.shape)
    lp = loops()
    if lp and dout.dtype == dx.dtype and not any(dout.strides) and dout.size:
        # one value broadcast (the gradient of a sum): no array of it is made
        if _flat_loop("relu_backward_scalar", out, dx, value=dout.flat[0]):
            return dx
    if lp and dout.dtype == dx.dtype and not dout.flags.c_contiguous:
        dout = np.ascontiguousarray(dout)  # another broadcast or a view: one copy pays
    if not _flat_loop("relu_backward", dout, out, dx):
        rows(lambda p: np.multiply(dout[p], out[p] > 0, out=dx[p]), dx)
    return dx


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
