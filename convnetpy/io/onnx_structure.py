"""The structural ONNX operators ``convnetpy.onnx.load`` understands (onnx_graph.py has the
layers): reshaping, padding, slicing, joining, elementwise arithmetic and the shape
computations exporters write, each a few lines of F./Tensor code that autograd follows, and
``Erf`` (for GELU written before opset 20) as a Function of its own. A builder gets the load
context, the node and its attributes and returns ``run(model, args) -> Tensor``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import functional as F
from .. import nn
from ..autograd import Cost, Function
from ..tensor import Tensor, cat

Run = Callable[[Any, list], Any]


def module_run(name: str) -> Run:
    """A step that calls the loaded model's child ``name`` on the first input."""
    return lambda model, args: model._modules[name](args[0])

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
              "wrap": "circular"}


def flatten(ctx, node, a) -> Run:
    ctx.allow(node, a, "axis")
    axis = int(a.get("axis", 1))
    if axis == 1:
        return module_run(ctx.add_module(node, nn.Flatten()))
    return lambda model, args: args[0].reshape(
        int(np.prod(args[0].shape[:axis], dtype=np.int64)), -1)


def _reshape_to(x: Tensor, spec, allowzero: bool) -> Tensor:
    shape = [int(v) for v in np.asarray(spec).reshape(-1)]
    shape = [x.shape[i] if v == 0 and not allowzero else v for i, v in enumerate(shape)]
    return x.reshape(*shape)


def reshape(ctx, node, a) -> Run:
    ctx.allow(node, a, "allowzero")
    allowzero = bool(a.get("allowzero", 0))
    spec = ctx.maybe_const(node.input[1])
    if spec is not None:
        return lambda model, args: _reshape_to(args[0], spec, allowzero)
    return lambda model, args: _reshape_to(args[0], args[1], allowzero)


def pad(ctx, node, a) -> Run:
    ctx.allow(node, a, "mode pads value")
    mode = a.get("mode", "constant")
    if mode not in _PAD_MODES:
        ctx.fail(node, f"mode={mode!r} is not supported ({', '.join(_PAD_MODES)} are)")
    pads = a.get("pads") if ctx.opset < 11 else ctx.const(node, 1, "pads")
    value = float(a.get("value", 0.0))
    if ctx.opset >= 11 and ctx.has_input(node, 2):
        value = float(np.asarray(ctx.const(node, 2, "constant_value")).reshape(-1)[0])
    if ctx.has_input(node, 3):
        ctx.fail(node, "the axes input is not supported; pad all axes explicitly")
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    n = len(pads) // 2
    begin, end = pads[:n], pads[n:]
    if n < 2 or any(begin[:-2]) or any(end[:-2]) or min(pads) < 0:
        ctx.fail(node, f"pads={pads} is not supported (only non-negative padding of the last "
                       "two axes)")
    lrtb = (begin[-1], end[-1], begin[-2], end[-2])
    m = _PAD_MODES[mode]
    val = value if m == "constant" else None
    return lambda model, args: F.pad(args[0], lrtb, mode=m, value=val)


_erf = np.frompyfunc(math.erf, 1, 1)  # exact, as the reference GELU kernel computes it


class Erf(Function):
    """erf(x), d/dx = 2/sqrt(pi) exp(-x^2): the GELU that exporters write before opset 20
    (0.5 x (1 + erf(x / sqrt 2))) loads as these element-wise steps."""

    elementwise = True

    def forward(self, x):
        self.x = x
        return _erf(x).astype(x.dtype)

    def backward(self, g):
        x = self.x
        return ((g * (2 / math.sqrt(math.pi)) * np.exp(-x * x)).astype(x.dtype, copy=False),)

    def cost(self, needs, out, x, **_):
        # a polynomial and an exp forward (about 8), back exp, square and 2 multiplies
        return Cost(8 * out.size, 4 * x.size if needs[0] else 0)


def erf(ctx, node, a) -> Run:
    ctx.allow(node, a, "")
    return lambda model, args: Erf.apply(args[0])


def _binary(fn):
    def build(ctx, node, a) -> Run:
        ctx.allow(node, a, "")
        return lambda model, args: fn(args[0], args[1])
    return build


def concat(ctx, node, a) -> Run:
    ctx.allow(node, a, "axis")
    axis = int(a["axis"])

    def run(model, args):
        if all(isinstance(v, np.ndarray) for v in args):  # shape arithmetic
            return np.concatenate(args, axis=axis)
        return cat([v if isinstance(v, Tensor) else Tensor(v) for v in args], dim=axis)
    return run


# Shape arithmetic (as exporters write "zeros with this batch's size"): Shape yields a NumPy
# int64 array, which Slice, Gather, Concat and Unsqueeze then work on without autograd.
def shape(ctx, node, a) -> Run:
    ctx.allow(node, a, "start end")
    start, end = a.get("start", 0), a.get("end")
    return lambda model, args: np.array(args[0].shape, dtype=np.int64)[start:end]


def expand(ctx, node, a) -> Run:
    """Broadcast to a shape: adding zeros of that shape keeps the gradient (summed back)."""
    ctx.allow(node, a, "")

    def run(model, args):
        x, to = args[0], tuple(int(v) for v in np.asarray(args[1]).reshape(-1))
        x = x if isinstance(x, Tensor) else Tensor(x)
        return x + Tensor(np.zeros(np.broadcast_shapes(x.shape, to), dtype=x.dtype))
    return run


def gather(ctx, node, a) -> Run:
    ctx.allow(node, a, "axis")
    axis, index = int(a.get("axis", 0)), ctx.const(node, 1, "indices")

    def run(model, args):
        x = args[0]
        if isinstance(x, np.ndarray):
            return np.asarray(np.take(x, index, axis=axis))
        at = (slice(None),) * (axis % x.ndim)
        return x[at + ((int(index),) if index.ndim == 0 else (index.tolist(),))]
    return run


def unsqueeze(ctx, node, a) -> Run:
    ctx.allow(node, a, "axes")
    axes = a["axes"] if ctx.opset < 13 else ctx.const(node, 1, "axes")
    axes = sorted(int(v) for v in np.asarray(axes).reshape(-1))

    def run(model, args):
        x = args[0]
        rank = x.ndim + len(axes)
        for ax in sorted(v % rank for v in axes):
            x = np.expand_dims(x, ax) if isinstance(x, np.ndarray) else x.unsqueeze(ax)
        return x
    return run


def slice_(ctx, node, a) -> Run:
    """Constant starts/ends/axes/steps: a basic (view-like) slice, ``x[::2]`` and the like."""
    if ctx.opset < 10:
        ctx.allow(node, a, "starts ends axes")
        starts, ends = a["starts"], a["ends"]
        axes, steps = a.get("axes", range(len(starts))), [1] * len(starts)
    else:
        ctx.allow(node, a, "")
        starts, ends = ctx.const(node, 1, "starts"), ctx.const(node, 2, "ends")
        axes = ctx.const(node, 3, "axes") if ctx.has_input(node, 3) else range(len(starts))
        steps = ctx.const(node, 4, "steps") if ctx.has_input(node, 4) else [1] * len(starts)
    spec = [(int(ax), slice(int(b), int(e), int(st)))
            for b, e, ax, st in zip(starts, ends, axes, steps)]

    def run(model, args):
        x = args[0]
        index = [slice(None)] * x.ndim
        for ax, sl in spec:
            index[ax % x.ndim] = sl
        return x[tuple(index)]
    return run


def transpose(ctx, node, a) -> Run:
    ctx.allow(node, a, "perm")
    perm = [int(p) for p in a["perm"]] if "perm" in a else None
    return lambda model, args: args[0].permute(
        *(perm or reversed(range(args[0].ndim))))


def identity(ctx, node, a) -> Run:
    return lambda model, args: args[0]
