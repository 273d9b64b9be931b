"""Export a convnetpy model to ONNX (``convnetpy.onnx.export``, ``convnetpy export``).

The model runs once in evaluation mode under a tracer (``analysis.trace.run_traced``; the
ops it would run shape-only are computed too):
every autograd Function it calls becomes ONNX nodes (``onnx_ops``: one translation per
op, so module forwards written with the functional API, residual adds, concatenations and
reshapes export the same way layers do), parameters and buffers become initializers under
their own names, and ops on constants alone are folded. The trace runs at a batch of 7
random inputs: a reshape that keeps the batch axis is written with ONNX's "copy this axis",
and a constant made in ``forward`` with the batch's size whose rows are equal (the zeros a
CIFAR ResNet's shortcut concatenates) is expanded to the batch at run time, so the graph
takes any batch size ("input" has a symbolic axis 0, "batch"; the output is "logits").

What cannot be exported raises a ValueError that names the layer: an op with no ONNX
translation, a layer that computes outside convnetpy's ops (with NumPy on ``.data``),
unequal adaptive-pooling bins, batch norm without running statistics, circular padding
before opset 19.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..analysis.trace import run_traced
from ..nn.module import Module
from ..tensor import Tensor
from ..version import __version__
from .files import write_atomic
from .onnx_ops import EMITTERS, Graph, Unsupported

DEFAULT_OPSET = 17
MIN_OPSET = 13
TRACE_BATCH = 7  # an unusual size, so that a constant with the batch's size stands out


class MissingOnnx(ImportError):
    """onnx (or onnxruntime) is not installed."""


def require_onnx(what: str = "ONNX export") -> Any:
    """The ``onnx`` module, or an ImportError that says ``what`` needs it and how to
    install it (export and import alike)."""
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401
    except ImportError as e:
        raise MissingOnnx(f'{what} needs the onnx package: pip install "convnetpy[onnx]"'
                          ) from e
    return onnx


def _layer(module: Module | None, path: str) -> str:
    return f"layer '{path or '(model)'}'" + (f" ({type(module).__name__})" if module else "")


class _Recorder:
    """The tracer: turns each Function call into ONNX nodes as the model runs."""

    def __init__(self, model: Module, g: Graph) -> None:
        self.g = g
        self.paths = {}
        for name, m in model.named_modules():
            self.paths.setdefault(id(m), name)
        self.params = {}  # id(Tensor) -> the Tensor's array (what g.names knows)
        for _, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t is not None:
                self.params[id(t)] = t.data
        self.stack: list[Module] = []
        self.values: dict[int, tuple[weakref.ref, str]] = {}  # graph tensors -> names
        self.folded: dict[int, tuple[weakref.ref, np.ndarray]] = {}  # computed constants

    def where(self) -> str:
        m = self.stack[-1] if self.stack else None
        return _layer(m, self.paths.get(id(m), "") if m is not None else "")

    def name_of(self, t: Any) -> str | None:
        ref, name = self.values.get(id(t), (None, None))
        return name if ref is not None and ref() is t else None

    def set(self, t: Tensor, name: str) -> None:
        self.values[id(t)] = (weakref.ref(t), name)

    def pre(self, module: Module, inputs: tuple) -> None:
        self.stack.append(module)
        self.g.layer = self.paths.get(id(module), "")

    def post(self, module: Module, inputs: tuple, output: Any) -> None:
        where = self.where()
        self.stack.pop()
        self.g.layer = self.paths.get(id(self.stack[-1]), "") if self.stack else ""
        fed = any(self.name_of(t) for t in inputs if isinstance(t, Tensor))
        outs = output if isinstance(output, tuple) else (output,)
        if fed and any(isinstance(o, Tensor) and self.name_of(o) is None for o in outs):
            raise ValueError(
                f"cannot export {where}: its output is not computed from its input by "
                f"convnetpy ops (a NumPy computation on .data, or a new Tensor), so the ONNX "
                f"graph would lose the input; write it with Tensor operations and convnetpy."
                f"functional")

    def constant(self, t: Any) -> str:
        """The initializer for a Tensor that is not computed from the input."""
        ref, data = self.folded.get(id(t), (None, None))
        data = data if ref is not None and ref() is t else t.data
        known = self.params.get(id(t), data)
        if id(known) in self.g.names:
            return self.g.const(known)  # a parameter or buffer, under its own name
        if data.ndim >= 1 and data.shape[0] == TRACE_BATCH:
            if not np.array_equal(data, np.broadcast_to(data[:1], data.shape)):
                raise ValueError(
                    f"cannot export {self.where()}: it uses a tensor of the batch's size "
                    f"{data.shape} that is not computed by convnetpy ops (NumPy on .data?); "
                    f"write it with Tensor operations")
            # the same row for every sample: expand it to the batch at run time
            batch = self.g.node("Slice", [self.g.node("Shape", ["input"]), self.g.ints([0]),
                                          self.g.ints([1])])
            shape = self.g.node("Concat", [batch, self.g.ints([1] * (data.ndim - 1))], axis=0)
            return self.g.node("Expand", [self.g.const(data[:1]), shape])
        return self.g.const(data)

    def record(self, ctx: Any, args: tuple, kwargs: dict, result: Tensor) -> None:
        names = [self.name_of(a) if isinstance(a, Tensor) else None for a in args]
        if not any(names):  # constants alone: fold (a shape-only op computes it for real)
            if hasattr(ctx, "meta"):
                arrays = [a.data if isinstance(a, Tensor) else a for a in args]
                data = type(ctx)().forward(*arrays, **kwargs)
                self.folded[id(result)] = (weakref.ref(result), data)
            return
        op = type(ctx).__name__
        emit = EMITTERS.get(op)
        if emit is None:
            raise ValueError(f"cannot export {self.where()}: the op {op.strip('_')} has no "
                             f"ONNX translation in convnetpy's exporter")
        ins = [n if n is not None else (self.constant(a) if isinstance(a, Tensor) else None)
               for a, n in zip(args, names)]
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        if hasattr(ctx, "meta"):  # the tracer computed only the shape: compute the values,
            # so that anything made from them with NumPy differs between samples (caught)
            np.copyto(result.data, type(ctx)().forward(*arrays, **kwargs))
        try:
            out = emit(self.g, ctx, ins, kwargs, arrays, result.data)
        except Unsupported as e:
            raise ValueError(f"cannot export {self.where()}: {e}") from None
        if any(n in self.g.batched for n in ins if n):
            self.g.batched.add(out)
        self.set(result, out)


def _example(example_input: Any) -> np.ndarray:
    x = example_input.data if isinstance(example_input, Tensor) else example_input
    if isinstance(x, (tuple, list)) and all(isinstance(v, (int, np.integer)) for v in x):
        x = np.zeros(tuple(x), dtype=np.float32)
    x = np.asarray(x)
    if x.ndim < 2 or x.dtype.kind != "f":
        raise ValueError(f"example_input must be a float batch (N, C, H, W) or (N, features), "
                         f"got an array of shape {x.shape} and dtype {x.dtype}")
    return x


def to_onnx(model: Module, example_input: Any, *, opset: int = DEFAULT_OPSET,
            name: str | None = None, classes: Sequence[str] | None = None) -> Any:
    """The ONNX ModelProto of ``model`` on inputs shaped like ``example_input`` (its batch
    size is free in the graph); see ``export``."""
    onnx = require_onnx()
    if not isinstance(model, Module):
        raise TypeError(f"model must be a convnetpy Module, got {type(model).__name__}")
    if not MIN_OPSET <= int(opset) <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be between {MIN_OPSET} and "
                         f"{onnx.defs.onnx_opset_version()} (this onnx's newest), got {opset}")
    x = _example(example_input)
    names = {}
    for pname, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t is not None:
            names.setdefault(id(t.data), pname)
    g = Graph(onnx, int(opset), names)
    rec = _Recorder(model, g)
    rng = np.random.default_rng(0)
    xt = Tensor(rng.standard_normal((TRACE_BATCH,) + x.shape[1:]).astype(x.dtype))
    rec.set(xt, "input")
    g.batched.add("input")
    with np.errstate(all="ignore"):
        out = run_traced(model, xt, rec)
    outs = out if isinstance(out, tuple) else (out,)
    h = onnx.helper
    elem = h.np_dtype_to_tensor_dtype(x.dtype)
    outputs = []
    for i, o in enumerate(outs):
        src = rec.name_of(o) if isinstance(o, Tensor) else None
        if src is None:
            raise ValueError(f"cannot export: output {i} of the model is not computed from its "
                             f"input by convnetpy ops")
        oname = "logits" if i == 0 else f"output_{i}"
        g.nodes.append(h.make_node("Identity", [src], [oname], name=f"output/{oname}"))
        dims = list(o.shape)
        if src in g.batched:
            dims[0] = "batch"
        outputs.append(h.make_tensor_value_info(oname, h.np_dtype_to_tensor_dtype(o.dtype),
                                                dims))
    graph = h.make_graph(g.nodes, name or type(model).__name__,
                         [h.make_tensor_value_info("input", elem, ["batch", *x.shape[1:]])],
                         outputs, initializer=list(g.inits.values()))
    ops = [h.make_opsetid("", int(opset))]
    proto = h.make_model(graph, opset_imports=ops, producer_name="convnetpy",
                         producer_version=__version__)
    proto.ir_version = h.find_min_ir_version_for(ops)
    meta = {"name": name or type(model).__name__, "convnetpy_version": __version__,
            "input_shape": json.dumps(list(x.shape[1:]))}
    if classes is not None:
        meta["classes"] = json.dumps([str(c) for c in classes])
    h.set_model_props(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model: Module, example_input: Any, path: str | Path | None = None, *,
           opset: int = DEFAULT_OPSET, name: str | None = None,
           classes: Sequence[str] | None = None) -> Any:
    """Write ``model`` as an ONNX file at ``path`` (atomically; None: write nothing) and
    return the ModelProto, checked with ``onnx.checker.check_model(full_check=True)``.

    ``example_input``: a batch (Tensor or array; its batch size does not matter) or a
    shape tuple. The graph's input is "input" (axis 0 "batch"), its output "logits";
    metadata_props hold ``name`` (default: the class name), ``classes`` (a JSON list, when
    given), ``input_shape`` and ``convnetpy_version``. Batch norm is folded in as
    BatchNormalization with the running statistics and dropout disappears (evaluation
    mode). ``opset``: 13 or later; circular padding needs 19, ONNX's own Gelu 20 (before
    it GELU is written with Erf).

    >>> import convnetpy as cp
    >>> from convnetpy import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    >>> proto = export(net, cp.zeros(1, 1, 4, 4), classes=["cat", "dog"])  # doctest: +SKIP
    >>> [n.op_type for n in proto.graph.node]  # doctest: +SKIP
    ['Conv', 'Relu', 'Reshape', 'Gemm', 'Identity']
    """
    proto = to_onnx(model, example_input, opset=opset, name=name, classes=classes)
    if path is not None:
        write_atomic(path, proto.SerializeToString())
    return proto


def compare(proto: Any, model: Module, x: Any) -> float:
    """ONNX Runtime's output for batch ``x`` against ``model``'s (evaluation mode): the
    largest absolute difference relative to the largest magnitude of convnetpy's output
    (an element-wise ratio would blow up on outputs near zero)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MissingOnnx('checking the export needs onnxruntime: pip install '
                          '"convnetpy[onnx]"') from e
    from ..autograd import no_grad

    x = x.data if isinstance(x, Tensor) else np.asarray(x)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x})[0]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            ref = model(Tensor(x))
    finally:
        for m, mode in modes:  # each module's own mode back (a frozen layer stays so)
            m.train(mode)
    ref = (ref[0] if isinstance(ref, tuple) else ref).data
    if got.shape != ref.shape:
        raise ValueError(f"ONNX Runtime's output has shape {got.shape}, convnetpy's {ref.shape}")
    scale = max(float(np.abs(ref).max()), np.finfo(np.float32).tiny)
    return float(np.abs(got.astype(np.float64) - ref).max() / scale)
