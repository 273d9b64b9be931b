"""The architecture diagram: a model's dataflow graph drawn as plain SVG text.

``graph(model, input_shape)`` runs the model once on zeros in evaluation mode under the
summary's shape-only tracer (no convolution is computed) and records which tensor each
leaf module and each operation outside a leaf module produced, so every node knows the
nodes its inputs came from. Nodes: the input, one per leaf-module call (kind and key
settings, e.g. "Conv2d 3→64 k3 s1 p1"), one per operation a container runs itself (an
``F.relu`` in a block's forward, a flatten), merges where two or more computed tensors meet
(a residual "+", an Inception "concat") and the output. An identity (an empty
``Sequential`` or ``nn.Identity`` that returns its input) is a wire, not a node.
``diagram_svg(model, input_shape)`` lays that graph out top to bottom (``layout.py``) and
labels every edge with the shape that flows along it (C×H×W, batch left out).

>>> from convnetpy import nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
...                     nn.Linear(64, 2))
>>> [(n.kind, n.label, n.shape) for n in graph(net, (1, 4, 4))][:2]
[('input', 'input', (1, 4, 4)), ('layer', 'Conv2d 1→4 k3 s1 p1', (4, 4, 4))]
>>> diagram_svg(net, (1, 4, 4)).count('class="edge"')
5
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from ..analysis.trace import run_traced
from ..nn.container import ModuleList, Sequential
from ..nn.linear import Identity
from ..nn.module import Module
from ..tensor import Tensor
from . import layout


@dataclass
class Node:
    """One box of the diagram: ``kind`` is input, layer, op, merge or output; ``shape``
    the output's shape without the batch axis; ``preds`` the nodes its inputs came from."""
    kind: str
    label: str
    path: str = ""
    type: str = ""
    shape: tuple = ()
    preds: list[int] = field(default_factory=list)


_OPS = {"Add": "+", "Cat": "concat", "Sub": "−", "Mul": "×", "Div": "÷"}


def _op_name(ctx: Any) -> str:
    name = type(ctx).__name__.strip("_")
    return _OPS.get(name) or re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", name).lower()


def _n(v: Any) -> str:
    """A size setting, short: 3 for (3, 3), 3×1 for (3, 1)."""
    v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    return str(v[0]) if len(set(v)) == 1 else "×".join(str(x) for x in v)


def module_label(m: Module) -> str:
    """The kind of a layer and its key settings, in one short line."""
    kind = type(m).__name__
    a = m.__dict__
    if "in_channels" in a and "kernel_size" in a:
        s = f"{kind} {m.in_channels}→{m.out_channels} k{_n(m.kernel_size)} s{_n(m.stride)}"
        s += f" p{_n(m.padding)}" if not isinstance(m.padding, str) else f" {m.padding}"
        s += f" d{_n(m.dilation)}" if _n(m.dilation) != "1" else ""
        return s + (f" g{m.groups}" if m.groups > 1 else "")
    if "in_features" in a:
        return f"{kind} {m.in_features}→{m.out_features}"
    if "output_size" in a:
        return f"{kind} →{_n(m.output_size)}"
    if "kernel_size" in a:
        pad = _n(a.get("padding", 0))
        return f"{kind} k{_n(m.kernel_size)} s{_n(m.stride or m.kernel_size)}" + (
            f" p{pad}" if pad != "0" else "")
    if "num_features" in a:
        return f"{kind} {m.num_features}"
    if "p" in a:
        return f"{kind} p={m.p}"
    extra = m.extra_repr().replace("\n", " ")
    return f"{kind} {extra}" if extra and len(extra) <= 20 else kind


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _is_leaf(m: Module) -> bool:
    return next(iter(m.children()), None) is None


class _Recorder:
    """Module hooks and the autograd tracer in one: who produced each tensor."""

    def __init__(self, model: Module) -> None:
        self.names: dict[int, str] = {}
        for name, m in model.named_modules():
            self.names.setdefault(id(m), name)
        self.nodes: list[Node] = []
        # id -> (weak reference, node): an id counts only while its tensor is alive
        self.owner: dict[int, tuple[weakref.ref, int]] = {}
        self.stack: list[tuple[Module, list[int] | None]] = []

    def producer(self, t: Tensor) -> int | None:
        ref, node = self.owner.get(id(t), (None, None))
        return node if ref is not None and ref() is t else None

    def add(self, node: Node, out: Tensor) -> None:
        node.preds = list(dict.fromkeys(node.preds))
        self.nodes.append(node)
        self.owner[id(out)] = (weakref.ref(out), len(self.nodes) - 1)

    def inside_leaf(self) -> bool:
        return any(_is_leaf(m) for m, _ in self.stack)

    def pre(self, module: Module, inputs: tuple) -> None:
        leaf = _is_leaf(module) and not self.inside_leaf()
        preds = [p for t in _tensors(inputs) if (p := self.producer(t)) is not None]
        self.stack.append((module, preds if leaf else None))

    def post(self, module: Module, inputs: tuple, output: Any) -> None:
        _, preds = self.stack.pop()
        outs = _tensors(output)
        if preds is None or not outs:
            return
        wire = isinstance(module, (Identity, Sequential, ModuleList))
        if wire and any(outs[0] is t for t in _tensors(inputs)):
            return  # an identity: the consumers take the input's producer directly
        self.add(Node("layer", module_label(module), self.names.get(id(module), "?"),
                      type(module).__name__, tuple(outs[0].shape[1:]), preds), outs[0])

    def record(self, ctx: Any, args: tuple, kwargs: dict, result: Tensor) -> None:
        if self.inside_leaf():
            return
        preds = [p for t in _tensors(args) if (p := self.producer(t)) is not None]
        if not preds:
            return  # a constant, a parameter: nothing computed flows in
        name = _op_name(ctx)
        kind = "merge" if len(set(preds)) > 1 else "op"
        path = self.names.get(id(self.stack[-1][0]), "") if self.stack else ""
        self.add(Node(kind, name, path, name, tuple(result.shape[1:]), preds), result)


def graph(model: Module, input_shape: tuple[int, ...]) -> list[Node]:
    """The dataflow graph of ``model`` on one input of ``input_shape`` (C, H, W), nodes in
    the order they were computed (every input before its consumers). The model's modes are
    left as they were."""
    shape = tuple(input_shape)
    if not shape or not all(isinstance(v, (int, np.integer)) and v > 0 for v in shape):
        raise ValueError(f"input_shape must be the shape of one input, positive sizes such as "
                         f"(3, 32, 32) (C, H, W), got {input_shape!r}")
    rec = _Recorder(model)
    x = Tensor(np.zeros((1,) + shape, dtype=np.float32))
    rec.add(Node("input", "input", "", "input", shape), x)
    out = run_traced(model, x, rec)
    for t in _tensors(out)[:1]:
        src = rec.producer(t)
        rec.nodes.append(Node("output", "output", "", "output", tuple(t.shape[1:]),
                              [] if src is None else [src]))
    return rec.nodes


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def shape_text(shape: tuple) -> str:
    """(64, 32, 32) -> '64×32×32'."""
    return "×".join(str(v) for v in shape) or "scalar"


# ----- drawing -----
ROW, GAP, PAD = 68, 110, 24
_FILL = {"Conv": "#dbeafe", "Pool": "#dcfce7", "Norm": "#fef3c7", "Linear": "#ede9fe",
         "ReLU": "#fee2e2", "Dropout": "#f1f5f9"}
_STYLE = """
.node rect, .node circle { stroke: #475569; stroke-width: 1; }
.node text { font: 12px sans-serif; fill: #0f172a; text-anchor: middle; }
.node text.path { font-size: 9.5px; fill: #64748b; }
.node.input rect, .node.output rect { fill: #334155; }
.node.input text, .node.output text { fill: #ffffff; font-weight: bold; }
.node.op rect { fill: #f8fafc; stroke-dasharray: 3 2; }
.node.merge rect, .node.merge circle { fill: #fde68a; stroke: #b45309; }
.node.merge text { font-weight: bold; }
.edge path { fill: none; stroke: #64748b; stroke-width: 1.2; }
.edge.arc path { stroke: #b45309; stroke-width: 1.6; }
.edge text { font: 10px monospace; fill: #334155; }
"""


def _size(n: Node) -> tuple[float, float]:
    if n.kind == "merge" and n.label == "+":
        return 28.0, 28.0
    text = max(len(n.label) * 7.2, len(n.path) * 6.0 if n.kind == "layer" else 0)
    return text + 18, 36.0 if n.kind == "layer" else 26.0


def _node_svg(ident: str, n: Node, x: float, y: float) -> str:
    w, h = _size(n)
    cls = f"node {n.kind}" + (" add" if n.label == "+" else " concat" if n.label == "concat"
                              else "")
    out = [f'<g class="{cls}" id="{ident}" data-type="{_attr(n.type)}" '
           f'data-path="{_attr(n.path)}">']
    if n.kind == "merge" and n.label == "+":
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{w / 2:.1f}"/>')
    else:
        fill = next((c for k, c in _FILL.items() if k in n.type), "#f3f4f6")
        style = f' style="fill:{fill}"' if n.kind == "layer" else ""
        out.append(f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" '
                   f'height="{h:.1f}" rx="5"{style}/>')
    ty = y - 3 if n.kind == "layer" else y + 4
    out.append(f'<text x="{x:.1f}" y="{ty:.1f}">{escape(n.label)}</text>')
    if n.kind == "layer":
        out.append(f'<text class="path" x="{x:.1f}" y="{y + 12:.1f}">{escape(n.path)}</text>')
    out.append(f"<title>{escape(n.path or n.label)}: {escape(shape_text(n.shape))}</title>")
    return "".join(out) + "</g>"


def _edge_svg(ids: tuple[str, str, str], how: str, a: tuple, b: tuple, side: float,
              label: str) -> str:
    d, (lx, ly) = layout.edge_path(how, a, b, side)
    kind = "edge arc" if how == "arc" else "edge"
    return (f'<g class="{kind}" data-src="{ids[0]}" data-dst="{ids[1]}"><path d="{d}" '
            f'marker-end="url(#{ids[2]})"/><text class="shape" x="{lx:.1f}" y="{ly:.1f}">'
            f"{escape(label)}</text></g>")


def diagram_svg(model: Module, input_shape: tuple[int, ...], title: str | None = None,
                id_prefix: str = "") -> str:
    """The architecture of ``model`` as an SVG document (a string): the dataflow graph of
    ``graph(model, input_shape)`` top to bottom, every edge labelled with the shape that
    flows along it, skip connections as arcs beside the column, parallel branches side by
    side. Labels are XML-escaped; nothing outside the text is needed to show it. Element
    ids start with ``id_prefix``, so that several diagrams can share one HTML page."""
    nodes = graph(model, input_shape)
    preds = [n.preds for n in nodes]
    row = layout.rows(preds)
    lane = layout.lanes(preds, row)
    sizes = [_size(n) for n in nodes]
    widest = max(w for w, _ in sizes)
    width = widest + GAP
    xs = [PAD + (ln + 0.5) * width for ln in lane]
    ys = [PAD + 40 + r * ROW + 18 for r in row]
    edges, arrow = [], f"{id_prefix}arrow"
    for v, n in enumerate(nodes):
        for k, p in enumerate(n.preds):
            how = layout.route(p, v, row, lane)
            if how == "arc":
                a, b = (xs[p] + sizes[p][0] / 2, ys[p]), (xs[v] + sizes[v][0] / 2 + 4, ys[v])
            else:  # several inputs land side by side on the consumer's top
                spread = min(sizes[v][0] / max(len(n.preds), 1), 14) * (k - (len(n.preds) - 1) / 2)
                a = (xs[p], ys[p] + sizes[p][1] / 2)
                b = (xs[v] + spread, ys[v] - sizes[v][1] / 2)
            edges.append(_edge_svg((f"{id_prefix}n{p}", f"{id_prefix}n{v}", arrow), how, a, b,
                                   xs[v] + max(widest / 2, 70) + 24, shape_text(nodes[p].shape)))
    w, h = PAD * 2 + (max(lane) + 1) * width, PAD * 2 + 40 + (max(row) + 1) * ROW
    name = title or type(model).__name__
    head = (f'<text x="{PAD}" y="{PAD + 6}" style="font: bold 15px sans-serif">'
            f"{escape(name)}: input {escape(shape_text(tuple(input_shape)))}, "
            f"{sum(n.kind == 'layer' for n in nodes)} layers</text>")
    body = "\n".join(edges + [_node_svg(f"{id_prefix}n{i}", n, xs[i], ys[i])
                              for i, n in enumerate(nodes)])
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="convnetpy-diagram" '
            f'width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}">\n'
            f"<title>{escape(name)}</title>\n<style>{_STYLE}</style>\n"
            f'<defs><marker id="{arrow}" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
            'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#64748b"/>'
            f'</marker></defs>\n<rect width="100%" height="100%" fill="#ffffff"/>\n{head}\n'
            f"{body}\n</svg>\n")


__all__ = ["Node", "graph", "diagram_svg", "module_label", "shape_text"]
