"""The ``HealthMonitor`` callback: what it measures and when (see the package docstring).

What is measured:

- layer: a module that holds trained parameters directly, by its path (``features.0``).
  Its numbers are over its parameters but the bias, as one vector (CS231n looks at the
  weights; a bias starts at zero, so its ratio means little), with the bias's apart under
  ``"bias"``; a layer whose only trained parameter is its bias (batch norm with a frozen
  scale) has the bias's numbers, ``"params": ["bias"]``, and no ratio warnings. Frozen
  parameters are left out. ``ratio`` = ||p_after - p_before|| / ||p_before||: the whole
  update (momentum and weight decay included); CS231n: healthy ~1e-3.
- activation layer: a ``ReLU``, ``LeakyReLU``, ``GELU``, ``Sigmoid`` or ``Tanh`` module
  (``F.relu`` called inside a block's forward is not seen). A unit is a channel (axis 1);
  it is ``dead`` when its output is 0 at every position of every example of the recorded
  (training) batch, CS231n's "never activates", estimated on one batch; ``zero`` is the
  share of all outputs that are 0. Both only for ReLU. Only the first call of a module in
  the step counts; in a data-parallel run, rank 0's share of the batch.
- histograms: histogram.py (the same bins in every record).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ...nn import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from ..state import Callback, RunState
from .histogram import EDGES, histogram
from .log import append, read_health, rewrite
from .rules import check, message

ACTIVATIONS = (ReLU, LeakyReLU, GELU, Sigmoid, Tanh)
"""The module types whose outputs are recorded as activations."""
def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _norm(arrays) -> float:
    # float64 sums of float32 norms: accurate without copying the arrays
    return math.sqrt(sum(float(np.linalg.norm(np.ravel(a))) ** 2 for a in arrays))


def _activation_stats(module, a: np.ndarray) -> dict[str, Any]:
    flat = np.ascontiguousarray(a).reshape(-1)
    n = max(flat.size, 1)
    mean = float(flat.sum(dtype=np.float64)) / n
    # E[x^2] - E[x]^2 from one BLAS dot: 1 ms where np.std takes 18 on 4M values
    var = max(float(np.dot(flat, flat)) / n - mean * mean, 0.0)
    rec: dict[str, Any] = {"type": type(module).__name__,
                           "units": int(a.shape[1]) if a.ndim > 1 else 1,
                           "dead": None, "zero": None, "mean": _num(mean),
                           "std": _num(math.sqrt(var)), "hist": histogram(a)}
    if isinstance(module, ReLU):
        axes = tuple(i for i in range(a.ndim) if i != 1)
        peak = a.max(axis=axes) if a.ndim > 1 else a.max(keepdims=True)
        rec["dead"] = float(np.mean(peak <= 0))
        rec["zero"] = 1.0 - np.count_nonzero(flat) / n
    return rec


class HealthMonitor(Callback):
    """Records the run's health every ``every`` steps (and at step 1) into ``records``,
    warns once per (kind, layer) into ``warnings`` and ``state.log``, and appends both to
    ``run_dir/health.jsonl`` (see the module docstring). ``fit`` adds it when
    ``TrainConfig.health_every`` > 0, on the rank that writes."""

    def __init__(self, every: int) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"HealthMonitor: every must be a positive integer, got {every!r}")
        self.every = every
        self.records: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []
        self.path: Path | None = None
        self._before: dict[int, np.ndarray] | None = None
        self._hooks: list = []
        self._acts: dict[str, dict[str, Any]] = {}
        self._lr = 0.0
        self._fresh = False

    def due(self, step: int) -> bool:
        """Whether step ``step`` (1-based, after its update) is recorded."""
        return step == 1 or step % self.every == 0

    def on_train_begin(self, state: RunState) -> None:
        self.path = Path(state.run_dir) / "health.jsonl"
        self._fresh = state.step == 0
        if self.path.exists():  # a resumed run: what the checkpoint's step had seen
            records, warnings = read_health(self.path)
            self.records = [r for r in records if r["step"] <= state.step]
            self.warnings = [w for w in warnings if w["step"] <= state.step]
            rewrite(self.path, self.records, self.warnings)
        if self.due(state.step + 1):
            self._arm(state)

    def on_step_end(self, state: RunState) -> None:
        if self._before is not None:
            self._record(state)
            self._disarm()
        if self.due(state.step + 1):
            self._arm(state)

    def on_train_end(self, state: RunState) -> None:
        self._disarm()

    def _arm(self, state: RunState) -> None:
        model = state.model
        self._before = {id(p): p.numpy().copy() for p in model.parameters() if p.requires_grad}
        self._lr = state.lr
        self._acts = {}
        for name, m in model.named_modules():
            if isinstance(m, ACTIVATIONS):
                self._hooks.append(m.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def grab(module, inputs, output):
            if module.training and name not in self._acts:  # not the evaluation's passes
                self._acts[name] = _activation_stats(module, output.numpy())
        return grab

    def _numbers(self, ps: dict[str, Any], hist: bool) -> dict[str, Any]:
        """Norms of the parameters ``ps`` as one vector, before the step, of their gradient
        and of the step's update, and the update/param ratio."""
        w = _norm(self._before[id(p)] for p in ps.values())
        g = _norm(p.grad.numpy() for p in ps.values())
        u = _norm(p.numpy() - self._before[id(p)] for p in ps.values())
        out = {"params": sorted(ps), "param_norm": _num(w), "grad_norm": _num(g),
               "update_norm": _num(u), "ratio": _num(u / w) if w > 0 else None}
        if hist:
            counts = sum(np.array(histogram(p.grad.numpy())["counts"]) for p in ps.values())
            out["grad_hist"] = {"edges": EDGES, "counts": counts.tolist()}
        return out

    def _disarm(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks, self._before = [], None

    def _record(self, state: RunState) -> None:
        groups: dict[str, dict[str, Any]] = {}
        for pname, p in state.model.named_parameters():
            if p.grad is not None and id(p) in self._before:
                layer, _, short = pname.rpartition(".")
                groups.setdefault(layer or "(model)", {})[short] = p
        layers, total = {}, 0.0
        for name, ps in groups.items():
            weights = {k: p for k, p in ps.items() if k != "bias"}
            layers[name] = self._numbers(weights or ps, hist=True)
            if weights and "bias" in ps:
                layers[name]["bias"] = self._numbers({"bias": ps["bias"]}, hist=False)
            total += sum(float(np.linalg.norm(p.grad.numpy().ravel())) ** 2
                         for p in ps.values())
        rec: dict[str, Any] = {"kind": "record", "step": state.step, "epoch": state.epoch + 1,
                               "batch": state.batch, "loss": _num(state.loss),
                               "lr": _num(self._lr), "grad_norm": _num(math.sqrt(total)),
                               "layers": layers, "activations": dict(self._acts)}
        if self._fresh and state.step == 1:
            c = state.dataset.num_classes
            rec["init"] = {"loss": _num(state.loss), "chance_loss": math.log(c),
                           "num_classes": c}
        new = check(rec, self.records)
        self.records.append(rec)
        append(self.path, rec)
        seen = {(w["warning"], w["layer"]) for w in self.warnings}
        for kind, layer, value in new:
            if (kind, layer) in seen:
                continue
            seen.add((kind, layer))
            w = {"kind": "warning", "step": state.step, "epoch": state.epoch + 1,
                 "warning": kind, "layer": layer, "value": _num(value),
                 "message": message(kind, layer, value)}
            self.warnings.append(w)
            append(self.path, w)
            state.log(f"health warning at step {state.step}: {w['message']}")
