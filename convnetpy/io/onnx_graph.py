"""The ONNX operators ``convnetpy.onnx.load`` understands: one builder per op type that turns a
node into a step of the loaded model (a real ``nn`` layer where one exists, so the summary,
state_dict and dashboard see it; a few lines of F./Tensor code for the structural ops).

A builder gets the load context ``ctx`` (constants, ranks from shape inference, module
registration), the node and its attributes, and returns ``run(model, args) -> Tensor``.
Asymmetric or ``auto_pad=SAME_*`` padding of a window op becomes an explicit ``F.pad`` before
the layer (PyTorch's layers only pad symmetrically).

>>> sorted(BUILDERS)[:4]
['Add', 'AveragePool', 'BatchNormalization', 'Concat']
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .. import functional as F
from .. import nn
from ..tensor import Tensor
from .onnx_structure import (
    Run,
    _binary,
    concat,
    erf,
    expand,
    flatten,
    gather,
    identity,
    module_run,
    pad,
    reshape,
    shape,
    slice_,
    transpose,
    unsqueeze,
)


def _same_pads(size: tuple[int, int], k, s, d, upper: bool) -> tuple[int, int, int, int]:
    """ONNX auto_pad SAME_UPPER/SAME_LOWER: output ceil(H/S), the odd pixel at the end
    (UPPER) or the beginning (LOWER); returned as F.pad's (left, right, top, bottom)."""
    out = []
    for n, kk, ss, dd in zip(size, k, s, d):
        total = max((math.ceil(n / ss) - 1) * ss + (kk - 1) * dd + 1 - n, 0)
        small = total // 2
        out.append((small, total - small) if upper else (total - small, small))
    (t, b), (left, r) = out
    return left, r, t, b


def _window(ctx, node, a: dict, k, s, d, value: float):
    """(symmetric padding for the layer, a function padding the input first or None)."""
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        upper = auto == "SAME_UPPER"
        return (0, 0), lambda x: F.pad(x, _same_pads(x.shape[-2:], k, s, d, upper),
                                       value=value)
    if auto not in ("NOTSET", "VALID"):
        ctx.fail(node, f"auto_pad={auto!r} is not supported (NOTSET, VALID, SAME_UPPER, "
                       "SAME_LOWER are)")
    pads = [0, 0, 0, 0] if auto == "VALID" else list(a.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4 or min(pads) < 0:
        ctx.fail(node, f"pads={pads} is not supported (4 non-negative values for a 2-D window)")
    t, left, b, r = pads
    if (t, left) == (b, r):
        return (t, left), None
    if a.get("ceil_mode", 0):
        ctx.fail(node, f"ceil_mode=1 with asymmetric pads={pads} is not supported")
    return (0, 0), lambda x: F.pad(x, (left, r, t, b), value=value)


def _windowed(ctx, node, layer, pre) -> Run:
    name = ctx.add_module(node, layer)
    if pre is None:
        return module_run(name)
    return lambda model, args: model._modules[name](pre(args[0]))


def _pair(ctx, node, a, key, default):
    v = tuple(int(x) for x in a.get(key, default))
    if len(v) != 2:
        ctx.fail(node, f"{key}={list(v)} is not supported (2-D windows only)")
    return v


def conv(ctx, node, a) -> Run:
    ctx.allow(node, a, "kernel_shape strides pads dilations group auto_pad")
    w = ctx.const(node, 1, "weight")
    b = ctx.const(node, 2, "bias") if ctx.has_input(node, 2) else None
    if w.ndim != 4:
        ctx.fail(node, f"a {w.ndim - 2}-D convolution (weight {w.shape}) is not supported; "
                       "only 2-D (N, C, H, W) convolutions are")
    k = tuple(w.shape[2:])
    if tuple(a.get("kernel_shape", k)) != k:
        ctx.fail(node, f"kernel_shape={a['kernel_shape']} does not match the weight {w.shape}")
    s, d = _pair(ctx, node, a, "strides", (1, 1)), _pair(ctx, node, a, "dilations", (1, 1))
    g = int(a.get("group", 1))
    padding, pre = _window(ctx, node, a, k, s, d, 0.0)
    layer = nn.Conv2d(w.shape[1] * g, w.shape[0], k, s, padding, d, g, bias=b is not None,
                      dtype=w.dtype)
    layer.weight.data = w.copy()
    if b is not None:
        layer.bias.data = b.reshape(-1).copy()
    ctx.map_weights(node, layer, {1: "weight", 2: "bias"})
    return _windowed(ctx, node, layer, pre)


def max_pool(ctx, node, a) -> Run:
    ctx.allow(node, a, "kernel_shape strides pads dilations ceil_mode auto_pad storage_order")
    if len([o for o in node.output if o]) > 1:
        ctx.fail(node, "the Indices output is not supported")
    k = _pair(ctx, node, a, "kernel_shape", ())
    s, d = _pair(ctx, node, a, "strides", (1, 1)), _pair(ctx, node, a, "dilations", (1, 1))
    padding, pre = _window(ctx, node, a, k, s, d, -np.inf)
    layer = nn.MaxPool2d(k, s, padding, d, ceil_mode=bool(a.get("ceil_mode", 0)))
    return _windowed(ctx, node, layer, pre)


def avg_pool(ctx, node, a) -> Run:
    ctx.allow(node, a, "kernel_shape strides pads dilations ceil_mode auto_pad "
                       "count_include_pad")
    k = _pair(ctx, node, a, "kernel_shape", ())
    s = _pair(ctx, node, a, "strides", (1, 1))
    if _pair(ctx, node, a, "dilations", (1, 1)) != (1, 1):
        ctx.fail(node, f"dilations={a['dilations']} is not supported for AveragePool")
    include = bool(a.get("count_include_pad", 0))
    padding, pre = _window(ctx, node, a, k, s, (1, 1), 0.0)
    layer = nn.AvgPool2d(k, s, padding, ceil_mode=bool(a.get("ceil_mode", 0)),
                         count_include_pad=include or pre is not None)
    if include or pre is None:
        return _windowed(ctx, node, layer, pre)
    name = ctx.add_module(node, layer)

    def run(model, args):
        # explicit zero padding counted by the layer; divide by the share of real pixels in
        # each window (the same pooling of ones) so that only those are averaged
        x = args[0]
        ones = Tensor(np.ones((1, 1) + tuple(x.shape[-2:]), dtype=x.dtype))
        return model._modules[name](pre(x)) / F.avg_pool2d(pre(ones), k, s)
    return run


def global_avg_pool(ctx, node, a) -> Run:
    ctx.allow(node, a, "")
    return module_run(ctx.add_module(node, nn.AdaptiveAvgPool2d(1)))


def batch_norm(ctx, node, a) -> Run:
    ctx.allow(node, a, "epsilon momentum training_mode spatial")
    if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        ctx.fail(node, "training_mode=1 (batch statistics outputs) is not supported; export "
                       "the model in inference mode")
    scale, bias, mean, var = (ctx.const(node, i, n) for i, n in
                              enumerate(("scale", "B", "input_mean", "input_var"), 1))
    rank = ctx.rank(node.input[0])
    cls = nn.BatchNorm1d if rank in (2, 3) else nn.BatchNorm2d
    # ONNX's momentum weights the old statistic, PyTorch's the new one
    # float32 attributes, printed as written (1e-05, not 9.999999747378752e-06)
    eps, momentum = (float(f"{float(a.get(k, v)):.7g}") for k, v in (("epsilon", 1e-5),
                                                                     ("momentum", 0.9)))
    layer = cls(scale.size, eps=eps, momentum=round(1.0 - momentum, 7), dtype=scale.dtype)
    layer.weight.data, layer.bias.data = scale.copy(), bias.astype(scale.dtype, copy=True)
    layer.running_mean.data = mean.astype(scale.dtype)
    layer.running_var.data = var.astype(scale.dtype)
    ctx.map_weights(node, layer, {1: "weight", 2: "bias", 3: "running_mean", 4: "running_var"})
    return module_run(ctx.add_module(node, layer))


def _linear(ctx, node, w: np.ndarray, bias_index: tuple | None) -> Run:
    """nn.Linear from a (in, out) matrix; ``bias_index`` = (bias node, its input index)."""
    b = None
    if bias_index is not None:
        b_node, i = bias_index
        b = ctx.const(b_node, i, "bias")
        try:
            b = np.broadcast_to(b, (w.shape[1],)).astype(w.dtype, copy=True)
        except ValueError:
            ctx.fail(b_node, f"bias of shape {b.shape} does not broadcast to ({w.shape[1]},)")
    layer = nn.Linear(w.shape[0], w.shape[1], bias=b is not None, dtype=w.dtype)
    layer.weight.data = np.array(w.T, order="C")  # a writable copy
    if b is not None:
        layer.bias.data = b.copy()
    return module_run(ctx.add_module(node, layer))


def gemm(ctx, node, a) -> Run:
    ctx.allow(node, a, "alpha beta transA transB")
    for key, ok in (("alpha", 1.0), ("beta", 1.0), ("transA", 0)):
        if a.get(key, ok) != ok:
            ctx.fail(node, f"{key}={a[key]} is not supported (only {key}={ok})")
    w = ctx.const(node, 1, "B")
    if w.ndim != 2:
        ctx.fail(node, f"B must be a matrix, got shape {w.shape}")
    w = w.T if a.get("transB", 0) else w
    ctx.map_weights(node, None, {1: "weight", 2: "bias"})
    return _linear(ctx, node, w, (node, 2) if ctx.has_input(node, 2) else None)


def matmul(ctx, node, a) -> Run:
    """MatMul by a constant matrix is a Linear layer; a following Add of a constant vector
    becomes its bias (the loader fuses them). Two computed operands: ``x @ y``."""
    ctx.allow(node, a, "")
    w = ctx.maybe_const(node.input[1])
    if w is None or w.ndim != 2:
        return lambda model, args: args[0] @ args[1]
    add = ctx.fusable_add(node)
    ctx.map_weights(node, None, {1: "weight"})
    if add is not None:
        add_node, i = add
        ctx.map_weights(add_node, None, {i: "bias"}, into=node)
        return _linear(ctx, node, w, (add_node, i))
    return _linear(ctx, node, w, None)


def _activation(layer_fn) -> Callable:
    def build(ctx, node, a) -> Run:
        layer = layer_fn(ctx, node, a)
        return module_run(ctx.add_module(node, layer))
    return build


def _softmax_layer(cls):
    def make(ctx, node, a):
        ctx.allow(node, a, "axis")
        rank = ctx.rank(node.input[0])
        axis = int(a.get("axis", -1 if ctx.opset >= 13 else 1))
        if ctx.opset < 13 and rank not in (None, 2) and axis % rank != rank - 1:
            ctx.fail(node, f"axis={axis} on a rank-{rank} input flattens before opset 13, "
                           "which is not supported")
        return cls(dim=axis)
    return make


def _gelu(ctx, node, a):
    ctx.allow(node, a, "approximate")
    return nn.GELU(a.get("approximate", "none"))


def _leaky(ctx, node, a):
    ctx.allow(node, a, "alpha")
    return nn.LeakyReLU(float(f"{float(a.get('alpha', 0.01)):.7g}"))


def _plain(cls):
    def make(ctx, node, a):
        ctx.allow(node, a, "")
        return cls()
    return make


def dropout(ctx, node, a) -> Run:
    """The identity in evaluation; a real nn.Dropout so that fine-tuning keeps it."""
    ctx.allow(node, a, "ratio seed")
    if len([o for o in node.output if o]) > 1:
        ctx.fail(node, "the mask output is not supported")
    ratio = a.get("ratio", 0.5)
    if ctx.has_input(node, 1):
        r = ctx.maybe_const(node.input[1])
        ratio = 0.5 if r is None else float(np.asarray(r).reshape(-1)[0])
    return module_run(ctx.add_module(node, nn.Dropout(float(ratio))))


BUILDERS: dict[str, Callable[..., Run]] = {
    "Conv": conv, "MaxPool": max_pool, "AveragePool": avg_pool,
    "GlobalAveragePool": global_avg_pool, "BatchNormalization": batch_norm,
    "Gemm": gemm, "MatMul": matmul,
    "Relu": _activation(_plain(nn.ReLU)), "Sigmoid": _activation(_plain(nn.Sigmoid)),
    "Tanh": _activation(_plain(nn.Tanh)), "LeakyRelu": _activation(_leaky),
    "Gelu": _activation(_gelu), "Softmax": _activation(_softmax_layer(nn.Softmax)),
    "LogSoftmax": _activation(_softmax_layer(nn.LogSoftmax)),
    "Flatten": flatten, "Reshape": reshape, "Pad": pad, "Concat": concat,
    "Add": _binary(lambda x, y: x + y), "Sub": _binary(lambda x, y: x - y),
    "Mul": _binary(lambda x, y: x * y), "Div": _binary(lambda x, y: x / y),
    "Identity": identity, "Dropout": dropout, "Transpose": transpose,
    "Slice": slice_, "Shape": shape, "Expand": expand, "Gather": gather,
    "Unsqueeze": unsqueeze, "Erf": erf,
}
