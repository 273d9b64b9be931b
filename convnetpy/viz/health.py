"""The figure of a run's training-health records (``convnetpy.train.health``): the
update/parameter ratio and the gradient norm of each layer over the steps, the share of
dead ReLU units of each activation layer, and one activation layer's histogram over time,
with the warnings marked where they were raised.

>>> from convnetpy.train.health import histogram
>>> recs = [{"step": s, "lr": 0.1, "loss": 2.3, "grad_norm": 1.0,
...          "layers": {"fc": {"params": ["weight"], "ratio": 1e-3 * s, "grad_norm": 1.0}},
...          "activations": {"relu": {"type": "ReLU", "dead": 0.1,
...                                   "hist": histogram(np.ones(4))}}} for s in (1, 2)]
>>> fig = health_figure(recs)
>>> [ax.get_title()[:24] for ax in fig.axes[:3]]
['update / parameter ratio', 'gradient norm', 'dead ReLU units']
>>> fig.axes[0].get_lines()[0].get_ydata().tolist()
[0.001, 0.002]
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ..train.health import DEAD_FRACTION, RATIO_HIGH, RATIO_LOW
from .plots import _colours, _figure, _style

Records = Sequence[Mapping[str, Any]]
# which panel a warning is marked on, and what its y value is read from
_PANEL = {"ratio_high": 0, "ratio_low": 0, "grad_explode": 1, "grad_vanish": 1,
          "grad_nonfinite": 1, "dead_relu": 2}


def _series(records: Records, part: str, layer: str, key: str,
            scale: float = 1.0) -> tuple[list[int], list[float]]:
    """(steps, values) of ``record[part][layer][key]`` where it is a number."""
    pts = [(r["step"], r[part][layer][key] * scale) for r in records
           if layer in r.get(part, {}) and r[part][layer].get(key) is not None]
    return [s for s, _ in pts], [v for _, v in pts]


def _names(records: Records, part: str, keep=lambda v: True) -> list[str]:
    """The layer names of ``part`` in the order they first appear."""
    names: dict[str, None] = {}
    for r in records:
        for k, v in r.get(part, {}).items():
            if keep(v):
                names.setdefault(k, None)
    return list(names)


def _hist_panel(ax, records: Records, layer: str | None) -> None:
    if layer is None:
        _style(ax, "activation histogram", "record (step)", "value", grid=False)
        ax.text(0.5, 0.5, "no activation layer recorded", ha="center", va="center",
                transform=ax.transAxes)
        return
    rows = [r for r in records if layer in r.get("activations", {})]
    edges = np.asarray(rows[0]["activations"][layer]["hist"]["edges"])
    counts = np.array([r["activations"][layer]["hist"]["counts"] for r in rows], float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    # rows: bins from the most negative up; columns: records in order
    img = ax.imshow(np.where(share > 0, share, np.nan).T, origin="lower", aspect="auto",
                    cmap="viridis", norm=LogNorm(vmin=1e-4, vmax=1), interpolation="nearest")
    ax.figure.colorbar(img, ax=ax, label="share of the values")
    _style(ax, f"activation histogram over time: {layer}", "record (step)",
           "value (signed log bins)", grid=False)
    # ticks on about every second decade of the octave edges, and "0" on the middle bin
    # (|x| below the smallest edge), which holds the zeros
    mag = np.abs(edges)
    octave = np.round(np.log2(mag)).astype(int)
    ticks = [i for i, k in enumerate(octave) if k in (7, 0, -7, -13, -20)]
    middle = int(np.argmin(mag[:-1] + mag[1:]))
    ax.set_yticks([i - 0.5 for i in ticks] + [middle],
                  [f"{edges[i]:.0f}" if mag[i] >= 1 else f"{edges[i]:.1e}" for i in ticks]
                  + [f"0 (\u00b1{mag[middle]:.1e})"])
    step = max(1, len(rows) // 8)
    ax.set_xticks(range(0, len(rows), step), [str(r["step"]) for r in rows[::step]])


def health_figure(records: Records, warnings: Sequence[Mapping[str, Any]] | None = None,
                  activation: str | None = None) -> Figure:
    """Four panels from the records of ``read_health`` (and its warnings, marked with red
    crosses): update/param ratio per layer (log scale; CS231n's healthy 1e-3 dashed, the
    warning thresholds dotted), gradient norm per layer and for all (log scale), the
    percentage of dead ReLU units per ReLU layer, and the histogram of ``activation``'s
    outputs (default: the last activation layer) over the records as a heat map, one
    column a record, on the fixed signed-log bins of the records."""
    records = sorted(records, key=lambda r: r["step"])
    if not records:
        raise ValueError("health_figure: no record to plot; train with health_every > 0 "
                         "and read the records with convnetpy.train.read_health(run_dir)")
    fig = _figure(13, 8)
    axes = fig.subplots(2, 2).ravel()
    layers = _names(records, "layers")
    colour = dict(zip(layers, _colours(len(layers))))
    for name in _names(records, "layers", lambda v: v.get("params") != ["bias"]):
        x, y = _series(records, "layers", name, "ratio")
        if x:
            axes[0].plot(x, y, "-o", color=colour[name], markersize=3, linewidth=1.3,
                         label=name)
    axes[0].axhline(1e-3, color="tab:green", linestyle="--", linewidth=1.2,
                    label="healthy ~1e-3")
    for level in (RATIO_HIGH, RATIO_LOW):
        axes[0].axhline(level, color="tab:red", linestyle=":", linewidth=1.0,
                        label="warning thresholds" if level == RATIO_HIGH else None)
    _style(axes[0], "update / parameter ratio (layers' colours: right)", "step",
           "||update|| / ||weight||")
    for name in layers:
        x, y = _series(records, "layers", name, "grad_norm")
        if x:
            axes[1].plot(x, y, "-o", color=colour[name], markersize=3, linewidth=1.3,
                         label=name)
    pts = [(r["step"], r["grad_norm"]) for r in records if r.get("grad_norm") is not None]
    if pts:
        axes[1].plot(*zip(*pts), "-", color="black", linewidth=2, label="all layers")
    _style(axes[1], "gradient norm", "step", "||gradient||")
    relus = _names(records, "activations", lambda v: v.get("dead") is not None)
    for name, c in zip(relus, _colours(len(relus))):
        x, y = _series(records, "activations", name, "dead", 100.0)
        axes[2].plot(x, y, "-o", color=c, markersize=3, linewidth=1.3, label=name)
    axes[2].axhline(100 * DEAD_FRACTION, color="tab:red", linestyle=":", linewidth=1.0,
                    label="warning threshold")
    axes[2].set_ylim(-3, 103)
    _style(axes[2], "dead ReLU units", "step", "units dead on the batch (%)")
    if not relus:
        axes[2].text(0.5, 0.5, "no ReLU module recorded", ha="center", va="center",
                     transform=axes[2].transAxes)
    acts = _names(records, "activations")
    _hist_panel(axes[3], records, activation or (acts[-1] if acts else None))
    _mark(axes, records, warnings or [])
    for ax in axes[:2]:
        if ax.get_lines():
            ax.set_yscale("log")
    # the layers' colours once, beside the gradient panel (both top panels use them); the
    # ratio panel names its reference lines only
    handles, labels = axes[0].get_legend_handles_labels()
    refs = [(h, lab) for h, lab in zip(handles, labels) if lab not in colour]
    if refs:
        axes[0].legend(*zip(*refs), fontsize=7, loc="lower right")
    for ax in axes[1:3]:
        if ax.get_legend_handles_labels()[0]:
            outside = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0)) if ax is axes[1] else {}
            ax.legend(fontsize=7, ncol=1 + len(ax.get_lines()) // 16, **outside)
    fig.suptitle(_title(records, warnings or []), fontsize=12)
    return fig


def _mark(axes, records: Records, warnings: Sequence[Mapping[str, Any]]) -> None:
    """A red cross per warning at its step and value on its panel."""
    by_step = {r["step"]: r for r in records}
    labelled: set[int] = set()
    for w in warnings:
        panel, r = _PANEL.get(w.get("warning")), by_step.get(w.get("step"))
        if panel is None or r is None:
            continue
        layer = w.get("layer")
        if panel == 0:
            y = r["layers"].get(layer, {}).get("ratio")
        elif panel == 1:
            y = r["layers"].get(layer, {}).get("grad_norm") if layer else r.get("grad_norm")
        else:
            dead = r["activations"].get(layer, {}).get("dead")
            y = None if dead is None else 100 * dead
        if y is not None:
            axes[panel].plot([w["step"]], [y], "x", color="red", markersize=10, zorder=3,
                             markeredgewidth=2,
                             label=None if panel in labelled else "warning")
            labelled.add(panel)


def _title(records: Records, warnings: Sequence[Mapping[str, Any]]) -> str:
    parts = ["training health"]
    init = records[0].get("init")
    if init and init.get("loss") is not None:
        parts.append(f"first loss {init['loss']:.3f} vs ln({init['num_classes']}) = "
                     f"{init['chance_loss']:.3f}")
    parts.append(f"{len(warnings)} warning{'s' * (len(warnings) != 1)}")
    return ";  ".join(parts)
