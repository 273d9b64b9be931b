"""Linear layers on our GEMMs (float32, the avx512/avx2 paths), large products split over
the cores by rows; other dtypes go to the reference (kernels/linear.py).

Why not NumPy's matmul for float32 here: its BLAS threads spin (and yield) for a long while
after each call, on the cores our own threads use, so one small matmul per step slows the
convolutions around it.
"""

from __future__ import annotations

import numpy as np

from ..kernels import linear as reference
from .select import gemm
from .threads import parallel_for


def _ours(*arrays):
    """Our GEMMs when they apply to these arrays (all float32), else None."""
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
    reference.linear_output_shape(x.shape, w.shape, None if b is None else b.shape)
    gm = _ours(x, w) if b is None or b.dtype == np.float32 else None
    if gm is None:
        return reference.linear_forward(x, w, b)
    fout, fin = w.shape  # x (M, in) @ w^T, both read along in
    x2 = np.ascontiguousarray(x).reshape(-1, fin)
    w = np.ascontiguousarray(w)
    out = np.empty(x.shape[:-1] + (fout,), np.float32)
    o2 = out.reshape(-1, fout)
    _rows(lambda lo, hi: gm.nt(x2[lo:hi], w, o2[lo:hi]), len(x2), fin * fout)
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(
    dout: np.ndarray, cache: tuple, need: tuple[bool, bool, bool] = (True, True, True)
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    x, w, has_bias = cache
    gm = _ours(dout, x, w)
    if gm is None:
        return reference.linear_backward(dout, cache, need)
    fout, fin = w.shape
    d2 = np.ascontiguousarray(dout.reshape(-1, fout))
    dx = dw = None
    if need[0]:  # (M, out) @ (out, in), split over the rows
        dx = np.empty(dout.shape[:-1] + (fin,), np.float32)
        w = np.ascontiguousarray(w)
        dx2 = dx.reshape(-1, fin)
        _rows(lambda lo, hi: gm.nn(d2[lo:hi], w, dx2[lo:hi]), len(d2), fout * fin)
    if need[1]:  # (out, M) @ (M, in), split over the columns (in)
        x2 = np.ascontiguousarray(x).reshape(-1, fin)
        dw = np.empty((fout, fin), np.float32)
        _rows(lambda lo, hi: gm.nn(d2.T, x2[:, lo:hi], dw[:, lo:hi]), fin, fout * len(x2))
    db = d2.sum(axis=0) if need[2] and has_bias else None
    return dx, dw, db
