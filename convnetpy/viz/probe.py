"""Look inside a network on one example: what the dashboard and ``convnetpy viz`` show.

``probe(model, x)`` runs one image (C, H, W) through the model in evaluation mode, with a
loss on the predicted class (or a given one) sent back, and returns one ``LayerProbe`` per
leaf module in call order: its output and the gradient of the loss with respect to that
output, its input, and its receptive field from the summary's shape pass (size, jump and
start per axis, in input pixels). The model's parameters, gradients and modes are left as
they were. ``explain_unit`` says how one unit of a layer's output was computed.

>>> import numpy as np, convnetpy as cp
>>> from convnetpy import nn
>>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
>>> layers = probe(net, np.ones((1, 4, 4), dtype=np.float32))
>>> [(p.kind, p.output.shape) for p in layers]
[('Conv2d', (2, 2, 2)), ('ReLU', (2, 2, 2)), ('Flatten', (8,)), ('Linear', (3,))]
>>> layers[0].rf_window(1, 1)   # rows, columns of the input that output unit (1, 1) sees
((1, 4), (1, 4))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F
from ..analysis.trace import trace
from ..nn.activation import ReLU
from ..nn.conv import Conv2d
from ..nn.module import Module
from ..nn.pooling import MaxPool2d
from ..shape import resolve_conv_padding
from ..tensor import Tensor
from .gradients import inspecting


@dataclass
class LayerProbe:
    index: int
    path: str
    kind: str
    module: Module
    input: np.ndarray  # the module's first input, batch axis dropped
    output: np.ndarray  # its output, batch axis dropped
    grad: np.ndarray | None  # d loss / d output, same shape as output
    rf: Any = None  # ((size_h, size_w), (jump_h, jump_w), (start_h, start_w))
    formula: tuple[str, ...] = ()
    params: int = 0
    input_hw: tuple[int, int] = (0, 0)  # the probed image's height and width

    def rf_window(self, row: int, col: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Input rows [r0, r1) and columns [c0, c1) that output unit (row, col) sees,
        clipped to the image (the rest lies in the zero padding)."""
        if self.rf is None:
            raise ValueError(f"{self.kind} at {self.path}: no receptive field (not spatial)")
        size, jump, start = self.rf
        h, w = self.input_hw
        out = []
        for ax, (u, n) in enumerate(((row, h), (col, w))):
            centre = start[ax] + u * jump[ax]
            lo = int(np.floor(centre - size[ax] / 2 + 1e-9))
            out.append((max(lo, 0), min(lo + int(size[ax]), n)))
        return tuple(out)  # type: ignore[return-value]

    def stats(self) -> dict[str, float | None]:
        """min/max/mean of the output and of its gradient."""
        g = self.grad
        return {"min": float(self.output.min()), "max": float(self.output.max()),
                "mean": float(self.output.mean()),
                "grad_min": None if g is None else float(g.min()),
                "grad_max": None if g is None else float(g.max()),
                "grad_mean": None if g is None else float(g.mean())}


def leaf_modules(model: Module) -> dict[int, str]:
    """id(module) -> path for every module without children (the layers)."""
    return {id(m): name for name, m in model.named_modules()
            if not any(True for _ in m.children())}


def probe(model: Module, image: np.ndarray, target: int | None = None,
          rows: dict | None = None) -> list[LayerProbe]:
    """One example (C, H, W) through ``model``; see the module docstring. ``rows``: the
    shape pass's rows (``analysis.trace.trace(...).rows``) when the caller keeps them."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"probe expects one image (C, H, W), got shape {image.shape}")
    leaves = leaf_modules(model)
    if rows is None:
        rows = trace(model, (1,) + image.shape, image.dtype).rows
    records: list[tuple[Module, Tensor, Tensor]] = []

    def hook(module, inputs, output):
        if id(module) in leaves and isinstance(output, Tensor):
            if output.requires_grad:
                output.retain_grad()
            records.append((module, inputs[0], output))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with inspecting(model):
            x = Tensor(image[None].astype(np.float32 if image.dtype.kind != "f"
                                          else image.dtype))
            x.requires_grad_(True)
            logits = model(x)
            if logits.ndim != 2:
                raise ValueError(f"probe expects the model to return (1, classes), got "
                                 f"{tuple(logits.shape)}")
            cls = int(np.argmax(logits.data[0])) if target is None else int(target)
            F.cross_entropy(logits, Tensor(np.array([cls]))).backward()
    finally:
        for h in handles:
            h.remove()
    out = []
    for i, (module, inp, o) in enumerate(records):
        path = leaves[id(module)]
        row = rows.get(path)
        inp_arr = inp.data[0] if isinstance(inp, Tensor) else np.asarray(inp)[0]
        lp = LayerProbe(
            index=i, path=path, kind=type(module).__name__, module=module, input=inp_arr,
            output=o.data[0].copy(), grad=None if o.grad is None else o.grad.data[0].copy(),
            rf=row.rf if row is not None and len(o.shape) == 4 else None,
            formula=tuple(row.formula) if row is not None else (),
            params=sum(int(p.data.size) for p in module.parameters(recurse=False)),
            input_hw=tuple(image.shape[1:]))
        out.append(lp)
    return out


def explain_unit(layers: list[LayerProbe], index: int, channel: int, row: int,
                 col: int) -> dict[str, Any]:
    """How output unit (channel, row, col) of layer ``index`` came about.

    Conv2d: the input window it sees, the filter, their elementwise products' sum plus the
    bias, and, when the next layer is a ReLU, max(0, that). MaxPool2d: the window and which
    input won. Every layer: the unit's value and its window on the input image."""
    lp = layers[index]
    if lp.output.ndim != 3:
        raise ValueError(f"{lp.kind} at {lp.path} has no spatial units (output shape "
                         f"{lp.output.shape})")
    c, h, w = lp.output.shape
    if not (0 <= channel < c and 0 <= row < h and 0 <= col < w):
        raise ValueError(f"unit ({channel}, {row}, {col}) is outside {lp.kind} at {lp.path}'s "
                         f"output of shape ({c}, {h}, {w})")
    info: dict[str, Any] = {"layer": lp.path, "kind": lp.kind,
                            "value": float(lp.output[channel, row, col])}
    if lp.rf is not None:
        (r0, r1), (c0, c1) = lp.rf_window(row, col)
        info["input_window"] = {"rows": [r0, r1], "cols": [c0, c1],
                                "size": [float(s) for s in lp.rf[0]]}
    m = lp.module
    if isinstance(m, Conv2d) and m.groups == 1 and m.padding_mode == "zeros":
        window = _window(lp.input, row, col, m.kernel_size, m.stride, m.padding, m.dilation)
        wt = m.weight.data[channel]
        bias = 0.0 if m.bias is None else float(m.bias.data[channel])
        total = float((window * wt).sum()) + bias
        info.update(window=window.tolist(), weights=wt.tolist(), bias=bias,
                    dot=float((window * wt).sum()), total=total)
        if index + 1 < len(layers) and isinstance(layers[index + 1].module, ReLU):
            info["relu"] = max(total, 0.0)
    elif isinstance(m, MaxPool2d):
        k = _pair(m.kernel_size)
        window = _window(lp.input[channel:channel + 1], row, col, k,
                         _pair(m.stride or m.kernel_size), _pair(m.padding), _pair(m.dilation),
                         fill=-np.inf)[0]
        flat = int(np.argmax(window))
        info.update(window=np.where(np.isfinite(window), window, None).tolist(),
                    winner=[flat // window.shape[1], flat % window.shape[1]])
    return info


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _window(x: np.ndarray, row: int, col: int, kernel, stride, padding, dilation,
            fill: float = 0.0) -> np.ndarray:
    """(C, KH, KW): the (zero- or ``fill``-padded) input values a window unit meets."""
    (pt, _), (pl, _) = resolve_conv_padding(padding, _pair(kernel), _pair(stride),
                                            _pair(dilation))
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    out = np.full((x.shape[0], kh, kw), fill, dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            r, c = row * sh - pt + i * dh, col * sw - pl + j * dw
            if 0 <= r < x.shape[1] and 0 <= c < x.shape[2]:
                out[:, i, j] = x[:, r, c]
    return out
