"""Flatten (the layer between the convolutional features and the classifier)."""

from __future__ import annotations

from ..checks import check_int
from .module import Module


class Flatten(Module):
    """Merge axes start_dim..end_dim (by default all but the batch axis).

    Shape:
        (N, C, H, W) -> (N, C*H*W)

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.Flatten()(cp.zeros(2, 20, 4, 4)).shape
    (2, 320)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = check_int(start_dim, "start_dim", "Flatten", low=None)
        self.end_dim = check_int(end_dim, "end_dim", "Flatten", low=None)

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
