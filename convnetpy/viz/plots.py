"""Every chart convnetpy draws (training curves, confusion matrix, per-class accuracy, LR
range test, embeddings) as a matplotlib ``Figure`` with labelled axes, ticks and legends.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never through pyplot:
no GUI backend, no global figure registry (a figure is freed when its last reference goes,
so a run that writes curves.png every epoch does not grow), and training threads can draw
beside the dashboard. Rendering is serialised by a lock because matplotlib's font caches are
shared. Each ``*_figure`` function returns the Figure so that callers (and tests) can read
the plotted data back from its artists; ``save_figure`` writes it atomically as PNG and
``figure_png`` returns the PNG bytes (for HTML reports).

>>> fig = curves_figure([{"epoch": 1, "loss": 2.0, "acc": 0.3, "val_loss": 1.9, "val_acc": 0.35},
...                      {"epoch": 2, "loss": 1.5, "acc": 0.5, "val_loss": 1.6, "val_acc": 0.45}])
>>> [ax.get_ylabel() for ax in fig.axes]
['loss', 'accuracy (%)']
>>> figure_png(fig)[:4]
b'\\x89PNG'
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..io.files import write_atomic

History = Sequence[Mapping[str, Any]]
_RENDER = threading.Lock()
# (history key, legend name, line style): solid train, dashed validation, dotted TTA
_SERIES = {"loss": [("loss", "train", "-"), ("val_loss", "validation", "--")],
           "acc": [("acc", "train", "-"), ("val_acc", "validation", "--"),
                   ("val_acc_tta", "validation (TTA)", ":")]}
_SINGLE = {"train": "tab:blue", "validation": "tab:orange", "validation (TTA)": "tab:green"}


def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A white figure with an Agg canvas, laid out by matplotlib unless ``layout`` is None
    (fixed margins: constrained layout doubles the cost of a small figure)."""
    fig = Figure(figsize=(width, height), facecolor="white", layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _style(ax, title: str, xlabel: str, ylabel: str, grid: bool = True) -> None:
    """Title, axis labels, tick size and a light grid, identical on every panel."""
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.yaxis.get_offset_text().set_fontsize(8)
    if grid:
        ax.grid(True, color="0.88", linewidth=0.7)
        ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _colours(n: int) -> list:
    """``n`` distinct colours: tab10 up to 10, tab20 up to 20, then a sampled rainbow."""
    if n <= 10:
        return list(colormaps["tab10"].colors[:n])
    if n <= 20:
        return list(colormaps["tab20"].colors[:n])
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def _points(history: History, key: str, scale: float = 1.0) -> tuple[list, list]:
    """(epochs, values) of the records that have ``key`` (a value may be missing or None)."""
    pts = [(m["epoch"], m[key] * scale) for m in history if m.get(key) is not None]
    return [e for e, _ in pts], [v for _, v in pts]


def curves_figure(runs: History | Mapping[str, History]) -> Figure:
    """Loss and accuracy (%) per epoch, train solid and validation dashed, plus the learning
    rate in a third panel when the records have ``lr``.

    ``runs`` is one history (the records of metrics.jsonl: epoch, loss, acc, val_loss,
    val_acc, optionally val_acc_tta and lr) or a dict name -> history to overlay several
    runs, one colour per run. Points are drawn at their own epoch numbers, with markers, so
    a resumed run with missing epochs shows where its points are.
    """
    named = dict(runs) if isinstance(runs, Mapping) else {"": runs}
    if not named or not any(len(h) for h in named.values()):
        raise ValueError("curves_figure: no epoch to plot (the history is empty); "
                         "give the records of metrics.jsonl after at least one epoch")
    has_lr = any(m.get("lr") is not None for h in named.values() for m in h)
    # drawn every epoch during training: fixed margins keep it near 0.2 s
    fig = _figure(13 if has_lr else 10, 4, layout=None)
    fig.subplots_adjust(left=0.07 if has_lr else 0.08, right=0.98, bottom=0.13, top=0.92,
                        wspace=0.25)
    axes = fig.subplots(1, 3 if has_lr else 2, width_ratios=[1, 1, 0.7][: 2 + has_lr])
    _style(axes[0], "loss", "epoch", "loss")
    _style(axes[1], "accuracy", "epoch", "accuracy (%)")
    several = len(named) > 1 or "" not in named
    colour = dict(zip(named, _colours(len(named))))
    drawn: dict[str, dict[str, str]] = {"loss": {}, "acc": {}}  # panel -> series -> style
    for name, history in named.items():
        for ax, panel, scale in ((axes[0], "loss", 1.0), (axes[1], "acc", 100.0)):
            for key, series, style in _SERIES[panel]:
                x, y = _points(history, key, scale)
                if x:
                    drawn[panel][series] = style
                    c = colour[name] if several else _SINGLE[series]
                    ax.plot(x, y, style, color=c, marker="o", markersize=3, linewidth=1.6,
                            label=f"{name}: {series}" if several else series)
        if has_lr:
            x, y = _points(history, "lr")
            axes[2].plot(x, y, "-", color=colour[name] if several else "tab:purple",
                         marker="o", markersize=3, linewidth=1.4, label=name or "lr")
    if not several:
        x, y = _points(named[""], "val_acc", 100.0)
        if x:
            i = int(np.argmax(y))
            axes[1].plot([x[i]], [y[i]], "*", color="tab:red", markersize=11, zorder=3,
                         label=f"best validation {y[i]:.2f}% (epoch {x[i]})")
    for ax, panel in zip(axes, ("loss", "acc")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if several:  # one entry per run by colour, one per series by line style
            handles = [Line2D([], [], color=colour[n], linewidth=2, label=n) for n in named]
            handles += [Line2D([], [], color="0.3", linestyle=style, label=series)
                        for series, style in drawn[panel].items()]
            ax.legend(handles=handles, fontsize=8)
        elif ax.get_lines():
            ax.legend(fontsize=8)
    if has_lr:
        _style(axes[2], "learning rate", "epoch", "lr")
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        lrs = [v for ln in axes[2].get_lines() for v in ln.get_ydata()]
        if lrs and min(lrs) > 0 and max(lrs) / min(lrs) > 20:  # schedules span decades
            axes[2].set_yscale("log")
        else:
            axes[2].ticklabel_format(axis="y", style="sci", scilimits=(-2, 4))
        if several:
            axes[2].legend(fontsize=8)
    return fig


def confusion_figure(conf: np.ndarray, classes: Sequence[str], normalise: bool = True,
                     title: str | None = None) -> Figure:
    """The confusion matrix: rows the true class, columns the predicted class.

    With ``normalise`` the colour is the row share (what fraction of each true class went
    where) and each cell reads "count" over "row %"; without it the colour is the count.
    Cell text is left out beyond 20 classes, where it could not be read.
    """
    conf = np.asarray(conf)
    k = len(classes)
    if conf.ndim != 2 or conf.shape != (k, k):
        raise ValueError(f"confusion_figure: conf has shape {conf.shape} but there are {k} "
                         f"classes; give a ({k}, {k}) matrix, rows true and columns predicted")
    shown = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1) if normalise else conf
    side = float(np.clip(0.55 * k + 2.5, 5, 22))
    fig = _figure(side + 1.2, side)
    ax = fig.subplots()
    top = 1.0 if normalise else max(float(conf.max()), 1.0)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=top, interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.set_label("share of the true class" if normalise else "images", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    if title is None:
        n = int(conf.sum())
        title = f"confusion matrix: {n} images, accuracy {np.trace(conf) / max(n, 1):.1%}"
    _style(ax, title, "predicted class", "true class", grid=False)
    names = [str(c) for c in classes]
    size = 8 if k <= 20 else 6 if k <= 60 else 5
    long = k > 10 or max(len(s) for s in names) > 4
    ax.set_xticks(range(k), names, fontsize=size, rotation=45 if long else 0,
                  ha="right" if long else "center", rotation_mode="anchor")
    ax.set_yticks(range(k), names, fontsize=size)
    if k <= 20:
        fs = 8 if k <= 12 else 6
        for i in range(k):
            for j in range(k):
                text = f"{conf[i, j]}" + (f"\n{shown[i, j]:.0%}" if normalise else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=fs,
                        color="white" if shown[i, j] > 0.55 * top else "black")
    return fig


def per_class_figure(acc_by_class: Mapping[str, float] | Mapping[str, Mapping[str, float]],
                     title: str = "accuracy per class") -> Figure:
    """Horizontal bars of accuracy (%) per class, first class on top; ``acc_by_class`` is a
    dict class -> accuracy (0..1), or a dict run -> such a dict for grouped bars."""
    several = bool(acc_by_class) and all(isinstance(v, Mapping) for v in acc_by_class.values())
    named = dict(acc_by_class) if several else {"": acc_by_class}
    classes = list(dict.fromkeys(c for accs in named.values() for c in accs))
    if not classes:
        raise ValueError("per_class_figure: no class to plot; give a dict class -> accuracy")
    fig = _figure(8, float(np.clip(0.3 * len(classes) * len(named) + 1.5, 3, 24)))
    ax = fig.subplots()
    _style(ax, title, "accuracy (%)", "class")
    height = 0.8 / len(named)
    for r, (name, colour) in enumerate(zip(named, _colours(len(named)))):
        y = np.arange(len(classes)) + (r - (len(named) - 1) / 2) * height
        acc = [100.0 * float(named[name].get(c, np.nan)) for c in classes]
        bars = ax.barh(y, acc, height=height * 0.9, color=colour, label=name or None)
        if len(classes) * len(named) <= 40:
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_ylim(len(classes) - 0.5, -0.5)  # first class on top
    ax.set_xlim(0, 105)
    if several:
        ax.legend(fontsize=8, loc="lower right")
    return fig


def lr_find_figure(lrs: Sequence[float], losses: Sequence[float],
                   suggested_lr: float | None = None,
                   smoothed: Sequence[float] | None = None) -> Figure:
    """Loss against learning rate on a log axis (the LR range test), the smoothed loss on
    top when given and the suggested rate as a vertical line with its value in the legend.
    Non-finite losses (a diverged end) are not drawn, and the y axis stops at 3x the
    starting loss (the median of the first tenth) so a blow-up does not flatten the rest."""
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if lrs.ndim != 1 or lrs.shape != losses.shape or len(lrs) == 0:
        raise ValueError(f"lr_find_figure: lrs {lrs.shape} and losses {losses.shape} must be "
                         "two non-empty 1-D sequences of the same length")
    if np.any(lrs <= 0):
        raise ValueError("lr_find_figure: learning rates must be positive (log axis)")
    fig = _figure(7, 4.5)
    ax = fig.subplots()
    _style(ax, "learning-rate range test", "learning rate (log scale)", "loss")
    ok = np.isfinite(losses)
    ax.plot(lrs[ok], losses[ok], "-", color="tab:blue", alpha=0.45 if smoothed is not None
            else 1.0, linewidth=1, marker=".", markersize=3, label="loss")
    ref = losses[ok]
    if smoothed is not None:
        sm = np.asarray(smoothed, dtype=float)
        if sm.shape != lrs.shape:
            raise ValueError(f"lr_find_figure: smoothed {sm.shape} must match lrs {lrs.shape}")
        good = np.isfinite(sm)
        ax.plot(lrs[good], sm[good], "-", color="tab:blue", linewidth=2, label="smoothed")
        ref = sm[good] if good.any() else ref
    if suggested_lr is not None:
        ax.axvline(suggested_lr, color="tab:red", linestyle="--", linewidth=1.5,
                   label=f"suggested lr {suggested_lr:.2e}")
    ax.set_xscale("log")
    if len(ref):
        start = float(np.median(ref[: max(1, len(ref) // 10)]))
        lo = float(min(ref.min(), losses[ok].min(initial=np.inf)))  # no raw loss below it
        top = min(float(ref.max()), 3 * start) if start > 0 else float(ref.max())
        pad = 0.08 * max(top - lo, 1e-3)
        ax.set_ylim(lo - pad, top + pad)
    ax.legend(fontsize=8)
    return fig


def embedding_figure(points: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                     title: str = "feature space", xlabel: str = "component 1",
                     ylabel: str = "component 2") -> Figure:
    """A scatter of 2-D points (N, 2) coloured by class, one collection per class present
    (in class order, labelled with its name in the legend)."""
    points, labels = np.asarray(points, dtype=float), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or labels.shape != (len(points),):
        raise ValueError(f"embedding_figure: points {points.shape} must be (N, 2) and labels "
                         f"{labels.shape} must be (N,)")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"embedding_figure: labels must be class indices in 0..{len(classes)-1}"
                         f", got {labels.min()}..{labels.max()}")
    k = len(classes)
    fig = _figure(7.5 if k <= 20 else 9, 6)
    ax = fig.subplots()
    _style(ax, title, xlabel, ylabel)
    size = float(np.clip(4000 / max(len(points), 1), 3, 30))
    for c, colour in enumerate(_colours(k)):
        mask = labels == c
        if mask.any():
            ax.scatter(points[mask, 0], points[mask, 1], s=size, color=colour, alpha=0.75,
                       linewidths=0, label=str(classes[c]))
    ax.legend(fontsize=8 if k <= 20 else 6, markerscale=max(1.0, 30 / size) ** 0.5,
              loc="center left", bbox_to_anchor=(1.01, 0.5), ncols=1 + k // 26,
              frameon=False)
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for embedding in an HTML report)."""
    buf = io.BytesIO()
    with _RENDER:
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """Write the figure as a PNG at ``path`` atomically (``io.files.write_atomic``),
    rendered first: a drawing error leaves no file at all."""
    write_atomic(path, figure_png(fig, dpi))
