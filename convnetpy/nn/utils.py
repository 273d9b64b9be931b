"""Gradient utilities (torch.nn.utils names)."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..tensor import Tensor


def clip_grad_norm_(parameters: Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0) -> float:
    """Scale all gradients in place so that their global norm is at most ``max_norm``;
    returns the norm before clipping (as torch.nn.utils.clip_grad_norm_).

    >>> import convnetpy as cp
    >>> p = cp.nn.Parameter(np.zeros(2)); p.grad = cp.tensor(np.array([3.0, 4.0]))
    >>> clip_grad_norm_([p], 1.0), [round(v, 4) for v in p.grad.tolist()]
    (5.0, [0.6, 0.8])
    """
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.abs(g).max()) for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads)) ** (
            1.0 / norm_type)
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return total
