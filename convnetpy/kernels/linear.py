"""Fully-connected layer: y = x W^T + b.

Shape:
    input (*, in_features), weight (out_features, in_features), bias (out_features,)
    -> (*, out_features)

>>> import numpy as np
>>> y, _ = linear_forward(np.ones((2, 3)), np.ones((4, 3)), np.zeros(4))
>>> y.shape, float(y[0, 0])
((2, 4), 3.0)
"""

from __future__ import annotations

import numpy as np

from ..shape import ShapeError


def linear_output_shape(xshape: tuple[int, ...], wshape: tuple[int, ...],
                        bshape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Validate a linear layer's shapes and return its output shape (*, out_features)."""
    if len(wshape) != 2:
        raise ShapeError("linear", f"expected a 2-D weight (out, in), got {tuple(wshape)}")
    if len(xshape) < 1 or xshape[-1] != wshape[1]:
        got = xshape[-1] if xshape else "a scalar"
        raise ShapeError(
            "linear",
            f"expected input (*, {wshape[1]}) (in_features={wshape[1]}), got shape "
            f"{tuple(xshape)} with {got} features in the last axis",
        )
    if bshape is not None and tuple(bshape) != (wshape[0],):
        raise ShapeError("linear", f"expected bias of shape ({wshape[0]},), got {bshape}")
    return tuple(xshape[:-1]) + (wshape[0],)


def linear_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None
) -> tuple[np.ndarray, tuple]:
    linear_output_shape(x.shape, w.shape, None if b is None else b.shape)
    out = np.matmul(x, w.T)  # (*, in) @ (in, out) -> (*, out)
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(
    dout: np.ndarray, cache: tuple, need: tuple[bool, bool, bool] = (True, True, True)
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    x, w, has_bias = cache
    fout, fin = w.shape
    d2 = dout.reshape(-1, fout)
    dx = np.matmul(dout, w) if need[0] else None
    # (out, M) @ (M, in) -> (out, in)
    dw = np.matmul(d2.T, x.reshape(-1, fin)) if need[1] else None
    db = d2.sum(axis=0) if need[2] and has_bias else None
    return dx, dw, db
