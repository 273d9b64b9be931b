"""Linear (fully-connected) layer and Identity.

Shape:
    (*, in_features) -> (*, out_features); parameters in_features*out_features + out_features

>>> from convnetpy import nn
>>> sum(p.numel() for p in nn.Linear(4096, 1000).parameters())
4097000
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..checks import check_dtype, check_int
from ..shape import ShapeError, linear_params_formula
from ..tensor import Tensor
from . import init
from .module import Module


class Identity(Module):
    """Returns its input unchanged (any arguments are accepted and ignored).

    Shape:
        any shape -> the same shape

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.Identity(54, unused="x")(cp.zeros(2, 3)).shape
    (2, 3)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features), initialised as PyTorch
    does (U(-1/sqrt(in_features), 1/sqrt(in_features)) for weight and bias).

    NOTE: zero features are rejected (PyTorch builds an empty layer).

    Shape:
        (*, in_features) -> (*, out_features); parameters in_features*out_features + out_features

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.Linear(320, 10)(cp.zeros(4, 320)).shape
    (4, 10)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        op = type(self).__name__
        self.in_features = check_int(in_features, "in_features", op)
        self.out_features = check_int(out_features, "out_features", op)
        self._create_weight_bias((self.out_features, self.in_features), bias,
                                 check_dtype(dtype, "dtype", op))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_weight_bias_(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            got = x.shape[-1] if x.ndim else 0
            hint = (f" If it follows a Flatten, the flattened size is {got}: use "
                    f"in_features={got}." if x.ndim == 2 else
                    " Flatten the input first (nn.Flatten()) or fix in_features.")
            raise ShapeError(
                "linear",
                f"expected input (*, {self.in_features}) (in_features={self.in_features}), "
                f"got shape {tuple(x.shape)} whose last axis has {got} features.{hint}",
            )
        return F.linear(x, self.weight, self.bias)

    def param_formula(self) -> str:
        return linear_params_formula(self.in_features, self.out_features,
                                     self.bias is not None)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
