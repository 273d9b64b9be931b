"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax.

Shape:
    any shape -> the same shape
"""

from __future__ import annotations

from .. import functional as F
from ..checks import check_choice, check_int, check_number
from .module import Module


class ReLU(Module):
    """max(0, x); the gradient at 0 is 0. ``inplace`` is accepted for compatibility; the
    result is always a new array.

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.ReLU()(cp.tensor([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 2.0]
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise.

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.LeakyReLU(0.5)(cp.tensor([-2.0, 3.0])).tolist()
    [-1.0, 3.0]
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = check_number(negative_slope, "negative_slope", "LeakyReLU")
        self.inplace = inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """1 / (1 + exp(-x)), computed without overflow.

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.Sigmoid()(cp.tensor([0.0])).tolist()
    [0.5]
    """

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent.

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.Tanh()(cp.tensor([0.0])).tolist()
    [0.0]
    """

    def forward(self, x):
        return F.tanh(x)


class GELU(Module):
    """x * Phi(x), Phi the standard normal CDF (``approximate="tanh"``: PyTorch's tanh
    approximation). Smooth where ReLU has a corner, and never exactly flat below zero.

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> [round(v, 4) for v in nn.GELU()(cp.tensor([-1.0, 0.0, 1.0])).tolist()]
    [-0.1587, 0.0, 0.8413]
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = check_choice(approximate, "approximate", ("none", "tanh"), "GELU")

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``dim`` (the maximum is subtracted first).

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.Softmax(dim=1)(cp.zeros(1, 4)).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", type(self).__name__, low=None, optional=True)

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """x - logsumexp(x) along ``dim``, numerically stable.

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> round(nn.LogSoftmax(dim=1)(cp.zeros(1, 2)).tolist()[0][0], 4)
    -0.6931
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", type(self).__name__, low=None, optional=True)

    def forward(self, x):
        return F.log_softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
