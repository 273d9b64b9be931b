"""The shape-only pass behind ``summary`` and ``check``.

The model runs once in evaluation mode under a tracer: convolutions, linear layers and
pooling compute only their output shape (zeros of that shape), every other op runs on those
zeros at batch size 1, and each Function call is recorded against the innermost module that
is executing. What the call costs is the op's own declaration, asked at the batch size of
the summary with stand-ins that hold no data: ``cost`` (FLOPs, MACs, memory kept and
used), ``window`` (the size formula) and ``receptive_field``. The tracer keeps, per tensor it
produced (a ``Mark``, nothing written onto the tensor), its receptive field (size, jump,
start per axis) combined through residual adds and concatenations, whether a gradient flows
into it, whether its first axis is the batch, and the 1x1 convolution that fed it, if any,
so that a following KxK convolution can report what the reduction saved. Every call is
also kept as an ``OpCall`` for the training-memory estimate (memory.py).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..autograd import Cost, Window, no_grad, set_tracer
from ..nn.module import Module
from ..shape import (
    INPUT_RF,
    ReceptiveField,
    conv_output_size,
    conv_size_formula,
    inexact_note,
)
from ..tensor import Tensor
from .memory import OpCall


@dataclass
class Row:
    path: str
    module: Module
    depth: int
    calls: int = 0
    out_shape: tuple | None = None
    # at the batch size of the pass (every op's own count, Function.cost)
    macs: int = 0
    flops_forward: int = 0
    flops_backward: int = 0
    act_bytes: int = 0  # outputs of its ops, views excluded
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
    batched: bool = False  # its first axis is the batch (it was computed from the input)


class Tracer:
    def __init__(self, model: Module, batch: int = 1) -> None:
        self.model = model
        self.batch = batch
        self.rows: dict[str, Row] = {}
        self.calls: list[OpCall] = []
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

    def at_batch(self, a: Any, batched: bool) -> Any:
        """``a`` as the op would see it at the pass's batch size: a read-only stand-in of
        that shape that holds no data (an array of one element, broadcast)."""
        if not batched or not isinstance(a, np.ndarray) or a.ndim == 0 or a.shape[0] != 1:
            return a
        return np.broadcast_to(np.zeros((), a.dtype), (self.batch,) + a.shape[1:])

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
        marks = [self.mark(a) if isinstance(a, Tensor) else None for a in args]
        known = [m for m in marks if m is not None]
        rf = max([m.rf for m in known] or [INPUT_RF], key=lambda r: r[0][0] * r[0][1])
        src = known[0].src if ctx.elementwise and known else None
        batched = any(m.batched for m in known)
        row = self.stack[-1] if self.stack else None
        arrays = [self.at_batch(a.data, m.batched) if m is not None else a
                  for a, m in zip(args, marks)]
        out = self.at_batch(result.data, batched)
        rf = ctx.receptive_field(rf, *arrays, **kwargs)
        # a gradient flows back into an input that is a trained parameter or was computed
        # from one (the model's input gets none)
        needs = tuple(m is not None and (a.requires_grad or m.trained)
                      for a, m in zip(args, marks))
        cost = ctx.cost(needs, out, *arrays, **kwargs)
        cost = cost if isinstance(cost, Cost) else Cost(*cost)  # a user's (forward, backward)
        win = ctx.window(*arrays, **kwargs)
        if row is not None:
            row.flops_forward += int(cost.forward)
            row.flops_backward += int(cost.backward)
            row.macs += int(cost.macs)
            if not ctx.view:
                row.act_bytes += int(out.nbytes)
            if win is not None:
                self._window_formula(row, arrays[0], win)
                if win.weight is not None:
                    self._weighted(row, arrays[0], out, win, cost.macs, known[0].src)
        if win is not None and win.weight is not None:
            src = row if win.kernel == (1, 1) else None
        self.calls.append(OpCall(
            row.path if row is not None else "", id(result), int(out.nbytes), ctx.view,
            any(needs), [(id(a), int(x.nbytes), need, m is not None and a.requires_grad)
                         for a, x, m, need in zip(args, arrays, marks, needs)
                         if m is not None], cost))
        self._marks[id(result)] = (weakref.ref(result), Mark(rf, src, any(needs), batched))

    def _window_formula(self, row: Row, x, win: Window) -> None:
        kernel, stride, pads, dilation, ceil_mode = win[:5]
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

    def _weighted(self, row: Row, x, out, win: Window, macs: int, src: Row | None) -> None:
        """A filter window's comparison with an unshared and a dense layer, and the saving
        of a 1x1 reduction before it (on the reducing layer's row)."""
        n, cout, oh, ow = out.shape
        cin = x.shape[1]
        g = win.groups
        kh, kwid = win.kernel
        in_elems, out_elems = int(np.prod(x.shape[1:])), cout * oh * ow
        has_bias = getattr(row.module, "bias", None) is not None
        row.conv = {
            "shared_params": int(np.prod(win.weight)) + (cout if has_bias else 0),
            "unshared_params": out_elems * ((cin // g) * kh * kwid + (1 if has_bias else 0)),
            "dense_params": in_elems * out_elems + (out_elems if has_bias else 0),
            "macs_per_image": macs // n,
        }
        if src is not None and src.conv is not None and (kh, kwid) != (1, 1):
            red = src.conv.get("reduction")
            if red is not None:
                per_image = macs // n
                direct = cout * oh * ow * (red[0] // g) * kh * kwid
                own = src.conv["macs_per_image"]
                saved = direct - per_image - own
                src.notes.append(
                    f"1x1 reduction {red[0]} -> {red[1]} channels: the following "
                    f"{kh}x{kwid} conv at {row.path or '(model)'} costs {per_image:,} MACs "
                    f"per image instead of {direct:,}; with this layer's own {own:,} "
                    f"that saves {saved:,} MACs")
        if (kh, kwid) == (1, 1) and cout < cin:
            row.conv["reduction"] = (cin, cout)


def run_traced(model: Module, x: Tensor, tracer) -> Any:
    """``model(x)`` in evaluation mode without a graph, with ``tracer`` as the autograd
    tracer (``autograd.set_tracer``: it sees every Function) and its ``pre(module, inputs)``
    and ``post(module, inputs, output)`` hooked on every module; the model's modes, its
    hooks and the tracer before are put back. Returns the output."""
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(tracer.pre))
        handles.append(m.register_forward_hook(tracer.post))
    prev = set_tracer(tracer)
    try:
        model.eval()
        with no_grad():
            return model(x)
    finally:
        set_tracer(prev)
        for h in handles:
            h.remove()
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def trace(model: Module, input_size: tuple[int, ...], dtype: Any = np.float32) -> Tracer:
    """Run ``model`` once on zeros of shape (1, *input_size[1:]) in evaluation mode, without
    computing any convolution; return the tracer with one Row per module called, its
    counts at batch size ``input_size[0]``."""
    tracer = Tracer(model, int(input_size[0]))
    x = Tensor(np.zeros((1,) + tuple(input_size[1:]), dtype=dtype))
    tracer._marks[id(x)] = (weakref.ref(x), Mark(batched=True))
    run_traced(model, x, tracer)
    return tracer
