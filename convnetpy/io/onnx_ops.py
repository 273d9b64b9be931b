"""One ONNX translation per convnetpy Function, for ``onnx_export``.

Each emitter gets the graph being built, the Function's context object, the ONNX names of
its positional inputs (None where the input was None), its keyword settings, the input
arrays (for their shapes) and the output array (its shape), and returns the ONNX name of
the output. Settings ONNX lacks are rewritten exactly, not approximated:

- ``ceil_mode``: pooling is emitted with ``ceil_mode=0`` and the extra end padding that
  gives convnetpy's (PyTorch's) output size, so runtimes that round differently (the rule
  that the last window must start inside the input) cannot disagree; max pooling ignores
  padding, average pooling then counts only the positions PyTorch counts (below).
- ``count_include_pad`` is always written (ONNX's default is 0, PyTorch's True).
- ``divisor_override`` has no ONNX attribute: the window sums come from a depthwise
  convolution with a kernel of ones (zeros padded), times 1 / divisor.
- adaptive average pooling with bins of unequal size: two products with averaging
  matrices (exact); adaptive max pooling needs equal bins.
- padding modes reflect / replicate / circular become a ``Pad`` node (reflect / edge /
  wrap; wrap needs opset 19).

An op without a translation raises ``Unsupported``; the exporter names the layer.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


class Unsupported(Exception):
    """This call cannot be written as ONNX (the exporter adds the layer's name)."""


class Graph:
    """The nodes and initializers of the graph being built, and which values carry the
    batch axis first."""

    def __init__(self, onnx: Any, opset: int, names: dict[int, str]) -> None:
        self.onnx, self.opset = onnx, opset
        self.nodes: list = []
        self.inits: dict[str, Any] = {}
        self.names = names  # id(array) -> parameter/buffer name
        self.batched: set[str] = set()
        self.layer = ""
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array: Any, hint: str = "const") -> str:
        """An initializer holding ``array`` (a parameter's own name when it is one)."""
        name = self.names.get(id(array))
        if name is None or name in self.inits:
            if name is not None:
                return name
            name = self.fresh(hint)
        self.inits[name] = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), "shape")

    def node(self, op: str, inputs: list, **attrs: Any) -> str:
        while inputs and inputs[-1] is None:
            inputs = inputs[:-1]  # trailing optional inputs are left out
        out = self.fresh(op.lower())
        self.nodes.append(self.onnx.helper.make_node(
            op, ["" if i is None else i for i in inputs], [out],
            name=f"{self.layer or 'model'}/{op}_{self._count}", **attrs))
        return out


EMITTERS: dict[str, Callable] = {}


def _op(*names: str):
    def wrap(fn):
        for n in names:
            EMITTERS[n] = fn
        return fn
    return wrap


@_op("Add", "Sub", "Mul", "Div", "Pow", "MatMul")
def _binary(g, ctx, ins, kw, arrays, out):
    return g.node(type(ctx).__name__, ins[:2])


_SAME = {"Neg": "Neg", "Exp": "Exp", "Log": "Log", "Abs": "Abs", "Clone": "Identity",
         "_ReLU": "Relu", "_Sigmoid": "Sigmoid", "_Tanh": "Tanh", "_Dropout": "Identity"}


@_op(*_SAME)
def _unary(g, ctx, ins, kw, arrays, out):
    return g.node(_SAME[type(ctx).__name__], ins[:1])


@_op("_LeakyReLU")
def _leaky(g, ctx, ins, kw, arrays, out):
    return g.node("LeakyRelu", ins[:1], alpha=float(kw.get("negative_slope", 0.01)))


@_op("_Softmax", "_LogSoftmax")
def _softmax(g, ctx, ins, kw, arrays, out):
    return g.node(type(ctx).__name__[1:], ins[:1], axis=int(kw["dim"]))


@_op("_GELU")
def _gelu(g, ctx, ins, kw, arrays, out):
    x, dt, approx = ins[0], arrays[0].dtype, kw.get("approximate", "none")
    if g.opset >= 20:
        return g.node("Gelu", [x], approximate=approx)

    def c(v):
        return g.const(np.asarray(v, dtype=dt))
    if approx == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, c(0.044715)])])
        t = g.node("Tanh", [g.node("Mul", [inner, c(np.sqrt(2 / np.pi))])])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = g.node("Erf", [g.node("Mul", [x, c(1 / np.sqrt(2))])])
    return g.node("Mul", [g.node("Mul", [x, c(0.5)]), g.node("Add", [t, c(1.0)])])


@_op("Clamp")
def _clamp(g, ctx, ins, kw, arrays, out):
    dt = arrays[0].dtype
    lo, hi = kw.get("lo"), kw.get("hi")
    return g.node("Clip", [ins[0], None if lo is None else g.const(np.asarray(lo, dt)),
                           None if hi is None else g.const(np.asarray(hi, dt))])


@_op("Cast")
def _cast(g, ctx, ins, kw, arrays, out):
    return g.node("Cast", ins[:1], to=g.onnx.helper.np_dtype_to_tensor_dtype(out.dtype))


def _axes(dim, ndim: int) -> list[int]:
    if dim is None:
        return list(range(ndim))
    return [d % max(ndim, 1) for d in ((dim,) if isinstance(dim, int) else dim)]


@_op("Sum", "Mean")
def _reduce(g, ctx, ins, kw, arrays, out):
    axes = _axes(kw.get("dim"), arrays[0].ndim)
    keep = int(bool(kw.get("keepdim", False)))
    op = "ReduceSum" if type(ctx).__name__ == "Sum" else "ReduceMean"
    if op == "ReduceSum" or g.opset >= 18:
        return g.node(op, [ins[0], g.ints(axes)], keepdims=keep)
    return g.node(op, [ins[0]], axes=axes, keepdims=keep)


@_op("MaxAll")
def _max_all(g, ctx, ins, kw, arrays, out):
    return g.node("ReduceMax", ins[:1], keepdims=0)


@_op("Reshape")
def _reshape(g, ctx, ins, kw, arrays, out):
    x = arrays[0]
    if ins[0] in g.batched:
        if out.ndim == 0 or x.ndim == 0 or out.shape[0] != x.shape[0]:
            raise Unsupported(f"reshape {x.shape} -> {out.shape} mixes the batch axis with "
                              "others, so the graph could not take any batch size")
        return g.node("Reshape", [ins[0], g.ints([0, *out.shape[1:]])])  # 0: keep the batch
    return g.node("Reshape", [ins[0], g.ints(out.shape)])


@_op("Permute")
def _permute(g, ctx, ins, kw, arrays, out):
    return g.node("Transpose", ins[:1], perm=_axes(kw["axes"], arrays[0].ndim))


@_op("Cat")
def _cat(g, ctx, ins, kw, arrays, out):
    return g.node("Concat", list(ins), axis=int(kw.get("dim", 0)))


@_op("Index")
def _index(g, ctx, ins, kw, arrays, out):
    """Basic slices become one Slice; an integer or a 1-D list of integers a Gather."""
    x, index = arrays[0], kw["index"]
    index = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in index) == 1:
        at = index.index(Ellipsis)
        fill = (slice(None),) * (x.ndim - len(index) + 1)
        index = index[:at] + fill + index[at + 1:]
    starts, ends, axes, steps, gathers = [], [], [], [], []
    for ax, i in enumerate(index):
        if isinstance(i, slice):
            if i == slice(None):
                continue
            start, stop, step = i.indices(x.shape[ax])
            if step < 0 and stop < 0:
                stop = -(2 ** 63)  # "before the first element", which -1 would not mean
            starts.append(start), ends.append(stop), axes.append(ax), steps.append(step)
        elif isinstance(i, (int, np.integer)) or (
                isinstance(i, (list, np.ndarray)) and np.asarray(i).ndim == 1
                and np.asarray(i).dtype.kind in "iu"):
            gathers.append((ax, i))
        else:
            raise Unsupported(f"indexing with {i!r} has no ONNX translation here (slices, "
                              "integers and one list of integers are exported)")
    if len([a for a, i in gathers if not isinstance(i, (int, np.integer))]) > 1:
        raise Unsupported("indexing with more than one list of integers (NumPy's advanced "
                          "indexing) has no ONNX translation here")
    if ins[0] in g.batched and (0 in axes or any(a == 0 for a, _ in gathers)):
        raise Unsupported("indexing the batch axis would fix the batch size")
    y = ins[0]
    if axes:
        y = g.node("Slice", [y, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    for ax, i in sorted(gathers, key=lambda t: -t[0]):  # the last axis first: numbers hold
        idx = np.asarray(i, dtype=np.int64) % x.shape[ax]
        y = g.node("Gather", [y, g.const(idx, "index")], axis=ax)
    return y if y != ins[0] else g.node("Identity", [y])


# ----------------------------------------------------------------- convolution, padding
@_op("_Conv2d")
def _conv(g, ctx, ins, kw, arrays, out):
    (pt, pb), (pl, pr) = kw["padding"]
    return g.node("Conv", list(ins[:3]), kernel_shape=list(arrays[1].shape[2:]),
                  strides=list(kw["stride"]), pads=[pt, pl, pb, pr],
                  dilations=list(kw["dilation"]), group=int(kw["groups"]))


_PAD_MODES = {"constant": "constant", "zeros": "constant", "reflect": "reflect",
              "replicate": "edge", "circular": "wrap"}


def pad_node(g, x: str, ndim: int, pad, mode="constant", value=0.0,
             dtype=np.float32) -> str:
    """A Pad node for ``pad`` in F.pad's order: (before, after) pairs from the last axis
    backwards, as many as it pads."""
    onnx_mode = _PAD_MODES[mode]
    if onnx_mode == "wrap" and g.opset < 19:
        raise Unsupported(f"circular padding needs ONNX Pad mode 'wrap', which exists from "
                          f"opset 19; export with opset=19 or later (asked: {g.opset})")
    begins, ends = [0] * ndim, [0] * ndim
    for k in range(len(pad) // 2):
        begins[ndim - 1 - k], ends[ndim - 1 - k] = pad[2 * k], pad[2 * k + 1]
    value_in = g.const(np.asarray(value, dtype)) if onnx_mode == "constant" else None
    return g.node("Pad", [x, g.ints(begins + ends), value_in], mode=onnx_mode)


@_op("_Pad")
def _pad(g, ctx, ins, kw, arrays, out):
    return pad_node(g, ins[0], arrays[0].ndim, kw["pad"], kw.get("mode"),
                    kw.get("value", 0.0), arrays[0].dtype)


# ----------------------------------------------------------------- pooling
def _end_pads(x, out, kernel, stride, padding, dilation=(1, 1)) -> list[int]:
    """Per axis, the end padding for which floor rounding gives ``out``'s size: the
    padding itself, plus what ``ceil_mode`` added."""
    ends = []
    for ax in range(2):
        size, o = x.shape[2 + ax], out.shape[2 + ax]
        need = (o - 1) * stride[ax] + dilation[ax] * (kernel[ax] - 1) + 1 - size - padding[ax]
        ends.append(max(padding[ax], need))
    return ends


@_op("_MaxPool2d")
def _max_pool(g, ctx, ins, kw, arrays, out):
    k, s, p, d = kw["kernel"], kw["stride"], kw["padding"], kw["dilation"]
    eh, ew = _end_pads(arrays[0], out, k, s, p, d)
    return g.node("MaxPool", ins[:1], kernel_shape=list(k), strides=list(s),
                  pads=[p[0], p[1], eh, ew], dilations=list(d), ceil_mode=0)


@_op("_AvgPool2d")
def _avg_pool(g, ctx, ins, kw, arrays, out):
    x, k, s, p = arrays[0], kw["kernel"], kw["stride"], kw["padding"]
    eh, ew = _end_pads(x, out, k, s, p)
    div = kw.get("divisor_override")
    if div:  # window sums (zeros padded) by a depthwise conv of ones, then / divisor
        c = x.shape[1]
        ones = g.const(np.ones((c, 1) + tuple(k), dtype=x.dtype), "ones_kernel")
        total = g.node("Conv", [ins[0], ones], kernel_shape=list(k), strides=list(s),
                       pads=[p[0], p[1], eh, ew], group=c)
        return g.node("Mul", [total, g.const(np.asarray(1.0 / div, dtype=x.dtype))])
    attrs = dict(kernel_shape=list(k), strides=list(s), ceil_mode=0)
    if not kw.get("count_include_pad", True):
        return g.node("AveragePool", ins[:1], pads=[p[0], p[1], eh, ew], count_include_pad=0,
                      **attrs)
    if eh == p[0] and ew == p[1]:
        return g.node("AveragePool", ins[:1], pads=[p[0], p[1], p[0], p[1]],
                      count_include_pad=1, **attrs)
    # ceil_mode's extra window: PyTorch counts the padding but not what lies past it, so
    # the padding becomes real zeros and only the overhang is left out of the count
    y = ins[0] if not any(p) else pad_node(g, ins[0], x.ndim, (p[1], p[1], p[0], p[0]),
                                           dtype=x.dtype)
    return g.node("AveragePool", [y], pads=[0, 0, eh - p[0], ew - p[1]], count_include_pad=0,
                  **attrs)


def _bins(size: int, out: int, dtype) -> np.ndarray:
    """The (out, size) matrix that averages PyTorch's adaptive bins along one axis: bin i
    spans floor(i * size / out) to ceil((i + 1) * size / out)."""
    m = np.zeros((out, size), dtype=dtype)
    for i in range(out):
        lo, hi = (i * size) // out, -(-(i + 1) * size // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


@_op("_AdaptiveAvgPool2d", "_AdaptiveMaxPool2d")
def _adaptive(g, ctx, ins, kw, arrays, out):
    kind = "Average" if "Avg" in type(ctx).__name__ else "Max"
    (h, w), (oh, ow) = arrays[0].shape[2:], out.shape[2:]
    if (oh, ow) == (1, 1):
        return g.node(f"Global{kind}Pool", ins[:1])
    if h % oh == 0 and w % ow == 0:
        attrs = {"count_include_pad": 0} if kind == "Average" else {}
        return g.node(f"{kind}Pool", ins[:1], kernel_shape=[h // oh, w // ow],
                      strides=[h // oh, w // ow], **attrs)
    if kind == "Max":
        raise Unsupported(
            f"adaptive max pooling from {h}x{w} to {oh}x{ow} has bins of unequal size, which "
            f"no ONNX pooling op expresses; give it an input whose size is a multiple of the "
            f"output size, or an output size of 1")
    # unequal bins: the mean over a bin's rectangle is the mean of its rows' means, so two
    # matrix products with fixed averaging matrices give it exactly (upsampling included)
    dt = arrays[0].dtype
    cols = g.node("MatMul", [ins[0], g.const(_bins(w, ow, dt).T, "bins_w")])
    return g.node("MatMul", [g.const(_bins(h, oh, dt), "bins_h"), cols])


# ----------------------------------------------------------------- linear, normalisation
@_op("_Linear")
def _linear(g, ctx, ins, kw, arrays, out):
    if arrays[0].ndim == 2:
        return g.node("Gemm", list(ins[:3]), transB=1)
    y = g.node("MatMul", [ins[0], g.node("Transpose", [ins[1]], perm=[1, 0])])
    return y if ins[2] is None else g.node("Add", [y, ins[2]])


@_op("_BatchNorm")
def _batch_norm(g, ctx, ins, kw, arrays, out):
    mean, var = kw.get("running_mean"), kw.get("running_var")
    if kw.get("training", False) or mean is None or var is None:
        raise Unsupported("batch norm normalises with the batch's own statistics here "
                          "(training mode, or track_running_stats=False); ONNX export needs "
                          "running statistics in evaluation mode")
    c, dt = arrays[0].shape[1], arrays[0].dtype
    scale = ins[1] or g.const(np.ones(c, dt), "bn_scale")
    bias = ins[2] or g.const(np.zeros(c, dt), "bn_bias")
    return g.node("BatchNormalization", [ins[0], scale, bias, g.const(mean, "mean"),
                                         g.const(var, "var")], epsilon=float(kw.get("eps")))
