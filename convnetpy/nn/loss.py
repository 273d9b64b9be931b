"""Loss modules: CrossEntropyLoss, NLLLoss, MSELoss (PyTorch arguments and defaults).

>>> import convnetpy as cp
>>> from convnetpy import nn
>>> round(nn.CrossEntropyLoss()(cp.tensor([[0.0, 0.0, 0.0]]), cp.tensor([0])).item(), 4)
1.0986
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..checks import check_int, check_probability
from .module import Module


class _Loss(Module):
    def __init__(self, size_average: Any = None, reduce: Any = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = F.loss_args(type(self).__name__, size_average, reduce, reduction)


class _WeightedLoss(_Loss):
    def __init__(self, weight: Any = None, size_average: Any = None, reduce: Any = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy of logits against class indices (or class probabilities): log_softmax
    then negative log-likelihood, with per-class ``weight``, ``ignore_index`` and
    ``label_smoothing``; 'mean' divides by the summed weights of the counted targets.

    Shape:
        input (N, C) or (N, C, d1, ...), target (N,) or (N, d1, ...) -> a scalar
        (reduction 'none': (N,) or (N, d1, ...))

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> round(nn.CrossEntropyLoss()(cp.zeros(2, 10), cp.tensor([3, 7])).item(), 4)  # ln 10
    2.3026
    """

    def __init__(self, weight: Any = None, size_average: Any = None, ignore_index: int = -100,
                 reduce: Any = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        op = type(self).__name__
        self.ignore_index = check_int(ignore_index, "ignore_index", op, low=None)
        self.label_smoothing = check_probability(label_smoothing, "label_smoothing", op)

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (N, C, ...) against class indices.

    Shape:
        input (N, C) or (N, C, d1, ...), target (N,) or (N, d1, ...) -> a scalar

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.NLLLoss()(cp.tensor([[-1.0, -2.0]]), cp.tensor([1])).item()
    2.0
    """

    def __init__(self, weight: Any = None, size_average: Any = None, ignore_index: int = -100,
                 reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = check_int(ignore_index, "ignore_index", type(self).__name__,
                                      low=None)

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error; input and target must have the same shape.

    Shape:
        input (*), target (*) -> a scalar (reduction 'none': (*))

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.MSELoss()(cp.tensor([1.0, 3.0]), cp.tensor([0.0, 0.0])).item()
    5.0
    """

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
