"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d.

Pooling keeps the depth and has no parameters.

Shape:
    (N, C, H, W) -> (N, C, H_out, W_out), H_out = floor((H + 2*P - D*(K-1) - 1) / S) + 1

>>> import convnetpy as cp
>>> from convnetpy import nn
>>> nn.MaxPool2d(2)(cp.zeros(1, 16, 32, 32)).shape
(1, 16, 16, 16)
"""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..checks import check_flag
from ..shape import pair, pool_args
from .module import Module


class MaxPool2d(Module):
    """Max over each window; padding counts as -inf, ``stride`` defaults to ``kernel_size``.
    The gradient goes to the first maximum of each window (row-major), as in PyTorch.

    Shape:
        (N, C, H, W) -> (N, C, H_out, W_out), H_out = floor((H + 2*P - D*(K-1) - 1) / S) + 1
        (rounded up instead with ``ceil_mode``, dropping a window that starts in the padding)

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.MaxPool2d(3, stride=2)(cp.zeros(1, 96, 55, 55)).shape   # AlexNet POOL1
    (1, 96, 27, 27)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        op = type(self).__name__
        pool_args(op, kernel_size, stride, padding, dilation)  # checked here, kept as given
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices = check_flag(return_indices, "return_indices", op)
        self.ceil_mode = check_flag(ceil_mode, "ceil_mode", op)

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                f", dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Average over each window; padding counts as 0 and, with ``count_include_pad``, in
    the divisor; ``divisor_override`` replaces the divisor.

    Shape:
        (N, C, H, W) -> (N, C, H_out, W_out), H_out = floor((H + 2*P - K) / S) + 1

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.AvgPool2d(2)(cp.ones(1, 3, 5, 5)).shape
    (1, 3, 2, 2)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        op = type(self).__name__
        pool_args(op, kernel_size, stride, padding)  # checked here, kept as given
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = F.avg_pool_args(
            op, ceil_mode, count_include_pad, divisor_override)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average over PyTorch's adaptive bins (bin i spans floor(i*H/H_out) to
    ceil((i+1)*H/H_out), overlapping when the sizes do not divide); ``AdaptiveAvgPool2d(1)`` is
    global average pooling.

    Shape:
        (N, C, H, W) -> (N, C, H_out, W_out) = output_size (None keeps the input size)

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.AdaptiveAvgPool2d((7, 7))(cp.zeros(2, 512, 13, 13)).shape
    (2, 512, 7, 7)
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        pair(output_size, "output_size", op=type(self).__name__, allow_none=True)
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max over PyTorch's adaptive bins.

    Shape:
        (N, C, H, W) -> (N, C, H_out, W_out) = output_size

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> nn.AdaptiveMaxPool2d(1)(cp.zeros(2, 8, 5, 3)).shape
    (2, 8, 1, 1)
    """

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        op = type(self).__name__
        pair(output_size, "output_size", op=op, allow_none=True)
        self.output_size = output_size
        self.return_indices = check_flag(return_indices, "return_indices", op)

    def forward(self, x):
        return F.adaptive_max_pool2d(x, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
