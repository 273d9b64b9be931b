"""When a health record raises a warning, and what the warning says: the thresholds, each
with why it is where it is, and ``check``, a pure function of the records so that a resumed
run warns exactly as a straight one."""

from __future__ import annotations

from typing import Any

import numpy as np

RATIO_HIGH = 1e-1
"""update/param above this in HIGH_RECORDS of the last HIGH_WINDOW records: the learning
rate is likely too high. CS231n calls ~1e-3 healthy and 1e-2 high, but this project's
tuned recipes run above 1e-2 near their peak lr (digits-lenet5, 98%: up to 4e-2;
cifar10-quick's first 40 steps: up to 1.1e-1, its batch-normed convolutions), where a
warning would be noise."""
HIGH_RECORDS, HIGH_WINDOW = 2, 3
"""How many of how many last records must be above RATIO_HIGH for the warning: one
record is a spike, not a regime, and far too big steps alternate with steps of 0 where
the softmax saturates, so not every record either."""
RATIO_LOW = 1e-5
"""update/param below this for LOW_RECORDS records in a row: lr too low or layer stuck."""
LOW_RECORDS = 3
"""How many records in a row a ratio must stay below RATIO_LOW before the warning."""
LOW_LR_SHARE = 0.1
"""The low-ratio check waits while the lr is below this share of the highest lr so far
(an annealed schedule is meant to stop moving the weights)."""
DEAD_FRACTION = 0.5
"""A ReLU layer with more than this share of dead units (channels) gets a warning."""
GRAD_EXPLODE = 100.0
"""Total gradient norm above this many times the median of the earlier records: exploding."""
GRAD_VANISH = 1e-4
"""A layer whose gradient norm is below this share of the largest layer's: vanishing."""
INIT_TOLERANCE = 1.5
"""The first loss should be near ln(C) (a fresh model guesses uniformly); more than this
factor above (or below) it gets a warning."""
WARNINGS = ("init_loss", "ratio_high", "ratio_low", "dead_relu", "grad_nonfinite",
            "grad_explode", "grad_vanish")
"""The kinds of warning, each printed once per layer."""


def message(kind: str, layer: str | None, value: float) -> str:
    hints = {
        "ratio_high": f"update/param {value:.1e} (healthy ~1e-3, warned above "
                      f"{RATIO_HIGH:g} in {HIGH_RECORDS} of {HIGH_WINDOW} records): learning "
                      "rate likely too high",
        "ratio_low": f"update/param {value:.1e} for {LOW_RECORDS} records (below "
                     f"{RATIO_LOW:g}): learning rate likely too low, or the layer is not "
                     "learning (frozen upstream, dead units)",
        "dead_relu": f"{value:.0%} of the units never activated on the batch (warned above "
                     f"{DEAD_FRACTION:.0%}): the learning rate may have been too high, or the "
                     "initialisation/biases push them negative; try a lower lr or LeakyReLU",
        "grad_nonfinite": "gradient norm is not finite: lower the lr or set grad_clip",
        "grad_explode": f"gradient norm {value:.2e}, over {GRAD_EXPLODE:g}x its median so "
                        "far: exploding; lower the lr or set grad_clip",
        "grad_vanish": f"gradient norm {value:.1e} of the largest layer's (below "
                       f"{GRAD_VANISH:g}): vanishing gradients; check the depth, the "
                       "activations (saturated, dead) and the initialisation",
        "init_loss": f"first loss is {value:.2f} x ln(classes), a fresh model should be "
                     f"near 1 (warned beyond {INIT_TOLERANCE:g}x): check the "
                     "initialisation and the scale of the last layer",
    }
    return (f"{layer}: " if layer else "") + hints[kind]


def _ratios(records: list[dict[str, Any]], layer: str) -> list[float | None]:
    """The layer's update/param ratios in ``records`` (None where it has none, or where its
    numbers are its bias's, whose norm starts at zero)."""
    out = []
    for r in records:
        v = r["layers"].get(layer)
        out.append(v["ratio"] if v and v["params"] != ["bias"] else None)
    return out


def check(record: dict[str, Any], earlier: list[dict[str, Any]]) -> list[tuple]:
    """The (kind, layer, value) warnings that ``record`` raises after the ``earlier``
    records of the run: a pure function of them, so a resumed run warns as a straight one."""
    out: list[tuple] = []
    init = record.get("init")
    if init and init["loss"] is not None and init["chance_loss"] > 0:
        r = init["loss"] / init["chance_loss"]
        if not 1 / INIT_TOLERANCE <= r <= INIT_TOLERANCE:
            out.append(("init_loss", None, r))
    total = record["grad_norm"]
    past = [e["grad_norm"] for e in earlier if e.get("grad_norm") is not None]
    if total is None:
        out.append(("grad_nonfinite", None, float("nan")))
    elif len(past) >= 3 and total > GRAD_EXPLODE * float(np.median(past)):
        out.append(("grad_explode", None, total))
    layers = record["layers"]
    biggest = max((v["grad_norm"] or 0.0 for v in layers.values()), default=0.0)
    top_lr = max([e.get("lr") or 0.0 for e in earlier] + [record.get("lr") or 0.0])
    for name, v in layers.items():
        high = _ratios(earlier[max(len(earlier) - HIGH_WINDOW + 1, 0):] + [record], name)
        if high[-1] is not None and high[-1] > RATIO_HIGH and sum(
                r is not None and r > RATIO_HIGH for r in high) >= HIGH_RECORDS:
            out.append(("ratio_high", name, high[-1]))
        recent = earlier[max(len(earlier) - LOW_RECORDS + 1, 0):] + [record]
        low = _ratios(recent, name)
        if len(low) == LOW_RECORDS and all(
                r is not None and r < RATIO_LOW and (e.get("lr") or 0.0) >= LOW_LR_SHARE * top_lr
                for r, e in zip(low, recent)):
            out.append(("ratio_low", name, low[-1]))
        g = v["grad_norm"]
        if g is not None and biggest > 0 and g < GRAD_VANISH * biggest:
            out.append(("grad_vanish", name, g / biggest))
    for name, a in record["activations"].items():
        if a["dead"] is not None and a["dead"] > DEAD_FRACTION:
            out.append(("dead_relu", name, a["dead"]))
    return out
