"""Conv2d: PyTorch's layer, arguments, defaults, initialisation and state_dict keys."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..checks import check_choice, check_dtype, check_int
from ..shape import conv_params_formula, pair, resolve_conv_padding
from . import init
from .module import Module

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class Conv2d(Module):
    """2-D convolution over an (N, C_in, H, W) input.

    ``padding`` is an int, a pair, ``'valid'`` or ``'same'`` (PyTorch's rules, the extra pixel
    of an even kernel going right/bottom); ``padding_mode`` is zeros, reflect, replicate or
    circular. Weights are (C_out, C_in/groups, KH, KW), initialised as PyTorch does
    (kaiming_uniform with a=sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias likewise).
    Every argument is checked here, not at the first forward.

    NOTE: zero channels or a zero kernel size are rejected (PyTorch builds an empty layer).

    Shape:
        (N, C_in, H, W) -> (N, C_out, H_out, W_out),
        H_out = floor((H + 2*P - D*(K-1) - 1) / S) + 1

    >>> from convnetpy import nn
    >>> conv = nn.Conv2d(3, 96, kernel_size=11, stride=4)
    >>> sum(p.numel() for p in conv.parameters())   # (11*11*3 + 1) * 96
    34944
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        op = type(self).__name__
        in_channels = check_int(in_channels, "in_channels", op)
        out_channels = check_int(out_channels, "out_channels", op)
        groups = check_int(groups, "groups", op)
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % groups:
                raise ValueError(f"{op}({name}={channels}, groups={groups}): {name} must be "
                                 f"divisible by groups, got {channels} ({channels} % {groups} "
                                 f"= {channels % groups})")
        self.padding_mode = check_choice(padding_mode, "padding_mode", PADDING_MODES, op)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", op=op)
        self.stride = pair(stride, "stride", op=op)
        self.dilation = pair(dilation, "dilation", op=op)
        # validates the pair, 'same' with stride > 1 and unknown strings now
        self._pads = resolve_conv_padding(padding, self.kernel_size, self.stride, self.dilation,
                                          op)
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", True)
        self._create_weight_bias((out_channels, in_channels // groups) + self.kernel_size,
                                 bias, check_dtype(dtype, "dtype", op))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_weight_bias_(self.weight, self.bias)

    def forward(self, x):
        if self.padding_mode == "zeros":
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding,
                            self.dilation, self.groups)
        (pt, pb), (pl, pr) = self._pads
        x = F.pad(x, (pl, pr, pt, pb), mode=self.padding_mode)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def param_formula(self) -> str:
        return conv_params_formula(self.in_channels, self.out_channels, self.kernel_size,
                                   self.groups, self.bias is not None)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
