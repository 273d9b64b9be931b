"""Batch normalisation over every axis but the channel axis (1).

Training normalises with the batch mean and the biased variance, and (when running buffers
are given) updates them in place: running = (1 - momentum) * running + momentum * batch, with
the unbiased variance in ``running_var``, as PyTorch does. Evaluation uses the running
statistics.

Shape:
    (N, C), (N, C, L) or (N, C, H, W) -> the same shape

>>> import numpy as np
>>> x = np.array([[1.0], [3.0]])
>>> out, _ = batch_norm_forward(x, None, None, None, None, True, 0.1, 0.0)
>>> out.ravel().tolist()
[-1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

from ._compiled import loops
from ._parallel import blocks, row_sum, rows
from ._shape import ShapeError
from ._workspace import fresh


def _compiled_for(*arrays):
    """The compiled loops when they are on and every array is float32 or float64."""
    lp = loops()
    return lp if lp and all(a.dtype in (np.float32, np.float64) for a in arrays) else None


def _part_sums(fn, *parts):
    """(2, C) float64 per-channel sums that the compiled ``fn`` adds up over one part."""
    sums = np.zeros((2, parts[0].shape[1]))
    fn(*parts, sums)
    return sums


def batch_norm_forward(
    x: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[np.ndarray, tuple]:
    if x.ndim < 2:
        raise ShapeError("batch_norm", f"expected input (N, C, ...), got shape {x.shape}")
    c = x.shape[1]
    for name, arr in (("weight", gamma), ("bias", beta), ("running_mean", running_mean),
                      ("running_var", running_var)):
        if arr is not None and arr.shape != (c,):
            raise ShapeError(
                "batch_norm",
                f"input has {c} channels (shape {tuple(x.shape)}) but {name} has shape "
                f"{tuple(arr.shape)}; num_features must equal the channel count {c}",
            )
    # reductions sum in memory order: a contiguous copy makes results layout-independent
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    count = x.size // c if c else 0
    x3 = x.reshape(n, c, -1)
    xc3 = None  # x - mean, kept by the NumPy code; the compiled loops centre x on the fly
    lp = _compiled_for(x)
    if training:
        if count <= 1:
            raise ValueError(
                "Expected more than 1 value per channel when training, got input size "
                f"{tuple(x.shape)}"
            )
        if lp:  # two passes over x: the mean, then the squares around it
            zero = np.zeros(c, x.dtype)
            mean = row_sum(lambda p: _part_sums(lp.channel_sums, x3[p], zero), x3)[0] / count
            m = mean.astype(x.dtype)
            var = row_sum(lambda p: _part_sums(lp.channel_sums, x3[p], m), x3)[1] / count
        else:
            # (N, C, L) -> (C,): one pass, no temporary, the batch split over the cores
            mean = row_sum(lambda p: np.einsum("ncl->c", x3[p]), x3) / count
            m = mean.astype(x.dtype, copy=False)
            xc3 = np.empty_like(x3)

            def center(p):  # xc = x - mean and its sum of squares, block by block in cache
                sq = 0
                for b in blocks(p, c * x3.shape[2], x.itemsize):
                    np.subtract(x3[b], m.reshape(1, c, 1), out=xc3[b])
                    sq = sq + np.einsum("ncl,ncl->c", xc3[b], xc3[b])
                return sq

            var = row_sum(center, x3) / count  # biased, to normalise
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var * (count / (count - 1))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm in evaluation mode needs running_mean and running_var")
        var = running_var
        m = np.array(running_mean, dtype=x.dtype)  # a copy: the buffer may change later
        if not lp:
            xc3 = np.empty_like(x3)
            rows(lambda p: np.subtract(x3[p], m.reshape(1, c, 1), out=xc3[p]), x3)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype, copy=False)
    scale = inv_std if gamma is None else gamma * inv_std
    out = fresh(x.shape, x.dtype)
    o3 = out.reshape(n, c, -1)
    if lp:  # out = (x - mean) * scale + beta
        shift = np.zeros(c, x.dtype) if beta is None else np.ascontiguousarray(beta, x.dtype)
        scale = np.ascontiguousarray(scale, x.dtype)
        rows(lambda p: lp.channel_affine(x3[p], m, scale, shift, o3[p]), x3)
        return out, (x3, m, inv_std, gamma, training, beta is not None, lp)

    def affine(p):  # out = xc * scale + beta
        for b in blocks(p, c * x3.shape[2], x.itemsize):
            np.multiply(xc3[b], scale.reshape(1, c, 1), out=o3[b])
            if beta is not None:
                o3[b] += beta.reshape(1, c, 1)

    rows(affine, x3)
    return out, (xc3, None, inv_std, gamma, training, beta is not None, None)


def batch_norm_backward(
    dout: np.ndarray, cache: tuple, need: tuple[bool, bool, bool] = (True, True, True)
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients (dx, dgamma, dbeta), with xhat = xc * inv_std never materialised:
    dx = g*inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)) in training."""
    saved, mean, inv_std, gamma, training, has_beta, lp = cache  # saved: xc, or x (lp)
    n, c = dout.shape[:2]
    d3 = np.ascontiguousarray(dout).reshape(n, c, -1)
    xc3 = saved
    count = d3.shape[0] * d3.shape[2]
    row_items, size = c * d3.shape[2], d3.itemsize

    def sums(p):  # (sum of dy, sum of dy * xc) per channel, both from one block in cache
        if lp:
            return _part_sums(lp.channel_grad_sums, d3[p], saved[p], mean)
        s = 0
        for b in blocks(p, row_items, size):
            s = s + np.stack([np.einsum("ncl->c", d3[b]),
                              np.einsum("ncl,ncl->c", d3[b], xc3[b])])
        return s

    sum_dy, sum_dyxc = row_sum(sums, d3).astype(d3.dtype, copy=False)
    dgamma = sum_dyxc * inv_std if need[1] and gamma is not None else None
    dbeta = sum_dy if need[2] and has_beta else None
    dx = None
    if need[0]:
        k = inv_std if gamma is None else gamma * inv_std
        k3 = k.reshape(1, c, 1)
        a3 = (-k * inv_std * inv_std * sum_dyxc / count).reshape(1, c, 1)
        b3 = (-k * sum_dy / count).reshape(1, c, 1)
        dx = fresh(dout.shape, d3.dtype)
        dx3 = dx.reshape(n, c, -1)
        if lp:  # the same formula with xc = x - mean made on the fly
            coef = [np.ascontiguousarray(v.ravel(), d3.dtype) for v in (k3, a3, b3)]
            if not training:  # evaluation: dx = k * dy
                coef[1:] = [np.zeros(c, d3.dtype)] * 2
            rows(lambda p: lp.channel_grad(d3[p], saved[p], mean, *coef, dx3[p]), d3)
            return dx, dgamma, dbeta

        def grad(p):  # dx = k*dy - k*inv_std^2*mean(dy*xc)*xc - k*mean(dy)  (training)
            for b in blocks(p, row_items, size):
                np.multiply(d3[b], k3, out=dx3[b])
                if training:
                    dx3[b] += xc3[b] * a3
                    dx3[b] += b3

        rows(grad, d3)
    return dx, dgamma, dbeta
