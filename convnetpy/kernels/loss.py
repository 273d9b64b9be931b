"""Softmax, log-softmax and the losses (negative log-likelihood / cross-entropy, MSE).

log_softmax subtracts the maximum before exponentiating, so it never overflows.
Cross-entropy is nll_loss(log_softmax(x)); nll_loss takes class-index targets or class
probabilities, per-class weights, ignore_index, label smoothing and the three reductions,
with PyTorch's exact normalisation: 'mean' divides by the summed weights of the (not ignored)
targets.

Shape:
    input (N, C) or (N, C, d1, ...), class-index target (N,) or (N, d1, ...);
    reduction 'none' -> (N,) or (N, d1, ...), otherwise a scalar

>>> import numpy as np
>>> lp, _ = log_softmax_forward(np.zeros((1, 4)), 1)
>>> loss, _ = nll_loss_forward(lp, np.array([2]))
>>> round(float(loss), 6) == round(float(np.log(4)), 6)
True
"""

from __future__ import annotations

import numpy as np

from ..shape import ShapeError

REDUCTIONS = ("none", "mean", "sum")


def log_softmax_forward(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.ascontiguousarray(x)  # layout-independent sums
    shifted = x - x.max(axis=dim, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    return out, (out, dim)


def log_softmax_backward(dout: np.ndarray, cache) -> np.ndarray:
    out, dim = cache
    return dout - np.exp(out) * dout.sum(axis=dim, keepdims=True)


def softmax_forward(x: np.ndarray, dim: int) -> tuple[np.ndarray, tuple]:
    x = np.ascontiguousarray(x)
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    out = e / e.sum(axis=dim, keepdims=True)
    return out, (out, dim)


def softmax_backward(dout: np.ndarray, cache) -> np.ndarray:
    out, dim = cache
    return out * (dout - (dout * out).sum(axis=dim, keepdims=True))


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction; use {REDUCTIONS}")


def _target_coefficients(logp, target, weight, ignore_index, label_smoothing):
    """Return (a, denom): the loss is sum_c(-a * logp) per sample, with a (N, ..., C)
    (classes last), and denom the 'mean' normaliser."""
    c = logp.shape[1]
    if weight is not None and weight.shape != (c,):
        raise ShapeError(
            "cross_entropy", f"weight must have shape ({c},) (one per class), got {weight.shape}"
        )
    w = np.ones(c, dtype=logp.dtype) if weight is None else weight.astype(logp.dtype)
    eps = label_smoothing
    if np.issubdtype(target.dtype, np.floating):
        # class probabilities, same shape as the input
        if target.shape != logp.shape:
            raise ShapeError(
                "cross_entropy",
                f"a floating-point target holds class probabilities and must have the input's "
                f"shape {tuple(logp.shape)}, got {tuple(target.shape)}",
            )
        t = np.moveaxis(target, 1, -1).astype(logp.dtype)
        if eps:
            t = t * (1 - eps) + eps / c
        return t * w, np.asarray(t.size // c, dtype=logp.dtype)
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(
            f"target must hold integer class indices (or float probabilities), got {target.dtype}"
        )
    expect = (logp.shape[0],) + logp.shape[2:]
    if target.shape != expect:
        raise ShapeError(
            "cross_entropy",
            f"expected a target of shape {expect} for input of shape {tuple(logp.shape)}, "
            f"got {tuple(target.shape)}",
        )
    keep = target != ignore_index
    bad = keep & ((target < 0) | (target >= c))
    if bad.any():
        raise ValueError(
            f"target {int(target[bad].flat[0])} is out of bounds: class indices must be in "
            f"[0, {c - 1}] for {c} classes (or equal ignore_index={ignore_index})"
        )
    safe = np.where(keep, target, 0)
    onehot = np.zeros(target.shape + (c,), dtype=logp.dtype)
    np.put_along_axis(onehot, safe[..., None], 1, axis=-1)
    wy = w[safe] * keep
    a = onehot * ((1 - eps) * wy)[..., None]
    if eps:
        a = a + (eps / c) * w * keep[..., None]
    return a, wy.sum()


def nll_loss_forward(
    logp: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> tuple[np.ndarray, tuple]:
    """Negative log-likelihood of log-probabilities ``logp`` (classes on axis 1)."""
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if logp.ndim < 2:
        raise ShapeError("cross_entropy", f"expected input (N, C, ...), got {logp.shape}")
    a, denom = _target_coefficients(logp, target, weight, ignore_index, label_smoothing)
    per = -(a * np.moveaxis(logp, 1, -1)).sum(axis=-1)
    if reduction == "none":
        out = per
    elif reduction == "sum":
        out = per.sum()
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = per.sum() / denom
    return np.asarray(out, dtype=logp.dtype), (a, denom, reduction)


def nll_loss_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    a, denom, reduction = cache
    if reduction == "none":
        g = -a * dout[..., None]
    elif reduction == "sum":
        g = -a * dout
    else:
        g = -a * (dout / denom)
    return np.moveaxis(g, -1, 1)


def mse_loss_forward(x: np.ndarray, target: np.ndarray, reduction: str = "mean",
                     weight: np.ndarray | None = None):
    """(x - target)^2, optionally times an element-wise ``weight`` ('mean' then divides by
    the summed weights, as PyTorch)."""
    _check_reduction(reduction)
    if x.shape != target.shape:
        raise ShapeError(
            "mse_loss", f"input shape {tuple(x.shape)} and target shape {tuple(target.shape)} "
            "differ; they must match"
        )
    if weight is not None and weight.shape != x.shape:
        raise ShapeError("mse_loss", f"weight shape {tuple(weight.shape)} must equal the input "
                                     f"shape {tuple(x.shape)}")
    diff = x - target
    sq = diff * diff
    per = sq if weight is None else sq * weight
    if reduction == "none":
        out, denom = per, None
    elif reduction == "sum":
        out, denom = per.sum(), None
    else:
        denom = per.size if weight is None else weight.sum()
        out = per.sum() / denom
    return np.asarray(out, dtype=x.dtype), (diff, sq, weight, out, denom)


def mse_loss_backward(dout: np.ndarray, cache) -> tuple:
    """Gradients (dx, dtarget, dweight)."""
    diff, sq, weight, out, denom = cache
    g = dout if denom is None else dout / denom
    dx = 2 * g * diff if weight is None else 2 * g * diff * weight
    dx = dx.astype(diff.dtype, copy=False)
    dw = None
    if weight is not None:
        dw = g * sq if denom is None else g * (sq - out)  # mean: d(sum(sq*w)/sum(w))/dw
    return dx, -dx, dw
