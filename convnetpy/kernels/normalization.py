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

from ..shape import ShapeError


def check_batch_norm(x, gamma, beta, running_mean, running_var, training) -> None:
    """Raise the error a user should see for batch-norm operands that do not fit."""
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
    if training and (x.size // c if c else 0) <= 1:
        raise ValueError(
            "Expected more than 1 value per channel when training, got input size "
            f"{tuple(x.shape)}"
        )
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm in evaluation mode needs running_mean and running_var")


def update_running_stats(running_mean, running_var, mean, var, count: int,
                         momentum: float) -> None:
    """running = (1 - momentum) * running + momentum * batch, in place (either may be
    None); the variance unbiased (count / (count - 1)), as PyTorch keeps it."""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += momentum * var * (count / (count - 1))


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
    check_batch_norm(x, gamma, beta, running_mean, running_var, training)
    c = x.shape[1]
    # reductions sum in memory order: a contiguous copy makes results layout-independent
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    count = x.size // c if c else 0
    x3 = x.reshape(n, c, -1)
    if training:
        mean = np.einsum("ncl->c", x3) / count  # (N, C, L) -> (C,)
        xc3 = x3 - mean.astype(x.dtype, copy=False).reshape(1, c, 1)
        var = np.einsum("ncl,ncl->c", xc3, xc3) / count  # biased, to normalise
        update_running_stats(running_mean, running_var, mean, var, count, momentum)
    else:
        var = running_var
        xc3 = x3 - np.asarray(running_mean, dtype=x.dtype).reshape(1, c, 1)
    out3, inv_std = _affine(xc3, var, gamma, beta, eps)
    out = out3.astype(x.dtype, copy=False).reshape(x.shape)
    return out, (xc3, inv_std, gamma, training, beta is not None)


def _affine(xc3, var, gamma, beta, eps):
    """(out, inv_std): out = (x - mean) * gamma / sqrt(var + eps) + beta, per channel of
    the centred input xc3 (N, C, L)."""
    c = xc3.shape[1]
    inv_std = (1.0 / np.sqrt(var + eps)).astype(xc3.dtype, copy=False)
    scale = inv_std if gamma is None else gamma * inv_std
    out3 = xc3 * scale.reshape(1, c, 1)
    if beta is not None:
        out3 += beta.reshape(1, c, 1)
    return out3, inv_std


def _input_grad(d3, xc3, inv_std, gamma, sum_dy, sum_dyxc, count, training):
    """dx (N, C, L) from the channel sums of dy and dy * xc over ``count`` values:
    k*dy - k*inv_std^2*mean(dy*xc)*xc - k*mean(dy) in training, k*dy in evaluation,
    with k = gamma * inv_std."""
    c = d3.shape[1]
    k = inv_std if gamma is None else gamma * inv_std
    dx3 = d3 * k.reshape(1, c, 1)
    if training:
        a = (-k * inv_std * inv_std * sum_dyxc / count).astype(dx3.dtype, copy=False)
        dx3 += xc3 * a.reshape(1, c, 1)
        dx3 += (-k * sum_dy / count).astype(dx3.dtype, copy=False).reshape(1, c, 1)
    return dx3


def batch_norm_backward(
    dout: np.ndarray, cache: tuple, need: tuple[bool, bool, bool] = (True, True, True)
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients (dx, dgamma, dbeta), with xhat = xc * inv_std never materialised:
    dx = g*inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)) in training."""
    xc3, inv_std, gamma, training, has_beta = cache
    n, c = dout.shape[:2]
    d3 = np.ascontiguousarray(dout).reshape(n, c, -1)
    count = d3.shape[0] * d3.shape[2]
    sum_dy = np.einsum("ncl->c", d3)
    sum_dyxc = np.einsum("ncl,ncl->c", d3, xc3)
    dgamma = sum_dyxc * inv_std if need[1] and gamma is not None else None
    dbeta = sum_dy if need[2] and has_beta else None
    dx = None
    if need[0]:
        dx = _input_grad(d3, xc3, inv_std, gamma, sum_dy, sum_dyxc, count,
                         training).reshape(dout.shape)
    return dx, dgamma, dbeta


def batch_norm_memory(x, gamma, beta, running_mean, running_var, training, momentum, eps, *,
                      needs=(True, True, True)) -> tuple[int, int, int]:
    """(saved, forward workspace, backward workspace) in bytes: the centred input xc is
    kept; backward makes one temporary of its size for the training-mode correction."""
    nbytes = int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
    return nbytes, 0, nbytes if needs[0] and training else 0


def sync_batch_norm_forward(x, gamma, beta, running_mean, running_var, momentum, eps,
                            reduce) -> tuple[np.ndarray, tuple]:
    """Training-mode batch norm whose statistics cover the batches of every process:
    ``reduce(array)`` returns ``array`` summed over them (the identity for one process).
    One float64 reduction carries the per-channel sums, sums of squares and the count.

    >>> x = np.array([[1.0], [3.0]])
    >>> out, _ = sync_batch_norm_forward(x, None, None, None, None, 0.1, 0.0, lambda a: a)
    >>> out.ravel().tolist()
    [-1.0, 1.0]
    """
    check_batch_norm(x, gamma, beta, running_mean, running_var, True)
    c = x.shape[1]
    x = np.ascontiguousarray(x)
    x3 = x.reshape(x.shape[0], c, -1)
    local = np.concatenate([x3.sum(axis=(0, 2), dtype=np.float64),
                            np.einsum("ncl,ncl->c", x3, x3, dtype=np.float64),
                            [x3.shape[0] * x3.shape[2]]])
    total = reduce(local)
    count = float(total[-1])
    mean = total[:c] / count
    var = np.maximum(total[c:2 * c] / count - mean * mean, 0.0)  # biased, to normalise
    update_running_stats(running_mean, running_var, mean, var, count, momentum)
    xc3 = x3 - mean.astype(x.dtype).reshape(1, c, 1)
    out3, inv_std = _affine(xc3, var, gamma, beta, eps)
    return out3.reshape(x.shape), (xc3, inv_std, gamma, beta is not None, count, reduce)


def sync_batch_norm_backward(dout, cache, need=(True, True, True)):
    """Gradients (dx, dgamma, dbeta) of ``sync_batch_norm_forward``: the two per-channel
    sums that dx needs are summed over every process; dgamma and dbeta stay this
    process's own (data-parallel training averages them with the other gradients)."""
    xc3, inv_std, gamma, has_beta, count, reduce = cache
    n, c = dout.shape[:2]
    d3 = np.ascontiguousarray(dout).reshape(n, c, -1)
    local = np.concatenate([d3.sum(axis=(0, 2), dtype=np.float64),
                            np.einsum("ncl,ncl->c", d3, xc3, dtype=np.float64)])
    sum_dy_local, sum_dyxc_local = local[:c], local[c:]
    dgamma = (sum_dyxc_local * inv_std).astype(dout.dtype) if need[1] and gamma is not None \
        else None
    dbeta = sum_dy_local.astype(dout.dtype) if need[2] and has_beta else None
    dx = None
    if need[0]:
        total = reduce(local)
        dx = _input_grad(d3, xc3, inv_std, gamma, total[:c], total[c:], count,
                         True).reshape(dout.shape)
    return dx, dgamma, dbeta
