"""Dropout: in training, zero each element with probability p and scale the rest by
1/(1-p) (inverted dropout); identity in evaluation.

Shape:
    any shape -> the same shape
"""

from __future__ import annotations

from .. import functional as F
from .module import Module


class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by 1/(1-p)
    (inverted dropout); the identity in evaluation mode.

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.Dropout(0.5).eval()(cp.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p, self.inplace = F.dropout_args(type(self).__name__, p), inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
