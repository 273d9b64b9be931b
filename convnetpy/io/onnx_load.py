"""ONNX import: ``load(path_or_bytes)`` builds a convnetpy model from an ONNX file.

Every node that has a convnetpy layer becomes one (Conv -> ``nn.Conv2d`` holding the
initializer weights, BatchNormalization -> ``nn.BatchNorm2d`` with its running statistics,
Gemm and MatMul(+Add) -> ``nn.Linear``, pools, activations, Dropout), registered under a name
derived from the ONNX node name, so ``state_dict()``, the summary, the dashboard and the
visualisations work on the result, and it can be fine-tuned (everything runs through
convnetpy's autograd). Structural nodes (Add, Mul, Concat, Flatten, Reshape, Pad, Slice,
Transpose, Erf, ...) run as F./Tensor operations in ``forward``; the shape arithmetic that
exporters write for batch-sized constants (Shape, Gather, Unsqueeze, Concat, Expand) runs on
small NumPy integer arrays. The model comes back in evaluation mode.

Needs the optional ``onnx`` package (``pip install "convnetpy[onnx]"``); the rest of
convnetpy does not.

>>> import convnetpy.io.onnx_load as onnx_load
>>> "Conv" in onnx_load.SUPPORTED_OPS
True
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from ..nn import Module
from ..shape import ShapeError
from ..tensor import Tensor
from .onnx_export import require_onnx
from .onnx_graph import BUILDERS

SUPPORTED_OPS = tuple(sorted(BUILDERS))


class OnnxModel(Module):
    """A model loaded from ONNX: its layers are children named after the ONNX nodes
    (``onnx_names`` maps child name -> node name; ``onnx_initializers`` maps an initializer
    name -> its key in ``state_dict()``, the Gemm/MatMul weights stored transposed as
    Linear's (out, in)); ``onnx_metadata`` holds the file's metadata_props (JSON values
    such as ``classes`` decoded). ``forward`` takes the graph inputs in order and returns
    the output, or a tuple when the graph has several."""

    def __init__(self) -> None:
        super().__init__()
        self.input_names: list[str] = []
        self.input_ranks: list[int | None] = []
        self.output_names: list[str] = []
        self.onnx_names: dict[str, str] = {}
        self.onnx_initializers: dict[str, str] = {}
        self.onnx_metadata: dict[str, Any] = {}
        self.onnx_opset = 0
        self._steps: list[tuple[str, list[str], list[str], Any]] = []
        self._const_buffers: dict[str, str] = {}  # value name -> buffer name
        self._host: dict[str, np.ndarray] = {}    # integer constants (shapes, pads)

    def forward(self, *inputs: Any) -> Any:
        if len(inputs) != len(self.input_names):
            raise TypeError(f"this ONNX model takes {len(self.input_names)} input(s) "
                            f"{self.input_names}, got {len(inputs)}")
        env: dict[str, Any] = dict(self._host)
        for value, buf in self._const_buffers.items():
            env[value] = self._buffers[buf]
        for name, rank, x in zip(self.input_names, self.input_ranks, inputs):
            x = x if isinstance(x, Tensor) else Tensor(x)
            if rank is not None and x.ndim != rank:
                raise ValueError(f"ONNX input {name!r} expects a {rank}-D tensor, got shape "
                                 f"{tuple(x.shape)}")
            env[name] = x
        for node, ins, outs, run in self._steps:
            args = [env[i] if i else None for i in ins]
            try:
                env[outs[0]] = run(self, args)
            except ShapeError:
                raise  # already names the layer and the shapes
            except (ValueError, TypeError, IndexError) as e:
                shapes = [getattr(a, "shape", None) for a in args]
                raise ValueError(f"ONNX node {node!r} failed on inputs of shapes {shapes}: "
                                 f"{e}") from e
        result = [env[o] for o in self.output_names]
        return result[0] if len(result) == 1 else tuple(result)

    def extra_repr(self) -> str:
        return f"inputs={self.input_names}, outputs={self.output_names}"


def _sanitise(name: str, op: str, index: int) -> str:
    s = re.sub(r"\W+", "_", name).strip("_")
    return f"{op.lower()}_{s or index}" if not s or s[0].isdigit() else s


def _free(s: str, taken: set) -> bool:
    return s not in taken and not hasattr(OnnxModel, s) and s != "training"


def _attr_name(node_name: str, op: str, index: int, taken: set, weight: str = "") -> str:
    """A valid, unused attribute name: from the layer path in the weight's name when it has
    one ('layer1.0.conv1.weight' -> 'layer1_0_conv1'), else from the node name ('/0/Relu' ->
    'relu_0_Relu')."""
    if "." in weight:
        s = _sanitise(weight.rsplit(".", 1)[0], op, index)
        if _free(s, taken):
            taken.add(s)
            return s
    s = _sanitise(node_name, op, index)
    base, n = s, 2
    while not _free(s, taken):
        s, n = f"{base}_{n}", n + 1
    taken.add(s)
    return s


class _Context:
    """What the op builders see of the graph being loaded."""

    def __init__(self, onnx, graph, opset: int, model: OnnxModel, ranks: dict) -> None:
        self.onnx, self.opset, self.model, self._ranks = onnx, opset, model, ranks
        self.consts: dict[str, np.ndarray] = {
            t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for i, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, i))
        self.graph_outputs = {o.name for o in graph.output}
        self.skip: set[int] = set()
        self.redirect: str | None = None
        self._taken: set[str] = set()
        self._pending: dict[int, list[tuple[str, str]]] = {}
        self._index = 0
        self.origin: dict[str, str] = {}  # folded constant -> the initializer it came from

    def fail(self, node, why: str):
        raise ValueError(f"ONNX node {node.name!r} ({node.op_type}): {why}")

    def allow(self, node, attrs: dict, names: str) -> None:
        extra = sorted(set(attrs) - set(names.split()))
        if extra:
            self.fail(node, f"attribute {extra[0]}={attrs[extra[0]]!r} is not supported")

    def has_input(self, node, i: int) -> bool:
        return len(node.input) > i and bool(node.input[i])

    def rank(self, name: str) -> int | None:
        return self._ranks.get(name)

    def maybe_const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def const(self, node, i: int, what: str) -> np.ndarray:
        if not self.has_input(node, i) or node.input[i] not in self.consts:
            self.fail(node, f"input {i} ({what}) must be a constant (an initializer or a "
                            "Constant node), computed values are not supported here")
        return self.consts[node.input[i]]

    def fusable_add(self, node) -> tuple | None:
        """The Add that adds a constant vector to this MatMul's output, if it alone uses it."""
        out = node.output[0]
        users = self.consumers.get(out, [])
        if len(users) != 1 or out in self.graph_outputs or users[0][0].op_type != "Add":
            return None
        add, i = users[0]
        other = 1 - i
        b = self.consts.get(add.input[other])
        if b is None or b.ndim == 0 or b.size != b.shape[-1]:
            return None
        self.skip.add(id(add))
        self.redirect = add.output[0]
        return add, other

    def map_weights(self, node, layer, attrs: dict, into=None) -> None:
        pending = self._pending.setdefault(id(into or node), [])
        for i, attr in attrs.items():
            if self.has_input(node, i) and node.input[i] in self.consts:
                pending.append((self.origin.get(node.input[i], node.input[i]), attr))

    def add_module(self, node, layer: Module) -> str:
        pending = self._pending.pop(id(node), [])
        weight = next((init for init, attr in pending if attr == "weight"), "")
        name = _attr_name(node.name, node.op_type, self._index, self._taken, weight)
        self.model.add_module(name, layer)
        self.model.onnx_names[name] = node.name
        for init, attr in pending:
            self.model.onnx_initializers[init] = f"{name}.{attr}"
        return name

    def operand(self, name: str) -> None:
        """Make a constant used as a runtime operand available to forward: float ones as
        (non-persistent) buffers, so ``model.to(dtype)`` converts them; the rest as arrays."""
        if name not in self.consts or name in self.model._const_buffers:
            return
        value = self.consts[name]
        if value.dtype.kind == "f":
            buf = "const_" + _attr_name(name, "c", len(self.model._const_buffers), self._taken)
            self.model.register_buffer(buf, Tensor(value.copy()), persistent=False)
            self.model._const_buffers[name] = buf
        else:
            self.model._host[name] = value


def _ranks(onnx, proto) -> dict[str, int]:
    try:
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - inference is a help for the rank checks, not required
        pass
    ranks = {}
    g = proto.graph
    for v in list(g.input) + list(g.value_info) + list(g.output):
        t = v.type.tensor_type
        if t.HasField("shape"):
            ranks[v.name] = len(t.shape.dim)
    return ranks


def _read(onnx, source) -> Any:
    if isinstance(source, onnx.ModelProto):
        return source
    what = "the given bytes" if isinstance(source, (bytes, bytearray)) else repr(str(source))
    try:
        if isinstance(source, (bytes, bytearray)):
            proto = onnx.load_model_from_string(bytes(source))
        else:
            proto = onnx.load(os.fspath(source))
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ValueError(f"{what} is not a valid ONNX model file ({type(e).__name__}: {e})") \
            from None
    try:
        onnx.checker.check_model(proto)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{what} is not a valid ONNX model: {e}") from None
    return proto


def _metadata(proto) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for p in proto.metadata_props:
        value: Any = p.value
        if value[:1] in ("[", "{"):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        meta[p.key] = value
    return meta


def load(source: Any) -> OnnxModel:
    """Build a convnetpy model (``OnnxModel``, in eval mode) from an ONNX file path, its bytes
    or an ``onnx.ModelProto``. Raises ValueError naming the node for an unsupported op or
    attribute, and for a file that is not ONNX.

    >>> import onnx
    >>> from onnx import helper, TensorProto
    >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="act")], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])])
    >>> m = load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    >>> m
    OnnxModel(
      inputs=['x'], outputs=['y']
      (act): ReLU()
    )
    >>> m(Tensor(np.array([[-1.0, 0.0, 2.0]], dtype=np.float32))).tolist()
    [[0.0, 0.0, 2.0]]
    """
    onnx = require_onnx("ONNX import")
    proto = _read(onnx, source)
    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    model = OnnxModel()
    model.onnx_opset = opset
    model.onnx_metadata = _metadata(proto)
    ctx = _Context(onnx, graph, opset, model, _ranks(onnx, proto))
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is None:
                ctx.fail(node, "only the 'value' form of Constant is supported")
            ctx.consts[node.output[0]] = onnx.numpy_helper.to_array(attr.t)
    inits = set(ctx.consts)
    for v in graph.input:
        if v.name in inits:
            continue  # an initializer listed as an input (old exporters)
        rank = ctx.rank(v.name)
        if rank not in (None, 2, 4):
            raise ValueError(f"ONNX input {v.name!r} has rank {rank}; only 4-D (N, C, H, W) "
                             "images and 2-D (N, features) inputs are supported")
        model.input_names.append(v.name)
        model.input_ranks.append(rank)
    model.output_names = [o.name for o in graph.output]
    for index, node in enumerate(graph.node):
        if id(node) in ctx.skip or node.op_type == "Constant":
            continue
        build = BUILDERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if build is None:
            raise ValueError(f"ONNX node {node.name!r} has an unsupported op type "
                             f"{node.op_type!r}" + (f" (domain {node.domain!r})"
                                                    if node.domain else "")
                             + f"; supported: {', '.join(SUPPORTED_OPS)}")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        if node.op_type in ("Transpose", "Identity") and node.input[0] in ctx.consts:
            # a transposed weight (MatMul by W^T) is folded now, so MatMul sees a constant
            value = ctx.consts[node.input[0]]
            if node.op_type == "Transpose":
                value = np.transpose(value, attrs.get("perm"))
            ctx.consts[node.output[0]] = value
            ctx.origin[node.output[0]] = ctx.origin.get(node.input[0], node.input[0])
            continue
        ctx._index, ctx.redirect = index, None
        run = build(ctx, node, attrs)
        for name in node.input:
            ctx.operand(name)
        outs = [ctx.redirect] if ctx.redirect else [node.output[0]]
        model._steps.append((node.name, list(node.input), outs, run))
    return model.eval()
