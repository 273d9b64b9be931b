"""``run_dir/health.jsonl``, one JSON object a line, appended whole (a resumed run first drops
the lines past its checkpoint's step). Non-finite numbers are written as null. The first
line is ``{"kind": "bins", "edges": [...]}``; the histograms of the lines below hold their
``"counts"`` only (the edges would be nine tenths of the file) and ``read_health`` gives
them back their ``"edges"``.

- ``{"kind": "record", "step", "epoch" (1-based), "batch", "loss" (the step's batch, before
  its update), "lr" (the step's), "grad_norm" (all trained parameters), "layers": {path:
  {"params" (the names counted), "param_norm", "grad_norm", "update_norm", "ratio",
  "grad_hist", "bias": {the same but the histogram}}}, "activations": {path: {"type",
  "units", "dead", "zero", "mean", "std", "hist"}}}``; the first step of a fresh run adds
  ``"init": {"loss", "chance_loss" (ln C), "num_classes"}``. A histogram is ``{"edges":
  [...], "counts": [...]}``.
- ``{"kind": "warning", "step", "epoch", "warning" (one of WARNINGS), "layer" (or null),
  "value", "message"}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ...io.files import write_atomic
from .histogram import EDGES


def _with_edges(obj: Any, edges: list | None) -> Any:
    """``obj`` with each histogram's edges left out (``edges`` None) or put back."""
    if isinstance(obj, dict):
        if "counts" in obj:
            return {"counts": obj["counts"]} if edges is None else {"edges": edges, **obj}
        return {k: _with_edges(v, edges) for k, v in obj.items()}
    return obj


def _lines(objs) -> str:
    return "".join(json.dumps(_with_edges(o, None)) + "\n" for o in objs)


def append(path: Path | None, obj: dict[str, Any]) -> None:
    if path is None:
        return
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a") as f:  # one write of whole lines
        f.write(_lines(([{"kind": "bins", "edges": EDGES}] if new else []) + [obj]))


def rewrite(path: Path, records: list, warnings: list) -> None:
    lines = sorted(records + warnings, key=lambda o: (o["step"], o["kind"] != "record"))
    write_atomic(path, _lines([{"kind": "bins", "edges": EDGES}] + lines))


def read_health(run_dir: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """(records, warnings) of a run folder's ``health.jsonl`` (or that file), by step.

    A line cut short (a run killed while writing) is skipped; when a step was recorded
    twice (a run resumed from before it) the last record counts; each (kind, layer)
    warning once, the first."""
    path = Path(run_dir)
    path = path / "health.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the run was trained with "
                                "health_every=0 (or before health records existed)")
    records: dict[int, dict] = {}
    warnings: dict[tuple, dict] = {}
    edges = EDGES
    for line in path.read_text().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("kind") == "bins":
            edges = obj["edges"]
        elif obj.get("kind") == "record":
            records[obj["step"]] = _with_edges(obj, edges)
        elif obj.get("kind") == "warning":
            warnings.setdefault((obj["warning"], obj["layer"]), obj)
    return (sorted(records.values(), key=lambda r: r["step"]),
            sorted(warnings.values(), key=lambda w: w["step"]))
