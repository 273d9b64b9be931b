"""The one dispatch point: op name -> the forward/backward pair that runs it on the current
compute path (select.py). The reference kernels (convnetpy/kernels) serve every op and
every path; the backend replaces the ops it makes faster. Each Function looks its kernel up
when its forward pass runs and keeps it for the backward pass, so a path switched between
the two cannot pair a forward with another path's backward.

>>> kernel("relu").forward.__module__ in ("convnetpy.backend.activation",
...                                       "convnetpy.kernels.activation")
True
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

from ..kernels import activation as k_activation
from ..kernels import conv as k_conv
from ..kernels import dropout as k_dropout
from ..kernels import linear as k_linear
from ..kernels import loss as k_loss
from ..kernels import normalization as k_normalization
from ..kernels import padding as k_padding
from ..kernels import pooling as k_pooling
from ..kernels import reduce as k_reduce
from . import activation, conv, linear, normalization, pooling, reduce
from .select import current


class Kernel(NamedTuple):
    forward: Callable
    backward: Callable | None = None
    # (the forward arguments, needs=...) -> (saved, forward workspace, backward workspace)
    # in bytes, where they depend on the implementation (the summary's memory estimate)
    memory: Callable | None = None


def _reference() -> dict[str, Kernel]:
    k = k_activation
    return {
        "conv2d": Kernel(k_conv.conv2d_forward, k_conv.conv2d_backward),
        "linear": Kernel(k_linear.linear_forward, k_linear.linear_backward),
        "relu": Kernel(k.relu_forward, k.relu_backward),
        "leaky_relu": Kernel(k.leaky_relu_forward, k.leaky_relu_backward),
        "sigmoid": Kernel(k.sigmoid_forward, k.sigmoid_backward),
        "tanh": Kernel(k.tanh_forward, k.tanh_backward),
        "gelu": Kernel(k.gelu_forward, k.gelu_backward),
        "log_softmax": Kernel(k_loss.log_softmax_forward, k_loss.log_softmax_backward),
        "softmax": Kernel(k_loss.softmax_forward, k_loss.softmax_backward),
        "nll_loss": Kernel(k_loss.nll_loss_forward, k_loss.nll_loss_backward),
        "mse_loss": Kernel(k_loss.mse_loss_forward, k_loss.mse_loss_backward),
        "dropout": Kernel(k_dropout.dropout_forward, k_dropout.dropout_backward),
        "batch_norm": Kernel(k_normalization.batch_norm_forward,
                             k_normalization.batch_norm_backward,
                             k_normalization.batch_norm_memory),
        "pad": Kernel(k_padding.pad_forward, k_padding.pad_backward),
        "max_pool2d": Kernel(k_pooling.max_pool2d_forward, k_pooling.max_pool2d_backward),
        "avg_pool2d": Kernel(k_pooling.avg_pool2d_forward, k_pooling.avg_pool2d_backward),
        "global_avg_pool2d": Kernel(k_pooling.global_avg_pool2d_forward,
                                    k_pooling.global_avg_pool2d_backward),
        "adaptive_avg_pool2d": Kernel(k_pooling.adaptive_avg_pool2d_forward,
                                      k_pooling.adaptive_avg_pool2d_backward),
        "adaptive_max_pool2d": Kernel(k_pooling.adaptive_max_pool2d_forward,
                                      k_pooling.adaptive_max_pool2d_backward),
        "sum_all": Kernel(k_reduce.sum_all),
    }


@functools.cache
def table(path: str) -> dict[str, Kernel]:
    """Every op's kernel on ``path`` (built once per path; "reference": the reference
    kernels alone, as the tests run them)."""
    ops = _reference()
    if path == "reference":
        return ops
    # every path: the batch-chunked im2col convolution (NumPy GEMMs and copies on numpy)
    ops["conv2d"] = Kernel(conv.conv2d_forward, conv.conv2d_backward, conv.conv2d_memory)
    if path == "numpy":
        return ops
    ops["relu"] = Kernel(activation.relu_forward, activation.relu_backward)
    ops["gelu"] = Kernel(activation.gelu_forward, activation.gelu_backward)
    ops["batch_norm"] = Kernel(normalization.batch_norm_forward,
                               normalization.batch_norm_backward,
                               normalization.batch_norm_memory)
    ops["max_pool2d"] = Kernel(pooling.max_pool2d_forward, pooling.max_pool2d_backward)
    ops["sum_all"] = Kernel(reduce.sum_all)
    if path in ("avx512", "avx2"):
        ops["linear"] = Kernel(linear.linear_forward, linear.linear_backward)
    return ops


def kernel(op: str) -> Kernel:
    """The kernel that runs ``op`` on the current path."""
    return table(current())[op]
