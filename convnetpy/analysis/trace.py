"""The shape-only pass behind ``summary`` and ``check``.

The model runs once in evaluation mode under a tracer: convolutions, linear layers and
pooling compute only their output shape (zeros of that shape), every other op runs on those
zeros at batch size 1, and each Function call is recorded against the innermost module that
is executing, with its FLOPs (each op's ``cost``). The tracer keeps, per tensor it produced
(a ``Mark``, nothing written onto the tensor), its receptive field (size, jump, start per
axis; each op's ``receptive_field``), combined through residual adds and concatenations,
whether a gradient flows into it, and the 1x1 convolution that fed it, if any, so that a
following KxK convolution can report what the reduction saved.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..autograd import no_grad, set_tracer
from ..nn.module import Module
from ..shape import (
    INPUT_RF,
    ReceptiveField,
    conv_output_size,
    conv_size_formula,
    inexact_note,
)
from ..tensor import Tensor

VIEWS = {"Reshape", "Permute"}  # ops whose output shares the input's memory
# element-wise layers through which "this tensor came from that 1x1 conv" still holds
LINEAGE = {"ReLU", "LeakyReLU", "BatchNorm", "Dropout", "Sigmoid", "Tanh"}


@dataclass
class Row:
    path: str
    module: Module
    depth: int
    calls: int = 0
    out_shape: tuple | None = None
    macs: int = 0
    flops_forward: int = 0  # every op's own count (Function.cost), per image
    flops_backward: int = 0
    act_elems: int = 0
    formula: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rf: ReceptiveField | None = None
    conv: dict | None = None  # conv-vs-dense numbers for a Conv2d row


@dataclass
class Mark:
    """What the pass knows of a tensor it produced: its receptive field, the 1x1 conv row
    that fed it (through element-wise layers), and whether a gradient flows into it."""
    rf: ReceptiveField = INPUT_RF
    src: Row | None = None
    trained: bool = False


class Tracer:
    def __init__(self, model: Module) -> None:
        self.model = model
        self.rows: dict[str, Row] = {}
        self.stack: list[Row] = []
        self.names = {}
        for name, m in model.named_modules():
            self.names.setdefault(id(m), name)
        # id -> (a weak reference to the tensor, its Mark): a freed tensor's id may be
        # reused, so a mark counts only while its tensor is the one asked about
        self._marks: dict[int, tuple[weakref.ref, Mark]] = {}

    def mark(self, t: Tensor) -> Mark:
        """The Mark of ``t`` (the default for a tensor the pass did not produce: the
        model's input, a parameter)."""
        ref, m = self._marks.get(id(t), (None, None))
        return m if ref is not None and ref() is t else Mark()

    # ----- module hooks -----
    def pre(self, module: Module, inputs: tuple) -> None:
        path = self.names.get(id(module), "?")
        row = self.rows.get(path)
        if row is None:
            depth = 0 if path == "" else path.count(".") + 1
            row = self.rows[path] = Row(path, module, depth)
        row.calls += 1
        self.stack.append(row)

    def post(self, module: Module, inputs: tuple, output: Any) -> None:
        row = self.stack.pop()
        out = output[0] if isinstance(output, tuple) else output
        if isinstance(out, Tensor):
            row.out_shape = out.shape
            row.rf = self.mark(out).rf

    # ----- op records -----
    def record(self, ctx: Any, args: tuple, kwargs: dict, result: Tensor) -> None:
        kind = type(ctx).__name__.lstrip("_")
        tensors = [a for a in args if isinstance(a, Tensor)]
        marks = [self.mark(t) for t in tensors]
        rf = max([m.rf for m in marks] or [INPUT_RF], key=lambda r: r[0][0] * r[0][1])
        src = marks[0].src if kind in LINEAGE and marks else None
        row = self.stack[-1] if self.stack else None
        x = tensors[0].data if tensors else None
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        rf = ctx.receptive_field(rf, *arrays, **kwargs)
        # a gradient flows back into an input that is a trained parameter or was computed
        # from one (the model's input gets none)
        needs = tuple(isinstance(a, Tensor) and (a.requires_grad or self.mark(a).trained)
                      for a in args)
        if row is not None:
            fwd, bwd = ctx.cost(needs, result.data, *arrays, **kwargs)
            row.flops_forward += int(fwd)
            row.flops_backward += int(bwd)
        if kind == "Conv2d":
            w = args[1].data
            if row is not None:
                self._conv(row, x, w, result.data, kwargs, marks[0].src)
            src = row if w.shape[2:] == (1, 1) else None
        elif kind in ("MaxPool2d", "AvgPool2d"):
            if row is not None:
                self._window_formula(row, x, kwargs["kernel"], kwargs["stride"],
                                     [(p, p) for p in kwargs["padding"]],
                                     kwargs.get("dilation", (1, 1)), kwargs["ceil_mode"])
        elif kind == "Linear":
            w = args[1].data
            if row is not None:
                row.macs += int(np.prod(result.shape[:-1])) * w.shape[0] * w.shape[1]
        self._marks[id(result)] = (weakref.ref(result), Mark(rf, src, any(needs)))
        if row is not None and kind not in VIEWS:
            row.act_elems += int(result.data.size)

    def _window_formula(self, row, x, kernel, stride, pads, dilation, ceil_mode) -> None:
        for ax, axis in enumerate(("height", "width")):
            size = x.shape[2 + ax]
            formula = conv_size_formula(size, kernel[ax], stride[ax], pads[ax], dilation[ax])
            out = conv_output_size(size, kernel[ax], stride[ax], pads[ax], dilation[ax])
            shown = f"{axis[0].upper()}: {formula}"
            if not formula.endswith(f"= {out}") and not ceil_mode:
                shown += f" -> {out}"
            row.formula.append(shown)
            note = None if ceil_mode else inexact_note(axis, size, kernel[ax], stride[ax],
                                                       pads[ax], dilation[ax])
            if note:
                row.notes.append(note)

    def _conv(self, row: Row, x, w, out, kw, src: Row | None) -> None:
        n, cout, oh, ow = out.shape
        cin = x.shape[1]
        g = kw["groups"]
        kh, kwid = w.shape[2:]
        macs = n * cout * oh * ow * (cin // g) * kh * kwid
        row.macs += macs
        self._window_formula(row, x, (kh, kwid), kw["stride"], kw["padding"], kw["dilation"],
                             False)
        in_elems, out_elems = int(np.prod(x.shape[1:])), cout * oh * ow
        has_bias = getattr(row.module, "bias", None) is not None
        row.conv = {
            "shared_params": int(w.size) + (cout if has_bias else 0),
            "unshared_params": out_elems * ((cin // g) * kh * kwid + (1 if has_bias else 0)),
            "dense_params": in_elems * out_elems + (out_elems if has_bias else 0),
            "macs_per_image": macs // n,
        }
        if src is not None and src.conv is not None and (kh, kwid) != (1, 1):
            red = src.conv.get("reduction")
            if red is not None:
                cin_full = red[0]
                direct = n * cout * oh * ow * (cin_full // g) * kh * kwid
                own = src.conv["macs_per_image"] * n
                saved = direct - macs - own
                src.notes.append(
                    f"1x1 reduction {red[0]} -> {red[1]} channels: the following "
                    f"{kh}x{kwid} conv at {row.path or '(model)'} costs {macs:,} MACs per "
                    f"image instead of {direct:,}; with this layer's own {own:,} "
                    f"that saves {saved:,} MACs")
        if (kh, kwid) == (1, 1) and cout < cin:
            row.conv["reduction"] = (cin, cout)


def trace(model: Module, input_size: tuple[int, ...], dtype: Any = np.float32) -> Tracer:
    """Run ``model`` once on zeros of shape (1, *input_size[1:]) in evaluation mode, without
    computing any convolution; return the tracer with one Row per module called."""
    tracer = Tracer(model)
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(tracer.pre))
        handles.append(m.register_forward_hook(tracer.post))
    x = Tensor(np.zeros((1,) + tuple(input_size[1:]), dtype=dtype))  # its Mark: the default
    prev = set_tracer(tracer)
    try:
        model.eval()
        with no_grad():
            model(x)
    finally:
        set_tracer(prev)
        for h in handles:
            h.remove()
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    return tracer
