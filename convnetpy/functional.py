"""Tensor-level neural-network operations, named and ordered like torch.nn.functional.

Each function validates its arguments, then applies one Function that binds a kernel pair,
looked up in the backend's dispatch table (``convnetpy.backend.dispatch``) for the current
compute path. Usage: ``import convnetpy.functional as F``.

>>> import numpy as np, convnetpy as cp
>>> import convnetpy.functional as F
>>> x = cp.tensor(np.ones((1, 3, 32, 32)))
>>> F.conv2d(x, cp.tensor(np.ones((10, 3, 5, 5))), padding=2).shape
(1, 10, 32, 32)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .autograd import Cost, Function, Window
from .backend.dispatch import kernel
from .checks import (
    check_choice,
    check_dtype,
    check_flag,
    check_int,
    check_ints,
    check_number,
    check_probability,
)
from .kernels import conv as kc
from .kernels import linear as kl
from .kernels import normalization as kn
from .kernels import padding as kp
from .kernels import pooling as kpool
from .kernels.loss import REDUCTIONS
from .random import default_generator
from .shape import ShapeError, pair, pool_args, receptive_field_step, resolve_conv_padding
from .tensor import Tensor, cat, stack  # noqa: F401  (re-exported for convenience)


# ---------------------------------------------------------------- Functions (kernel pairs)
def _adaptive_receptive_field(rf, sizes, output_size):
    """An adaptive pool's field, as a window of its widest bin and its smallest step."""
    k = tuple(-(-i // o) for i, o in zip(sizes, output_size))
    s = tuple(max(i // o, 1) for i, o in zip(sizes, output_size))
    return receptive_field_step(rf, k, s, (0, 0))


# ``meta`` computes only the output (zeros of the right shape): the summary's shape pass
class _Conv2d(Function):
    def forward(self, x, w, b, **kw):
        self.k = kernel("conv2d")
        out, self.cache = self.k.forward(x, w, b, **kw)
        return out

    def meta(self, x, w, b, **kw):
        return np.zeros(kc.conv2d_output_shape(x.shape, w.shape, None if b is None
                                               else b.shape, **kw), dtype=x.dtype)

    def backward(self, g):
        return self.k.backward(g, self.cache, self.needs)

    def window(self, x, w, b, stride, padding, dilation, groups):
        return Window(tuple(w.shape[2:]), stride, padding, dilation, weight=tuple(w.shape),
                      groups=groups)

    def cost(self, needs, out, x, w, b, **kw):
        """2 x MACs forward (+ the bias); backward 2 x MACs for dx and for dW each, and a
        sum over the output for db; memory as the current path's kernel lays it out."""
        macs = out.size * int(np.prod(w.shape[1:]))
        bias = out.size if b is not None else 0
        saved, fwd, bwd = kernel("conv2d").memory(x, w, b, **kw, needs=needs)
        return Cost(2 * macs + bias, 2 * macs * (needs[0] + needs[1])
                    + (out.size if b is not None and needs[2] else 0), macs, saved, (fwd, bwd))


class _Pad(Function):
    def forward(self, x, pad=(), mode="constant", value=0.0):
        self.k = kernel("pad")
        out, self.cache = self.k.forward(x, pad, mode, value)
        return out

    def cost(self, needs, out, x, **_):
        return Cost()  # copies, no arithmetic

    def receptive_field(self, rf, x, pad=(), **_):
        """Padding moves the first unit's centre by the pixels added before it."""
        left = pad[0] if len(pad) > 0 else 0
        top = pad[2] if len(pad) > 2 else 0
        size, jump, start = rf
        return size, jump, (start[0] - top * jump[0], start[1] - left * jump[1])

    def backward(self, g):
        return (self.k.backward(g, self.cache),)


class _MaxPool2d(Function):
    def forward(self, x, **kw):
        self.k = kernel("max_pool2d")
        out, self.cache = self.k.forward(x, **kw)
        return out

    def meta(self, x, kernel, stride, padding, dilation, ceil_mode):
        shape = kpool.pool2d_output_shape("max_pool2d", x.shape, kernel, stride, padding,
                                          dilation, ceil_mode)
        self.cache = None
        return np.zeros(shape, dtype=x.dtype)

    def window(self, x, kernel, stride, padding, dilation, ceil_mode):
        return Window(kernel, stride, tuple((p, p) for p in padding), dilation, ceil_mode)

    def cost(self, needs, out, x, kernel, padding, **_):
        """KH*KW - 1 comparisons per output forward; backward adds each gradient once. A
        padded input is kept as a padded copy."""
        saved = 0
        if any(padding):
            n, c, h, w = x.shape
            saved = n * c * (h + 2 * padding[0]) * (w + 2 * padding[1]) * x.itemsize
        return Cost(out.size * (kernel[0] * kernel[1] - 1), out.size if needs[0] else 0,
                    saved=saved)

    def indices(self, out: np.ndarray) -> np.ndarray:
        """return_indices: flat h*W + w of each maximum (zeros in a shape-only pass)."""
        if self.cache is None:
            return np.zeros(out.shape, dtype=np.int64)
        return kpool.max_pool2d_indices(self.cache)

    def backward(self, g):
        return (self.k.backward(g, self.cache),)


class _AvgPool2d(Function):
    def forward(self, x, **kw):
        self.k = kernel("avg_pool2d")
        out, self.cache = self.k.forward(x, **kw)
        return out

    def meta(self, x, kernel, stride, padding, ceil_mode, **_):
        return np.zeros(kpool.pool2d_output_shape("avg_pool2d", x.shape, kernel, stride,
                                                  padding, (1, 1), ceil_mode), dtype=x.dtype)

    def window(self, x, kernel, stride, padding, ceil_mode, **_):
        return Window(kernel, stride, tuple((p, p) for p in padding), ceil_mode=ceil_mode)

    def cost(self, needs, out, x, kernel, **_):
        """KH*KW adds and a divide per output; backward spreads each gradient over its
        window."""
        k = kernel[0] * kernel[1]
        return Cost(out.size * k, out.size * k if needs[0] else 0)

    def backward(self, g):
        return (self.k.backward(g, self.cache),)


class _AdaptiveAvgPool2d(Function):
    def forward(self, x, output_size=(1, 1)):
        if output_size == (1, 1):
            self.k = kernel("global_avg_pool2d")
            out, self.cache = self.k.forward(x)
        else:
            self.k = kernel("adaptive_avg_pool2d")
            out, self.cache = self.k.forward(x, output_size)
        return out

    def meta(self, x, output_size=(1, 1)):
        shape = kpool.adaptive_output_shape("adaptive_avg_pool2d", x.shape, output_size)
        return np.zeros(shape, dtype=x.dtype)

    def receptive_field(self, rf, x, output_size=(1, 1)):
        return _adaptive_receptive_field(rf, x.shape[2:], output_size)

    def cost(self, needs, out, x, output_size=(1, 1)):
        """Every input element taken into its bin(s) once (the bins' overlap aside), and a
        divide or pick per output; backward spreads the output gradients back."""
        return Cost(x.size + out.size, x.size if needs[0] else 0)

    def backward(self, g):
        return (self.k.backward(g, self.cache),)


class _AdaptiveMaxPool2d(Function):
    def forward(self, x, output_size=(1, 1)):
        self.k = kernel("adaptive_max_pool2d")
        out, self.cache = self.k.forward(x, output_size)
        return out

    def meta(self, x, output_size=(1, 1)):
        shape = kpool.adaptive_output_shape("adaptive_max_pool2d", x.shape, output_size)
        self.cache = None
        return np.zeros(shape, dtype=x.dtype)

    def receptive_field(self, rf, x, output_size=(1, 1)):
        return _adaptive_receptive_field(rf, x.shape[2:], output_size)

    def cost(self, needs, out, x, output_size=(1, 1)):
        """Every input element taken into its bin(s) once (the bins' overlap aside), and a
        pick per output; backward spreads the output gradients back. The winners' indices
        (int64) are kept."""
        return Cost(x.size + out.size, x.size if needs[0] else 0, saved=8 * out.size)

    def indices(self, out: np.ndarray) -> np.ndarray:
        if self.cache is None:
            return np.zeros(out.shape, dtype=np.int64)
        return self.cache[0]

    def backward(self, g):
        return (self.k.backward(g, self.cache),)


class _Linear(Function):
    def forward(self, x, w, b):
        self.k = kernel("linear")
        out, self.cache = self.k.forward(x, w, b)
        return out

    def cost(self, needs, out, x, w, b):
        """2 x MACs forward (+ the bias); backward 2 x MACs for dx and for dW each, and a
        sum over the output for db."""
        macs = out.size * w.shape[1]
        return Cost(2 * macs + (out.size if b is not None else 0),
                    2 * macs * (needs[0] + needs[1])
                    + (out.size if b is not None and needs[2] else 0), macs)

    def meta(self, x, w, b):
        return np.zeros(kl.linear_output_shape(x.shape, w.shape, None if b is None else b.shape),
                        dtype=x.dtype)

    def backward(self, g):
        return self.k.backward(g, self.cache, self.needs)


def _unary(name: str, op: str, forward_ops: int, backward_ops: int, saved_per_element=0):
    """A Function class for the element-wise kernel pair of ``op``, which costs
    ``forward_ops`` and ``backward_ops`` floating-point operations per element and keeps
    ``saved_per_element`` new bytes per element ("itemsize": one of the input's dtype)
    beyond its output."""

    def forward(self, x, **kw):
        self.k = kernel(op)
        out, self.cache = self.k.forward(x, **kw)
        return out

    def backward(self, g):
        return (self.k.backward(g, self.cache),)

    def cost(self, needs, out, x, **kw):
        per = x.itemsize if saved_per_element == "itemsize" else saved_per_element
        return Cost(forward_ops * out.size, backward_ops * x.size if needs[0] else 0,
                    saved=per * x.size)

    return type(name, (Function,), {"forward": forward, "backward": backward, "cost": cost,
                                    "elementwise": True})


# per element, forward and backward: relu max(x, 0) and g * (x > 0); leaky a compare and a
# multiply each way; sigmoid 1 / (1 + exp(-x)) and g * s * (1 - s); tanh and g * (1 - t^2);
# (log-)softmax subtract the max, exp, sum, divide (log, subtract) and back g - p * sum(g)
# (g - softmax(x) * sum(g), exp included); gelu x * 0.5 * (1 + erf(x / sqrt 2)), about 8
# with erf's polynomial, and back Phi + x phi times g, about 12; dropout draw, compare,
# scale; back a multiply
_ReLU = _unary("_ReLU", "relu", 1, 2)
_LeakyReLU = _unary("_LeakyReLU", "leaky_relu", 2, 2, saved_per_element=1)  # a bool mask
_Sigmoid = _unary("_Sigmoid", "sigmoid", 4, 3)
_Tanh = _unary("_Tanh", "tanh", 1, 3)
_GELU = _unary("_GELU", "gelu", 8, 12)
_LogSoftmax = _unary("_LogSoftmax", "log_softmax", 5, 4)
_Softmax = _unary("_Softmax", "softmax", 4, 4)
_Dropout = _unary("_Dropout", "dropout", 3, 1, saved_per_element="itemsize")  # the mask


class _BatchNorm(Function):
    elementwise = True

    def forward(self, x, w, b, running_mean=None, running_var=None, **kw):
        self.k = kernel("batch_norm")
        out, self.cache = self.k.forward(x, w, b, running_mean, running_var, **kw)
        return out

    def cost(self, needs, out, x, w, b, running_mean=None, running_var=None, training=True,
             **_):
        """Per element, training: the mean (1) and variance (3: subtract, square, add),
        normalise (2) and scale and shift (2); evaluation: scale and shift of the folded
        statistics (2). Backward (training): g * gamma, the two sums over the batch (3),
        dx from them (4), and dgamma, dbeta (3); evaluation: g * gamma / sigma (2)."""
        n = x.size
        saved, fwd, bwd = kernel("batch_norm").memory(x, w, b, running_mean, running_var,
                                                      training, 0.1, 1e-5, needs=needs)
        if not training:
            return Cost(2 * n, (2 * n if needs[0] else 0)
                        + (3 * n if needs[1] or needs[2] else 0), 0, saved, (fwd, bwd))
        return Cost(8 * n, (8 * n if needs[0] else 0) + (3 * n if needs[1] or needs[2] else 0),
                    0, saved, (fwd, bwd))

    def backward(self, g):
        return self.k.backward(g, self.cache, self.needs)


class _SyncBatchNorm(_BatchNorm):
    """Batch norm in training whose statistics cover every process's batch (``reduce``)."""

    def forward(self, x, w, b, running_mean=None, running_var=None, momentum=0.1, eps=1e-5,
                reduce=None, **_):
        out, self.cache = kn.sync_batch_norm_forward(x, w, b, running_mean, running_var,
                                                     momentum, eps, reduce)
        return out

    def backward(self, g):
        return kn.sync_batch_norm_backward(g, self.cache, self.needs)


class _NLLLoss(Function):
    def forward(self, logp, target, weight, **kw):
        self.k = kernel("nll_loss")
        out, self.cache = self.k.forward(logp, target, weight, **kw)
        return out

    def cost(self, needs, out, logp, target, weight, label_smoothing=0.0, **_):
        """A pick (and weight) per row and their mean (with label smoothing also a sum over
        every class); backward writes the gradient of logp."""
        rows = logp.size // logp.shape[1] if logp.ndim > 1 else 1
        smooth = 2 * logp.size if label_smoothing else 0
        return Cost(2 * rows + smooth, logp.size if needs[0] else 0)

    def backward(self, g):
        return self.k.backward(g, self.cache), None, None


class _MSELoss(Function):
    def forward(self, x, t, w, **kw):
        self.k = kernel("mse_loss")
        out, self.cache = self.k.forward(x, t, weight=w, **kw)
        return out

    def cost(self, needs, out, x, t, w, **_):
        """Subtract, square, add per element (and weight); backward 2 * diff * g."""
        extra = x.size if w is not None else 0
        return Cost(3 * x.size + extra, 2 * x.size * (needs[0] + needs[1]) + extra,
                    saved=2 * x.size * x.itemsize)  # the difference and its square

    def backward(self, g):
        return self.k.backward(g, self.cache)


# ---------------------------------------------------------------- helpers
def _t(x: Any, name: str = "input") -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor._from_array(x)
    raise TypeError(f"{name} must be a convnetpy Tensor or a numpy array, got {type(x).__name__}")


def _same_dtype(op: str, x: Tensor, **others: Tensor | None) -> None:
    for name, t in others.items():
        if t is not None and t.dtype != x.dtype:
            raise TypeError(
                f"{op}: input dtype {x.dtype} and {name} dtype {t.dtype} differ; convert one "
                "with .float() or .double() (or call model.to(dtype))"
            )


def _batched(op: str, x: Tensor, fn):
    """Run a 4-D spatial op on a 3-D (C, H, W) input too, as PyTorch allows."""
    if x.ndim == 3:
        out = fn(x.unsqueeze(0))
        return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
    if x.ndim != 4:
        raise ShapeError(op, f"expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                             f"{tuple(x.shape)}")
    return fn(x)


# ---------------------------------------------------------------- convolution and padding
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution; ``padding`` is an int, a pair, ``'valid'`` or ``'same'``.

    Shape:
        (N, C_in, H, W) -> (N, C_out, H_out, W_out),
        H_out = floor((H + 2*P - D*(K-1) - 1) / S) + 1
    """
    x, w = _t(input), _t(weight, "weight")
    b = None if bias is None else _t(bias, "bias")
    _same_dtype("conv2d", x, weight=w, bias=b)
    stride, dilation = pair(stride, "stride", op="conv2d"), pair(dilation, "dilation", op="conv2d")
    groups = check_int(groups, "groups", "conv2d")
    if w.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (C_out, C_in/groups, KH, KW), got {w.shape}")
    pads = resolve_conv_padding(padding, tuple(w.shape[2:]), stride, dilation, op="conv2d")
    return _batched("conv2d", x, lambda x4: _Conv2d.apply(
        x4, w, b, stride=stride, padding=pads, dilation=dilation, groups=groups))


def pad(input, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad trailing dims as torch.nn.functional.pad: ``pad`` = (left, right, top, bottom,
    front, back, ...), a (before, after) pair per dim from the last one backwards, at most
    2 * input.ndim entries; negative entries crop. Constant padding takes any number of dims
    (``pad=(0, 0, 0, 0, 2, 2)`` adds two zero channels each side of an (N, C, H, W) input:
    ResNet's option-A shortcut); reflect, replicate and circular pad the last 1, 2 or 3 dims
    of an input with one or two dims more (unbatched or batched).

    NOTE: circular padding that wraps around more than what its negative entries leave of a
    dim is rejected (PyTorch returns uninitialised memory there).

    Shape:
        (*, H, W) -> (*, H + top + bottom, W + left + right), and so on for each pair

    >>> import convnetpy as cp
    >>> import convnetpy.functional as F
    >>> F.pad(cp.zeros(2, 16, 8, 8), (0, 0, 0, 0, 8, 8)).shape
    (2, 32, 8, 8)
    """
    x = _t(input)
    pad = check_ints(pad, "pad", "pad")
    if len(pad) % 2 or len(pad) > 2 * x.ndim:
        raise ValueError(f"pad(pad={pad}): pad must have 2 or 4 entries, or another even number "
                         f"up to 2 * input.ndim = {2 * x.ndim} (a (before, after) pair per dim "
                         f"from the last), got {len(pad)} for an input of shape {x.shape}")
    mode = check_choice(mode, "mode", kp.MODES, "pad")
    if value is not None and mode not in ("constant", "zeros"):
        raise ValueError(f"pad(value={value!r}): value is only used by mode='constant', not "
                         f"{mode!r}")
    value = check_number(value, "value", "pad", optional=True)
    kp.check_pad_dims(x.shape, pad, mode)
    if len(pad) < 4 and x.ndim >= 2:  # the two spatial pairs, as the ONNX export reads them
        pad += (0,) * (4 - len(pad))
    return _Pad.apply(x, pad=pad, mode=mode, value=0.0 if value is None else value)


# ---------------------------------------------------------------- pooling
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling (stride defaults to kernel_size); padding counts as -inf."""
    x = _t(input)
    k, s, p, d = pool_args("max_pool2d", kernel_size, stride, padding, dilation)
    ceil_mode = check_flag(ceil_mode, "ceil_mode", "max_pool2d")
    return_indices = check_flag(return_indices, "return_indices", "max_pool2d")

    def run(x4):
        out, ctx = _MaxPool2d.apply_with_ctx(x4, kernel=k, stride=s, padding=p, dilation=d,
                                             ceil_mode=ceil_mode)
        return (out, Tensor._from_array(ctx.indices(out.data))) if return_indices else out

    return _batched("max_pool2d", x, run)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None) -> Tensor:
    """Average pooling (stride defaults to kernel_size); padding counts as 0."""
    x = _t(input)
    k, s, p, _ = pool_args("avg_pool2d", kernel_size, stride, padding)
    ceil_mode, count_include_pad, divisor_override = avg_pool_args(
        "avg_pool2d", ceil_mode, count_include_pad, divisor_override)
    return _batched("avg_pool2d", x, lambda x4: _AvgPool2d.apply(
        x4, kernel=k, stride=s, padding=p, ceil_mode=ceil_mode,
        count_include_pad=count_include_pad, divisor_override=divisor_override))


def avg_pool_args(op: str, ceil_mode, count_include_pad, divisor_override):
    """AvgPool2d's other arguments, validated: two bools and a non-zero int or None (as
    PyTorch, a negative divisor is allowed)."""
    divisor = check_int(divisor_override, "divisor_override", op, low=None, optional=True)
    if divisor == 0:
        raise ValueError(f"{op}(divisor_override=0): divisor_override must not be zero")
    return (check_flag(ceil_mode, "ceil_mode", op),
            check_flag(count_include_pad, "count_include_pad", op), divisor)


def _adaptive_size(x: Tensor, output_size, op: str) -> tuple[int, int]:
    oh, ow = pair(output_size, "output_size", op=op, allow_none=True)
    return (x.shape[-2] if oh is None else oh, x.shape[-1] if ow is None else ow)


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    """Average over PyTorch's adaptive bins; ``output_size`` 1 is global average pooling."""
    x = _t(input)
    size = _adaptive_size(x, output_size, "adaptive_avg_pool2d")
    return _batched("adaptive_avg_pool2d", x,
                    lambda x4: _AdaptiveAvgPool2d.apply(x4, output_size=size))


def adaptive_max_pool2d(input, output_size, return_indices=False):
    x = _t(input)
    size = _adaptive_size(x, output_size, "adaptive_max_pool2d")
    return_indices = check_flag(return_indices, "return_indices", "adaptive_max_pool2d")

    def run(x4):
        out, ctx = _AdaptiveMaxPool2d.apply_with_ctx(x4, output_size=size)
        return (out, Tensor._from_array(ctx.indices(out.data))) if return_indices else out

    return _batched("adaptive_max_pool2d", x, run)


def global_avg_pool2d(input) -> Tensor:
    """(N, C, H, W) -> (N, C, 1, 1). NOTE: not in torch; equal to adaptive_avg_pool2d(x, 1)."""
    return adaptive_avg_pool2d(input, 1)


# ---------------------------------------------------------------- linear and activations
def linear(input, weight, bias=None) -> Tensor:
    x, w = _t(input), _t(weight, "weight")
    b = None if bias is None else _t(bias, "bias")
    _same_dtype("linear", x, weight=w, bias=b)
    return _Linear.apply(x, w, b)


def relu(input, inplace: bool = False) -> Tensor:
    return _ReLU.apply(_t(input))


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    slope = check_number(negative_slope, "negative_slope", "leaky_relu")
    return _LeakyReLU.apply(_t(input), negative_slope=slope)


def sigmoid(input) -> Tensor:
    return _Sigmoid.apply(_t(input))


def tanh(input) -> Tensor:
    return _Tanh.apply(_t(input))


def gelu(input, approximate: str = "none") -> Tensor:
    """x * Phi(x) (Hendrycks and Gimpel, 2016), Phi the standard normal CDF; ``"tanh"``
    uses PyTorch's tanh approximation of it."""
    check_choice(approximate, "approximate", ("none", "tanh"), "gelu")
    return _GELU.apply(_t(input), approximate=approximate)


def _softmax_dim(x: Tensor, dim, name: str) -> int:
    if check_int(dim, "dim", name, low=None, optional=True) is None:
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the "
                      "call to include dim=X as an argument.", stacklevel=3)
        dim = 0 if x.ndim in (0, 1, 3) else 1
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise IndexError(f"{name}: dim {dim} is out of range for a {x.ndim}-D input")
    return dim


def softmax(input, dim: int | None = None, dtype=None) -> Tensor:
    dtype = check_dtype(dtype, "dtype", "softmax")
    x = _t(input) if dtype is None else _t(input).to(dtype)
    return _Softmax.apply(x, dim=_softmax_dim(x, dim, "softmax"))


def log_softmax(input, dim: int | None = None, dtype=None) -> Tensor:
    dtype = check_dtype(dtype, "dtype", "log_softmax")
    x = _t(input) if dtype is None else _t(input).to(dtype)
    return _LogSoftmax.apply(x, dim=_softmax_dim(x, dim, "log_softmax"))


# ---------------------------------------------------------------- normalisation, dropout
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5) -> Tensor:
    """Batch normalisation; in training the running buffers (ndarrays or Tensors) are updated
    in place.

    NOTE: momentum must lie in [0, 1] (PyTorch takes any number); eps must be positive in
    training, as in PyTorch."""
    x = _t(input)
    training = check_flag(training, "training", "batch_norm")
    momentum, eps = norm_args("batch_norm", momentum, eps, training)
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    w = None if weight is None else _t(weight, "weight")
    b = None if bias is None else _t(bias, "bias")
    _same_dtype("batch_norm", x, weight=w, bias=b)
    return _BatchNorm.apply(x, w, b, running_mean=rm, running_var=rv, training=training,
                            momentum=momentum, eps=eps)


def norm_args(op: str, momentum, eps, training: bool = True) -> tuple[float | None, float]:
    """Batch norm's momentum (None, or in [0, 1]) and eps (positive; in evaluation, as in
    PyTorch, any number), validated."""
    momentum = check_number(momentum, "momentum", op, 0.0, 1.0, optional=True)
    return momentum, check_number(eps, "eps", op, 0.0 if training else None,
                                  low_open=True)


def sync_batch_norm(input, running_mean, running_var, weight=None, bias=None,
                    momentum=0.1, eps=1e-5, reduce=None) -> Tensor:
    """Training-mode batch normalisation over the batches of every process: ``reduce``
    sums a float64 array over them (``convnetpy.distributed`` gives it; None: this process
    alone, which is plain batch norm)."""
    x = _t(input)
    momentum, eps = norm_args("sync_batch_norm", momentum, eps)
    w = None if weight is None else _t(weight, "weight")
    b = None if bias is None else _t(bias, "bias")
    _same_dtype("sync_batch_norm", x, weight=w, bias=b)
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    return _SyncBatchNorm.apply(x, w, b, running_mean=rm, running_var=rv,
                                momentum=momentum, eps=eps, training=True,
                                reduce=reduce or (lambda a: a))


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    x = _t(input)
    p = dropout_args("dropout", p)
    if not check_flag(training, "training", "dropout") or p == 0.0:
        return x
    return _Dropout.apply(x, p=p, rng=default_generator())


def dropout_args(op: str, p) -> float:
    """Dropout's ``p``, validated: a probability."""
    return check_probability(p, "p", op, "dropout probability has to be between 0 and 1")


# ---------------------------------------------------------------- losses
def loss_args(op: str, size_average, reduce, reduction: str) -> str:
    """A loss's ``reduction``, validated (size_average and reduce are not supported)."""
    if size_average is not None or reduce is not None:
        given = ", ".join(f"{n}={v!r}" for n, v in (("size_average", size_average),
                                                     ("reduce", reduce)) if v is not None)
        raise ValueError(f"{op}({given}): size_average and reduce are deprecated and not "
                         "supported; use reduction='mean' | 'sum' | 'none'")
    return check_choice(reduction, "reduction", REDUCTIONS, op,
                        f"{reduction!r} is not a valid value for reduction; use one of "
                        f"{REDUCTIONS}")


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean") -> Tensor:
    x = _t(input)
    reduction = loss_args("nll_loss", size_average, reduce, reduction)
    ignore_index = check_int(ignore_index, "ignore_index", "nll_loss", low=None)
    return _NLLLoss.apply(x, _t(target, "target"), None if weight is None else _t(weight),
                          ignore_index=ignore_index, reduction=reduction)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits ``input`` (N, C, ...) against class indices (N, ...) or class
    probabilities (same shape as input), as log_softmax followed by nll_loss.

    >>> import convnetpy as cp
    >>> import convnetpy.functional as F
    >>> round(F.cross_entropy(cp.tensor([[0.0, 0.0]]), cp.tensor([1])).item(), 4)
    0.6931
    """
    x = _t(input)
    reduction = loss_args("cross_entropy", size_average, reduce, reduction)
    ignore_index = check_int(ignore_index, "ignore_index", "cross_entropy", low=None)
    label_smoothing = check_probability(label_smoothing, "label_smoothing", "cross_entropy")
    if x.ndim == 1:  # unbatched (C,) logits with a scalar target
        x, target = x.unsqueeze(0), _t(target, "target").reshape(1)
        out = cross_entropy(x, target, weight, None, ignore_index, None, reduction,
                            label_smoothing)
        return out.squeeze(0) if reduction == "none" else out
    logp = log_softmax(x, dim=1)
    return _NLLLoss.apply(logp, _t(target, "target"), None if weight is None else _t(weight),
                          ignore_index=ignore_index, reduction=reduction,
                          label_smoothing=label_smoothing)


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None) -> Tensor:
    """Mean squared error, optionally weighted element-wise. NOTE: input and target must have
    the same shape (PyTorch only warns and broadcasts, which is almost always a bug)."""
    x, t = _t(input), _t(target, "target")
    w = None if weight is None else _t(weight, "weight")
    reduction = loss_args("mse_loss", size_average, reduce, reduction)
    return _MSELoss.apply(x, t, w, reduction=reduction)


# The Tensor methods that are ops of this module, as in PyTorch (``x.relu()``,
# ``x.softmax(1)``): attached here because tensor.py sits below this module.
Tensor.relu, Tensor.sigmoid, Tensor.tanh = relu, sigmoid, tanh
Tensor.softmax, Tensor.log_softmax = softmax, log_softmax
