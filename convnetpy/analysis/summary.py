"""``summary(model, input_size)``: the lecture's arithmetic for every layer of a model.

One row per module (nested blocks as a tree): output shape, the size formula with numbers
filled in, parameters (trainable / non-trainable), MACs and FLOPs, forward activation memory
and the receptive field; totals for parameters, compute and memory; notes for layers whose
windows do not cover the input exactly, the conv-versus-dense comparison and 1x1 reductions.

Conventions (printed with the table): MACs count multiply-accumulates of the weighted ops,
convolutions, linear layers and matrix products (conv: N*C_out*H_out*W_out*(C_in/groups)*
KH*KW, linear: N*in*out), as torchvision reports them; FLOPs = 2 x MACs; a training step's
FLOPs are every op's forward and backward operations as the op counts them
(``Function.cost``), pooling, batch norm, activations, adds and the loss included, in the
evaluation-mode pass (batch norm with its running statistics, no dropout); activation
memory is the size of every op's output (views excluded); training memory is the highest
point of one training step played out op by op (analysis/memory.py): parameters, buffers
and optimizer state, plus the outputs the graph holds, what the ops keep for backward, the
gradients in flight and the running kernel's workspace on the current compute path.

>>> from convnetpy import nn
>>> from convnetpy import summary
>>> s = summary(nn.Sequential(nn.Conv2d(3, 10, 5, padding=2), nn.ReLU()), (1, 3, 32, 32))
>>> s.total_params, s.total_macs, s.rows[1]["output_shape"]
(760, 768000, (1, 10, 32, 32))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend.select import current
from ..nn.module import Module
from ..shape import INPUT_RF
from . import render
from .memory import training_peak
from .trace import trace

OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2}


def _rf_fields(rf) -> dict[str, Any]:
    rf = rf or INPUT_RF

    def clean(v):
        return int(v) if float(v).is_integer() else float(v)

    size, jump, start = rf
    return {"rf_size": tuple(clean(v) for v in size), "rf_jump": tuple(clean(v) for v in jump),
            "rf_start": tuple(clean(v) for v in start)}


class Summary:
    """The result of ``summary``: ``rows`` (a list of dicts), totals as attributes, and
    ``to_text()``, ``to_markdown()``, ``to_csv()``, ``to_json()``."""

    def __init__(self, model: Module, input_size: tuple[int, ...], optimizer: str = "sgd",
                 dtype: Any = np.float32) -> None:
        if len(input_size) < 2 or any(int(v) < 1 for v in input_size):
            raise ValueError(f"input_size must be (N, C, H, W) with positive sizes, got "
                             f"{input_size}")
        if optimizer not in OPTIMIZER_STATE:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_STATE)}, got "
                             f"{optimizer!r}")
        self.model_name = type(model).__name__
        self.input_size = tuple(int(v) for v in input_size)
        self.batch = self.input_size[0]
        self.optimizer = optimizer
        itemsize = np.dtype(dtype).itemsize
        tracer = trace(model, self.input_size, dtype)
        n = self.batch
        self.rows: list[dict[str, Any]] = []
        called = set()
        for row in tracer.rows.values():
            called.add(id(row.module))
            self.rows.append(self._row(row.path, row.module, row.depth, n, itemsize, row))
        # modules that exist but did not run (e.g. auxiliary classifiers in evaluation mode)
        for path, m in model.named_modules():
            if id(m) not in called:
                called.add(id(m))
                r = self._row(path, m, path.count(".") + 1 if path else 0, n, itemsize, None)
                r["notes"].append("not called in the forward pass (its parameters still count)")
                self.rows.append(r)
        self.total_params = sum(r["params"] for r in self.rows)
        self.trainable_params = sum(r["trainable"] for r in self.rows)
        self.non_trainable_params = self.total_params - self.trainable_params
        self.param_bytes = sum(r["param_bytes"] for r in self.rows)
        self.buffer_bytes = sum(int(b.data.nbytes) for b in model.buffers())
        self.total_macs = sum(r["macs"] for r in self.rows)
        self.total_flops = 2 * self.total_macs
        self.forward_flops = sum(r["forward_flops"] for r in self.rows)
        self.backward_flops = sum(r["backward_flops"] for r in self.rows)
        self.train_flops = self.forward_flops + self.backward_flops
        self.activation_bytes = sum(r["act_bytes"] for r in self.rows)
        trainable_bytes = sum(r["trainable"] * r["itemsize"] for r in self.rows)
        self.gradient_bytes = trainable_bytes
        self.optimizer_bytes = OPTIMIZER_STATE[optimizer] * trainable_bytes
        self.input_bytes = int(np.prod(self.input_size)) * itemsize
        self.compute_path = current()
        self.peak = training_peak(tracer.calls)
        self.training_bytes = (self.param_bytes + self.buffer_bytes + self.optimizer_bytes
                               + self.peak.bytes)
        last = next((r for r in self.rows if r["path"] == ""), None)
        self.output_shape = last["output_shape"] if last else None

    def _row(self, path, module, depth, n, itemsize, row) -> dict[str, Any]:
        own = [p for p in module._parameters.values() if p is not None]
        trainable = sum(p.numel() for p in own if p.requires_grad)
        params = sum(p.numel() for p in own)
        out = None
        if row is not None and row.out_shape is not None:
            out = (n,) + tuple(row.out_shape[1:])
        macs = row.macs if row else 0
        r = {
            "path": path, "name": path or "(model)", "type": type(module).__name__,
            "depth": depth, "config": module.extra_repr().replace("\n", " "),
            "output_shape": out, "formula": "; ".join(row.formula) if row else "",
            "params": params, "trainable": trainable, "non_trainable": params - trainable,
            "param_bytes": sum(p.data.nbytes for p in own), "itemsize": itemsize,
            "macs": macs, "flops": 2 * macs,
            "forward_flops": row.flops_forward if row else 0,
            "backward_flops": row.flops_backward if row else 0,
            "act_bytes": row.act_bytes if row else 0,
            "notes": list(row.notes) if row else [],
            "conv": dict(row.conv) if row and row.conv else None,
            "calls": row.calls if row else 0,
        }
        if r["conv"]:
            r["conv"].pop("reduction", None)
        r.update(_rf_fields(row.rf if row else None))
        return r

    # ----- output -----
    def to_text(self) -> str:
        return render.text(self)

    def to_markdown(self) -> str:
        return render.markdown(self)

    def to_csv(self) -> str:
        return render.csv_text(self)

    def to_json(self) -> str:
        return render.json_text(self)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def summary(model: Module, input_size: tuple[int, ...] = (1, 3, 224, 224),
            optimizer: str = "sgd", dtype: Any = np.float32) -> Summary:
    """Summarise ``model`` for an input of shape ``input_size`` (N, C, H, W) from a
    shape-only pass; ``optimizer`` ('sgd', 'momentum' or 'adam') sets the optimizer state
    in the training-memory estimate. Raises a ShapeError at the first impossible layer."""
    return Summary(model, input_size, optimizer, dtype)


__all__ = ["summary", "Summary"]
