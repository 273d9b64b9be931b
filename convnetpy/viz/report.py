"""One self-contained HTML page about one or more training runs (``convnetpy report``).

The page is built from data the caller gathered (``RunData``: the history of metrics.jsonl,
the confusion matrix of an evaluated checkpoint, the most confused images, the summary
text, the architecture SVG, the health records); this module computes nothing about the
model. Everything is inside the file: figures as base64 PNG ``data:`` URIs, the diagram as
inline SVG, the style inline, no script and no link to the network, so it opens anywhere,
offline, and can be mailed as it is. Numbers a reader may want to check (the confusion
matrix, per-class accuracy, the confused images) are also in tables whose cells carry
``data-*`` attributes.

>>> import numpy as np
>>> probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.8, 0.2], [0.45, 0.55]])
>>> [(c.index, c.true, c.pred) for c in most_confused(probs, np.array([0, 0, 1, 1]), 5)]
[(2, 1, 0), (1, 0, 1)]
"""

from __future__ import annotations

import datetime
import html
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..io.files import write_atomic
from ..version import __version__
from . import plots, render


@dataclass
class Confused:
    """A misclassified image: its index in the evaluated split, the uint8 pixels (C, H, W),
    its true and predicted class and the probabilities the model gave both."""
    index: int
    true: int
    pred: int
    prob: float
    true_prob: float
    image: np.ndarray | None = None


@dataclass
class RunData:
    """What the page shows of one run (see ``convnetpy.cli.report`` for how it is read)."""
    name: str
    classes: list[str]
    confusion: np.ndarray  # rows: true class, columns: predicted
    history: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    evaluated_on: str = ""  # which split of which data
    checkpoint: str = ""  # which checkpoint (best or newest, its epoch and step)
    loss: float | None = None
    confused: list[Confused] = field(default_factory=list)
    summary: str | None = None
    diagram: str | None = None  # an SVG document
    health: tuple[list, list] | None = None  # (records, warnings) of train.health
    notes: list[str] = field(default_factory=list)

    @property
    def per_class(self) -> np.ndarray:
        conf = np.asarray(self.confusion)
        return np.diag(conf) / np.maximum(conf.sum(axis=1), 1)

    @property
    def accuracy(self) -> float:
        conf = np.asarray(self.confusion)
        return float(np.trace(conf)) / max(int(conf.sum()), 1)


def most_confused(probs: np.ndarray, labels: np.ndarray, top: int) -> list[Confused]:
    """The ``top`` misclassified images whose predicted (wrong) class got the highest
    probability, most confident mistake first (ties: lower index first). ``probs`` (N, K)
    are softmax outputs, ``labels`` (N,) the true classes."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    conf = probs[wrong, pred[wrong]]
    order = wrong[np.lexsort((wrong, -conf))][:max(top, 0)]
    return [Confused(int(i), int(labels[i]), int(pred[i]), float(probs[i, pred[i]]),
                     float(probs[i, labels[i]])) for i in order]


def thumbnail_png(image: np.ndarray, size: int = 64) -> bytes:
    """uint8 pixels (C, H, W) as a PNG, scaled up (nearest neighbour) to about ``size``."""
    return render.png_bytes(render.pixels_image(image, max(1, size // max(image.shape[1:]))))


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1e293b; margin: 0 auto; padding: 0 24px 48px;
       max-width: 1200px; }
h1 { margin: 24px 0 4px; } h2 { border-bottom: 2px solid #cbd5e1; padding-bottom: 4px;
       margin-top: 40px; } h3 { margin-top: 28px; }
nav { background: #f1f5f9; padding: 8px 12px; border-radius: 6px; }
nav a { margin-right: 10px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #cbd5e1; padding: 3px 8px; text-align: right; }
th { background: #f1f5f9; } td.name, th.name { text-align: left; }
img.fig { max-width: 100%; height: auto; display: block; margin: 8px 0; }
img.square { max-width: min(100%, 680px); }
ol.confused { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 10px; }
ol.confused li { border: 1px solid #cbd5e1; border-radius: 6px; padding: 6px; width: 130px;
       font-size: 12px; text-align: center; }
ol.confused img { image-rendering: pixelated; width: 96px; height: auto; }
.diagram { overflow: auto; max-height: 900px; border: 1px solid #cbd5e1; border-radius: 6px; }
.warn { color: #b45309; } .note { color: #64748b; }
pre { background: #f8fafc; padding: 8px; overflow: auto; font-size: 11px; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _img(fig, alt: str, cls: str = "fig") -> str:
    return f'<img class="{cls}" alt="{_e(alt)}" src="{render.data_url(plots.figure_png(fig))}">'


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def _overview(runs: Sequence[RunData]) -> str:
    head = ("<tr><th class='name'>run</th><th class='name'>model</th><th class='name'>"
            "checkpoint</th><th class='name'>evaluated on</th><th>images</th>"
            "<th>accuracy</th><th>loss</th><th>epochs</th><th>best val acc</th></tr>")
    rows = []
    for i, r in enumerate(runs):
        best = max((m["val_acc"] for m in r.history if m.get("val_acc") is not None),
                   default=None)
        rows.append(
            f"<tr data-run='{_e(r.name)}'><td class='name'><a href='#run-{i}'>{_e(r.name)}</a>"
            f"</td><td class='name'>{_e(r.model)}</td><td class='name'>{_e(r.checkpoint)}</td>"
            f"<td class='name'>{_e(r.evaluated_on)}</td><td>{int(np.sum(r.confusion))}</td>"
            f"<td class='acc' data-value='{r.accuracy!r}'>{_pct(r.accuracy)}</td>"
            f"<td>{'' if r.loss is None else f'{r.loss:.4f}'}</td><td>{len(r.history)}</td>"
            f"<td>{'' if best is None else _pct(best)}</td></tr>")
    return f"<table class='overview'>{head}{''.join(rows)}</table>"


def _comparison(runs: Sequence[RunData]) -> str:
    out = ["<section id='comparison'><h2>Comparison</h2>"]
    histories = {r.name: r.history for r in runs if r.history}
    if histories:
        out.append("<h3>Training curves</h3>" + _img(plots.curves_figure(histories),
                                                     "training curves of all runs"))
    accs = {r.name: dict(zip(r.classes, r.per_class.tolist())) for r in runs}
    out.append("<h3>Accuracy per class</h3>" + _img(plots.per_class_figure(accs),
                                                    "accuracy per class, all runs"))
    classes = list(dict.fromkeys(c for r in runs for c in r.classes))
    head = "<tr><th class='name'>class</th>" + "".join(f"<th>{_e(r.name)}</th>" for r in runs)
    body = "".join(
        f"<tr><td class='name'>{_e(c)}</td>" + "".join(
            f"<td>{_pct(accs[r.name][c]) if c in accs[r.name] else ''}</td>" for r in runs)
        + "</tr>" for c in classes)
    return "".join(out) + f"<table class='per-class-all'>{head}</tr>{body}</table></section>"


def _confusion(i: int, r: RunData) -> str:
    conf = np.asarray(r.confusion)
    fig = _img(plots.confusion_figure(conf, r.classes), f"confusion matrix of {r.name}",
               "fig square")
    head = "<tr><th class='name'>true \\ predicted</th>" + "".join(
        f"<th>{_e(c)}</th>" for c in r.classes) + "</tr>"
    body = "".join(f"<tr><th class='name'>{_e(r.classes[t])}</th>" + "".join(
        f"<td data-true='{t}' data-pred='{p}'>{int(conf[t, p])}</td>"
        for p in range(len(r.classes))) + "</tr>" for t in range(len(r.classes)))
    return (f"<h3 id='run-{i}-confusion'>Confusion matrix</h3>{fig}<details><summary>the "
            f"numbers</summary><table class='confusion'>{head}{body}</table></details>")


def _per_class(i: int, r: RunData) -> str:
    conf = np.asarray(r.confusion)
    acc = r.per_class
    fig = _img(plots.per_class_figure(dict(zip(r.classes, acc.tolist()))),
               f"accuracy per class of {r.name}")
    rows = "".join(
        f"<tr><td class='name'>{_e(c)}</td><td>{int(conf[k, k])}</td>"
        f"<td>{int(conf[k].sum())}</td><td class='acc' data-class='{_e(c)}' "
        f"data-value='{float(acc[k])!r}'>{_pct(acc[k])}</td></tr>"
        for k, c in enumerate(r.classes))
    return (f"<h3 id='run-{i}-per-class'>Accuracy per class</h3>{fig}<table class='per-class'>"
            "<tr><th class='name'>class</th><th>correct</th><th>images</th><th>accuracy</th>"
            f"</tr>{rows}</table>")


def _confused(i: int, r: RunData) -> str:
    out = [f"<h3 id='run-{i}-confused'>Most confused images</h3>"]
    if not r.confused:
        why = "no misclassified image in this split" if r.accuracy == 1 else "none asked for"
        return out[0] + f"<p class='note'>{why}</p>"
    out.append("<p class='note'>misclassified images, the most confident mistake first</p>"
               "<ol class='confused'>")
    for c in r.confused:
        pic = (f'<img alt="image {c.index}" src="{render.data_url(thumbnail_png(c.image))}"><br>'
               if c.image is not None else "")
        out.append(
            f"<li data-index='{c.index}' data-true='{_e(r.classes[c.true])}' "
            f"data-pred='{_e(r.classes[c.pred])}' data-prob='{c.prob!r}'>{pic}#{c.index}<br>"
            f"true <b>{_e(r.classes[c.true])}</b> ({_pct(c.true_prob)})<br>predicted "
            f"<b>{_e(r.classes[c.pred])}</b> ({_pct(c.prob)})</li>")
    return "".join(out) + "</ol>"


def _health(i: int, r: RunData) -> str:
    from .health import health_figure

    records, warnings = r.health
    out = [f"<h3 id='run-{i}-health'>Training health</h3>"]
    if records:
        out.append(_img(health_figure(records, warnings), f"training health of {r.name}"))
    else:
        out.append("<p class='note'>health.jsonl holds no record</p>")
    out += [f"<p class='warn'>step {_e(w.get('step'))}: {_e(w.get('message'))}</p>"
            if isinstance(w, dict) else f"<p class='warn'>{_e(w)}</p>" for w in warnings]
    return "".join(out)


def _run(i: int, r: RunData) -> str:
    out = [f"<section class='run' id='run-{i}' data-run='{_e(r.name)}'><h2>{_e(r.name)}</h2>",
           f"<p>{_e(r.model)}; checkpoint: {_e(r.checkpoint)}; evaluated on {_e(r.evaluated_on)}"
           f": {int(np.sum(r.confusion))} images, accuracy {_pct(r.accuracy)}"
           + (f", loss {r.loss:.4f}" if r.loss is not None else "") + "</p>"]
    out += [f"<p class='note'>{_e(n)}</p>" for n in r.notes]
    out.append(f"<h3 id='run-{i}-curves'>Training curves</h3>")
    out.append(_img(plots.curves_figure(r.history), f"training curves of {r.name}")
               if r.history else "<p class='note'>no finished epoch in metrics.jsonl</p>")
    out += [_confusion(i, r), _per_class(i, r), _confused(i, r)]
    if r.health is not None:
        out.append(_health(i, r))
    if r.diagram:
        out.append(f"<h3 id='run-{i}-architecture'>Architecture</h3><div class='diagram'>"
                   f"{r.diagram}</div>")
    if r.summary:
        out.append(f"<h3 id='run-{i}-summary'>Summary</h3><details><summary>layer by layer"
                   f"</summary><pre>{_e(r.summary)}</pre></details>")
    return "".join(out) + "</section>"


def _nav(runs: Sequence[RunData]) -> str:
    parts = ["<a href='#overview'>overview</a>"]
    if len(runs) > 1:
        parts.append("<a href='#comparison'>comparison</a>")
    for i, r in enumerate(runs):
        links = [("curves", "curves"), ("confusion", "confusion"), ("per-class", "per class"),
                 ("confused", "most confused")]
        links += [("health", "health")] if r.health is not None else []
        links += [("architecture", "architecture")] if r.diagram else []
        parts.append(f"<br><b><a href='#run-{i}'>{_e(r.name)}</a></b>: " + " ".join(
            f"<a href='#run-{i}-{k}'>{t}</a>" for k, t in links))
    return "<nav>" + " ".join(parts) + "</nav>"


def build_html(runs: Sequence[RunData], title: str = "convnetpy report") -> str:
    """The report page for ``runs`` (one or more) as an HTML string: an overview table,
    with several runs a comparison (curves overlaid, per-class accuracy side by side),
    then one section per run."""
    if not runs:
        raise ValueError("build_html: no run to report; give at least one RunData")
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = [f"<h1>{_e(title)}</h1><p class='note'>{len(runs)} run(s); written by convnetpy "
            f"{_e(__version__)} on {when}</p>", _nav(runs),
            f"<section id='overview'><h2>Overview</h2>{_overview(runs)}</section>"]
    if len(runs) > 1:
        body.append(_comparison(runs))
    body += [_run(i, r) for i, r in enumerate(runs)]
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}"
            f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def write_html(path: str | os.PathLike, text: str) -> None:
    """Write the page at ``path`` atomically, on disk before it replaces an older one."""
    write_atomic(path, text, fsync=True)


__all__ = ["RunData", "Confused", "most_confused", "build_html", "write_html",
           "thumbnail_png"]
