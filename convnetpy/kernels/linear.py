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

from ._compiled import gemm
from ._parallel import parallel_for
from ._shape import ShapeError


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


def _ours(*arrays):
    """Our GEMMs (``_gemm``) when they apply to these arrays (all float32), else None.

    Why not NumPy's matmul for float32: its BLAS threads spin (and yield) for a long while
    after each call, on the cores our own threads use: one small matmul per step slowed
    the convolutions around it (ConvNetJS inference ~1.7x faster with OpenBLAS held to one
    thread)."""
    gm = gemm()
    return gm if gm and all(a.dtype == np.float32 for a in arrays) else None


def _rows(fn, m: int, per_row: int) -> None:
    """``fn(lo, hi)`` over row ranges of an (m, *) product, split over the cores when it is
    large (``per_row`` multiply-adds a row; ~16 of them cost what one element of a pass
    over memory does)."""
    parallel_for(fn, m, max(1, per_row // 16))


def linear_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None
) -> tuple[np.ndarray, tuple]:
    linear_output_shape(x.shape, w.shape, None if b is None else b.shape)
    gm = _ours(x, w) if b is None or b.dtype == np.float32 else None
    if gm:  # x (M, in) @ w^T, both read along in
        fout, fin = w.shape
        x2 = np.ascontiguousarray(x).reshape(-1, fin)
        w = np.ascontiguousarray(w)
        out = np.empty(x.shape[:-1] + (fout,), np.float32)
        o2 = out.reshape(-1, fout)
        _rows(lambda lo, hi: gm.nt(x2[lo:hi], w, o2[lo:hi]), len(x2), fin * fout)
    else:
        # (*, in) @ (in, out) -> (*, out)
        out = np.matmul(x, w.T)
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(
    dout: np.ndarray, cache: tuple, need: tuple[bool, bool, bool] = (True, True, True)
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    x, w, has_bias = cache
    fout, fin = w.shape
    d2 = dout.reshape(-1, fout)
    gm = _ours(dout, x, w)
    dx = dw = None
    if gm:
        d2 = np.ascontiguousarray(d2)
        if need[0]:  # (M, out) @ (out, in), split over the rows
            dx = np.empty(dout.shape[:-1] + (fin,), np.float32)
            w = np.ascontiguousarray(w)
            dx2 = dx.reshape(-1, fin)
            _rows(lambda lo, hi: gm.nn(d2[lo:hi], w, dx2[lo:hi]), len(d2), fout * fin)
        if need[1]:  # (out, M) @ (M, in), split over the columns (in)
            x2 = np.ascontiguousarray(x).reshape(-1, fin)
            dw = np.empty((fout, fin), np.float32)
            _rows(lambda lo, hi: gm.nn(d2.T, x2[:, lo:hi], dw[:, lo:hi]), fin,
                  fout * len(x2))
    else:
        dx = np.matmul(dout, w) if need[0] else None
        # (out, M) @ (M, in) -> (out, in)
        dw = np.matmul(d2.T, x.reshape(-1, fin)) if need[1] else None
    db = d2.sum(axis=0) if need[2] and has_bias else None
    return dx, dw, db
