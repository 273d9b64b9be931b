"""Text, Markdown, CSV and JSON renderings of a Summary."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Any

CONVENTIONS = (
    "MACs: multiply-accumulates of the weighted ops, conv, linear and matrix products (conv: "
    "N*C_out*H_out*W_out*(C_in/groups)*KH*KW; linear: N*in*out); FLOPs = 2 x MACs. "
    "Training FLOPs: every op (pooling, batch norm, activations, adds, the loss too) "
    "counted from its own forward "
    "and backward arithmetic, in the evaluation-mode pass the summary makes (batch norm "
    "with running statistics, no dropout). Activation memory: every op's output (views "
    "excluded). Training memory: one step played out op by op, with each kernel's own "
    "workspace. RF: receptive field size / jump / start (centre of the first unit) in input "
    "pixels."
)


def fmt_int(v: int) -> str:
    return f"{v:,}"


def fmt_bytes(v: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if v >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{int(v)} B"


def fmt_count(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if v >= scale:
            return f"{v / scale:.3f} {unit}"
    return str(int(v))


def _pair(v) -> str:
    v = tuple(v)
    return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"


def formula(r: dict) -> str:
    parts = [p for p in r["formula"].split("; ") if p]
    if len(parts) == 2 and parts[0][3:] == parts[1][3:]:
        return "H,W:" + parts[0][2:]
    return "; ".join(parts)


def cells(r: dict) -> list[str]:
    shape = "" if r["output_shape"] is None else str(tuple(r["output_shape"]))
    params = fmt_int(r["params"]) if r["params"] else ("0" if r["calls"] else "")
    if r["non_trainable"]:
        params += f" ({fmt_int(r['non_trainable'])} frozen)"
    rf = f"{_pair(r['rf_size'])} / {_pair(r['rf_jump'])} / {_pair(r['rf_start'])}"
    return [r["type"], shape, formula(r), params, fmt_int(r["macs"]) if r["macs"] else "",
            fmt_bytes(r["act_bytes"]) if r["act_bytes"] else "", rf if r["calls"] else ""]


HEAD = ["Layer", "Type", "Output shape", "Size formula", "Params", "MACs", "Act. memory",
        "RF size / jump / start"]


def _notes(s) -> list[str]:
    out = []
    for r in s.rows:
        for n in r["notes"]:
            out.append(f"{r['name']}: {n}")
    return out


def _totals(s) -> list[tuple[str, str]]:
    opt = {"sgd": "plain SGD: none", "momentum": "momentum: 1 x params",
           "adam": "Adam: 2 x params"}[s.optimizer]
    p = s.peak
    where = next((r["type"] for r in s.rows if r["path"] == p.path), "")
    return [
        ("Parameters", f"{fmt_int(s.total_params)} (trainable {fmt_int(s.trainable_params)}, "
                       f"non-trainable {fmt_int(s.non_trainable_params)}), "
                       f"{fmt_bytes(s.param_bytes)}"),
        ("Forward MACs", f"{fmt_int(s.total_macs)} ({fmt_count(s.total_macs)}MACs, "
                         f"{fmt_count(s.total_flops)}FLOPs)"),
        ("Training FLOPs", f"{fmt_count(s.train_flops)}FLOPs per step (forward "
                           f"{fmt_count(s.forward_flops)}FLOPs + backward "
                           f"{fmt_count(s.backward_flops)}FLOPs, every op)"),
        ("Input", f"{s.input_size}, {fmt_bytes(s.input_bytes)}"),
        ("Activations", f"{fmt_bytes(s.activation_bytes)} at batch {s.batch}"),
        ("Training memory", f"{fmt_bytes(s.training_bytes)} at the peak of a step "
                            f"({s.compute_path} path), in the {p.phase} pass of "
                            f"{p.path or '(model)'} ({where}) = parameters "
                            f"{fmt_bytes(s.param_bytes)} "
                            f"+ buffers {fmt_bytes(s.buffer_bytes)} + optimizer state ({opt}) "
                            f"{fmt_bytes(s.optimizer_bytes)} + outputs held "
                            f"{fmt_bytes(p.activations)} + kept for backward "
                            f"{fmt_bytes(p.saved)} + gradients {fmt_bytes(p.gradients)} + "
                            f"kernel workspace {fmt_bytes(p.workspace)}"),
    ]


def _conv_table(s) -> list[list[str]]:
    return [[r["name"], fmt_int(r["conv"]["shared_params"]), fmt_int(r["conv"]["unshared_params"]),
             fmt_int(r["conv"]["dense_params"])] for r in s.rows if r["conv"]]


CONV_HEAD = ["Conv layer", "Params (shared weights)", "Without sharing (locally connected)",
             "As a fully-connected layer"]


def _grid(head: list[str], body: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def line(vals):
        return "  ".join(v.rjust(w) if i in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(vals, widths))).rstrip()

    return [line(head), "  ".join("-" * w for w in widths)] + [line(b) for b in body]


def text(s) -> str:
    body = [["  " * r["depth"] + (r["path"].rsplit(".", 1)[-1] if r["path"] else "(model)")]
            + cells(r) for r in s.rows]
    lines = [f"{s.model_name} for input {s.input_size} (optimizer: {s.optimizer})", ""]
    lines += _grid(HEAD, body, {4, 5, 6})
    lines += [""] + [f"{k + ':':17s}{v}" for k, v in _totals(s)]
    conv = _conv_table(s)
    if conv:
        lines += ["", "Why convolution: the same mappings without weight sharing, or dense"]
        lines += _grid(CONV_HEAD, conv, {1, 2, 3})
    notes = _notes(s)
    if notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in notes]
    lines += ["", CONVENTIONS]
    return "\n".join(lines)


def markdown(s) -> str:
    def row(vals):
        return "| " + " | ".join(v.replace("|", "\\|") for v in vals) + " |"

    lines = [f"**{s.model_name}** for input `{s.input_size}` (optimizer: {s.optimizer})", "",
             row(HEAD), row(["---"] * len(HEAD))]
    lines += [row(["&nbsp;" * 2 * r["depth"] + f"`{r['name']}`"] + cells(r)) for r in s.rows]
    lines += [""] + [f"- **{k}**: {v}" for k, v in _totals(s)]
    conv = _conv_table(s)
    if conv:
        lines += ["", row(CONV_HEAD), row(["---"] * 4)] + [row(c) for c in conv]
    notes = _notes(s)
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines + ["", CONVENTIONS])


FIELDS = ["name", "type", "depth", "output_shape", "formula", "params", "trainable",
          "non_trainable", "macs", "flops", "act_bytes", "rf_size", "rf_jump", "rf_start",
          "notes"]


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    return v


def csv_text(s) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    for r in s.rows:
        w.writerow(["x".join(map(str, r[k])) if isinstance(r[k], tuple) and k != "notes"
                    else " | ".join(r[k]) if k == "notes" else ("" if r[k] is None else r[k])
                    for k in FIELDS])
    return buf.getvalue()


def json_text(s) -> str:
    totals = {k: getattr(s, k) for k in (
        "total_params", "trainable_params", "non_trainable_params", "param_bytes",
        "buffer_bytes", "total_macs", "total_flops", "forward_flops", "backward_flops",
        "train_flops", "activation_bytes",
        "gradient_bytes", "optimizer_bytes", "training_bytes", "compute_path")}
    totals["training_peak"] = dataclasses.asdict(s.peak)
    rows = [{k: _plain(r[k]) for k in FIELDS + ["conv"]} for r in s.rows]
    return json.dumps({"model": s.model_name, "input_size": list(s.input_size),
                       "optimizer": s.optimizer, "conventions": CONVENTIONS,
                       "rows": rows, "totals": totals}, indent=1)
