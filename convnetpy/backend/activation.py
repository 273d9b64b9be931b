"""ReLU and GELU on the compiled loops: one pass over flat float32/float64 arrays, split over the
cores; anything else (other dtypes, views that are not C-contiguous) goes to the reference
(kernels/activation.py), which gives the same numbers (float32 GELU: to within its erf's
approximation, see loops.py).
"""

from __future__ import annotations

import numpy as np

from ..kernels import activation as reference
from .memory import empty
from .select import compiled as loops
from .threads import parallel_for


def _flat_loop(name: str, *arrays, value=None) -> bool:
    """Run the compiled element-wise loop ``name`` over flat parts of ``arrays`` (the last
    one is written; ``value``, when given, goes first) split over the cores; False (nothing
    done) when an array is not a C-contiguous float32/float64 array of the shape and dtype
    of the first."""
    first = arrays[0]
    if not all(a.shape == first.shape and a.dtype == first.dtype and a.flags.c_contiguous
               and a.dtype in (np.float32, np.float64) for a in arrays):
        return False
    flat, fn = [a.reshape(-1) for a in arrays], getattr(loops(), name)
    lead = () if value is None else (value,)
    parallel_for(lambda lo, hi: fn(*lead, *(a[lo:hi] for a in flat)), first.size)
    return True


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = empty(x.shape, np.result_type(x, 0))
    if not _flat_loop("relu_forward", x, out):
        return reference.relu_forward(x)
    return out, out


def relu_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    dx = empty(out.shape, np.result_type(dout, out))
    dout = np.broadcast_to(dout, out.shape)
    if dout.dtype == dx.dtype and not any(dout.strides) and dout.size:
        # one value broadcast (the gradient of a sum): no array of it is made
        if _flat_loop("relu_backward_scalar", out, dx, value=dout.flat[0]):
            return dx
    if dout.dtype == dx.dtype and not dout.flags.c_contiguous:
        dout = np.ascontiguousarray(dout)  # another broadcast or a view: one copy pays
    if not _flat_loop("relu_backward", dout, out, dx):
        return reference.relu_backward(dout, out)
    return dx


def _gelu_loop(name: str, x: np.ndarray) -> str:
    # float32 has loops of its own, vectorised with their own erf and exp (loops.py)
    return name + "_f32" if x.dtype == np.float32 else name


def gelu_forward(x: np.ndarray, approximate: str = "none"):
    if approximate != "none":
        return reference.gelu_forward(x, approximate)
    out = empty(x.shape, x.dtype)
    if not _flat_loop(_gelu_loop("gelu_forward", x), x, out):
        return reference.gelu_forward(x, approximate)
    return out, (x, approximate)


def gelu_backward(dout: np.ndarray, cache) -> np.ndarray:
    x, approximate = cache
    dout = np.broadcast_to(dout, x.shape)
    if approximate == "none" and dout.dtype == x.dtype:
        dout = np.ascontiguousarray(dout)
        dx = empty(x.shape, x.dtype)
        if _flat_loop(_gelu_loop("gelu_backward", x), dout, x, dx):
            return dx
    return reference.gelu_backward(dout, cache)
