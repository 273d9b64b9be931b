"""Batch normalisation on the compiled loops: per-channel sums and the affine pass in one
loop each, x centred on the fly (nothing but x is kept), the batch split over the cores.
Other dtypes go to the reference (kernels/normalization.py), which gives the same numbers.
"""

from __future__ import annotations

import numpy as np

from ..kernels import normalization as reference
from .memory import empty
from .select import compiled as loops
from .threads import row_sum, rows


def _part_sums(fn, *parts):
    """(2, C) float64 per-channel sums that the compiled ``fn`` adds up over one part."""
    sums = np.zeros((2, parts[0].shape[1]))
    fn(*parts, sums)
    return sums


def batch_norm_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    reference.check_batch_norm(x, gamma, beta, running_mean, running_var, training)
    if x.dtype not in (np.float32, np.float64):
        out, cache = reference.batch_norm_forward(x, gamma, beta, running_mean, running_var,
                                                  training, momentum, eps)
        return out, ("reference", cache)
    c = x.shape[1]
    lp = loops()
    x = np.ascontiguousarray(x)  # reductions sum in memory order: layout-independent
    n = x.shape[0]
    count = x.size // max(c, 1)
    x3 = x.reshape(n, c, -1)
    if training:  # two passes over x: the mean, then the squares around it
        zero = np.zeros(c, x.dtype)
        mean = row_sum(lambda p: _part_sums(lp.channel_sums, x3[p], zero), x3)[0] / count
        m = mean.astype(x.dtype)
        var = row_sum(lambda p: _part_sums(lp.channel_sums, x3[p], m), x3)[1] / count
        reference.update_running_stats(running_mean, running_var, mean, var, count, momentum)
    else:
        var = running_var
        m = np.array(running_mean, dtype=x.dtype)  # a copy: the buffer may change later
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype, copy=False)
    scale = np.ascontiguousarray(inv_std if gamma is None else gamma * inv_std, x.dtype)
    shift = np.zeros(c, x.dtype) if beta is None else np.ascontiguousarray(beta, x.dtype)
    out = empty(x.shape, x.dtype)
    o3 = out.reshape(n, c, -1)
    rows(lambda p: lp.channel_affine(x3[p], m, scale, shift, o3[p]), x3)  # (x-mean)*k+beta
    return out, ("compiled", (x3, m, inv_std, gamma, training, beta is not None))


def batch_norm_backward(dout, cache, need=(True, True, True)):
    """Gradients (dx, dgamma, dbeta): dx = g*inv_std * (dy - mean(dy) - xhat *
    mean(dy * xhat)) in training, with x - mean made on the fly."""
    kind, cache = cache
    if kind == "reference" or dout.dtype != cache[0].dtype:
        if kind != "reference":  # a gradient of another dtype: the reference's cache
            x3, m, inv_std, gamma, training, has_beta = cache
            cache = (x3 - m.reshape(1, -1, 1), inv_std, gamma, training, has_beta)
        return reference.batch_norm_backward(dout, cache, need)
    x3, mean, inv_std, gamma, training, has_beta = cache
    lp = loops()
    n, c = dout.shape[:2]
    d3 = np.ascontiguousarray(dout).reshape(n, c, -1)
    count = d3.shape[0] * d3.shape[2]
    sum_dy, sum_dyxc = row_sum(lambda p: _part_sums(lp.channel_grad_sums, d3[p], x3[p], mean),
                               d3).astype(d3.dtype, copy=False)
    dgamma = sum_dyxc * inv_std if need[1] and gamma is not None else None
    dbeta = sum_dy if need[2] and has_beta else None
    dx = None
    if need[0]:
        k = inv_std if gamma is None else gamma * inv_std
        a = -k * inv_std * inv_std * sum_dyxc / count
        b = -k * sum_dy / count
        if not training:  # evaluation: dx = k * dy
            a, b = np.zeros(c), np.zeros(c)
        coef = [np.ascontiguousarray(v, d3.dtype) for v in (k, a, b)]
        dx = empty(dout.shape, d3.dtype)
        dx3 = dx.reshape(n, c, -1)
        rows(lambda p: lp.channel_grad(d3[p], x3[p], mean, *coef, dx3[p]), d3)
    return dx, dgamma, dbeta


def batch_norm_memory(x, gamma, beta, running_mean, running_var, training, momentum, eps, *,
                      needs=(True, True, True)) -> tuple[int, int, int]:
    """(saved, forward workspace, backward workspace) in bytes: nothing but x (and
    per-channel statistics) is kept; other dtypes, the reference's."""
    if x.dtype not in (np.float32, np.float64):
        return reference.batch_norm_memory(x, gamma, beta, running_mean, running_var,
                                           training, momentum, eps, needs=needs)
    return 0, 0, 0
