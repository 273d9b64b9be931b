"""``convnetpy report RUN_DIR [RUN_DIR ...] -o report.html``: one self-contained HTML page
about one or more runs (``convnetpy.viz.report`` builds it).

For each run folder: its metrics.jsonl (the curves), its best checkpoint (the one saved when
the validation accuracy last improved; the newest when the run has none, or with
``--checkpoint newest``) evaluated on the run's own validation split (or ``--data``/
``--split``, as ``convnetpy eval``) for the confusion matrix, per-class accuracy and the most
confused images, summary.txt, the architecture diagram and, when the run wrote health.jsonl,
the health plots. Several runs are compared first (curves overlaid, per-class accuracy side
by side). The page is written atomically: on any error no file is left.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HELP = "one self-contained HTML report of one or more runs (curves, confusion, diagram)"


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (runs/<id>)")
    p.add_argument("-o", "--out", default="report.html",
                   help="the HTML file to write (default report.html)")
    p.add_argument("--data", help="the data to evaluate on (default: each run's)")
    p.add_argument("--split", choices=("test", "train", "val"),
                   help="val (the run's own validation carve-out; the default without "
                        "--data), test (the default with --data) or train")
    p.add_argument("--checkpoint", choices=("best", "newest"), default="best",
                   help="which checkpoint of each run to evaluate (default best: the "
                        "highest validation accuracy; newest when a run has no best)")
    p.add_argument("--top", type=int, default=16,
                   help="how many of the most confused images to show per run (default 16)")
    p.add_argument("--title", default="convnetpy report", help="the page title")


def _history(run: Path, meta: dict) -> tuple[list, list[str]]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return list(meta.get("history") or []), [f"{path} is missing: curves from the "
                                                 "checkpoint's history"]
    history = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                history.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {n}: not JSON ({e.msg})") from None
    return history, []


def _checkpoint(run: Path, which: str) -> Path:
    best = run / "checkpoints" / "best"
    return best if which == "best" and (best / "meta.json").is_file() else run


def _evaluate(model, ds, tf, top: int):
    """(confusion, mean loss, most confused) of ``model`` on ``ds``, in dataset order."""
    from ..data import DataLoader
    from ..train import evaluate
    from ..viz.report import most_confused

    res = evaluate(model, DataLoader(ds, 256, transform=tf), ds.num_classes,
                   probabilities=True)
    confused = most_confused(res["probs"], np.asarray(ds.labels), top)
    for c in confused:
        c.image = ds.images[c.index]
    return np.asarray(res["confusion"]), res["loss"] if res["n"] else None, confused


def _read_run(i: int, run: Path, name: str, args):
    from ..train import load_trained, transforms_for
    from ..viz.diagram import diagram_svg
    from ..viz.report import RunData
    from .common import run_split

    ck, cfg, model = load_trained(_checkpoint(run, args.checkpoint))
    meta = ck.meta
    which = "best" if ck.path.name == "best" else "newest"
    ds, what = run_split(args.data, args.split, cfg, meta)
    tf = transforms_for(cfg, ds.image_shape, meta["mean"], meta["std"], False)
    conf, loss, confused = _evaluate(model, ds, tf, args.top)
    history, notes = _history(run, meta)
    if which == "newest" and args.checkpoint == "best":
        notes.append("this run saved no best checkpoint: the newest one is evaluated")
    summary = run / "summary.txt"
    health = None
    if (run / "health.jsonl").is_file():
        from ..train.health import read_health

        health = read_health(run)
    return RunData(
        name=name, classes=list(meta["classes"]), confusion=conf, history=history,
        model=cfg.model, evaluated_on=what, loss=loss, confused=confused,
        checkpoint=f"{which} (epoch {meta.get('epoch')}, step {meta.get('step')})",
        summary=summary.read_text() if summary.is_file() else None,
        diagram=diagram_svg(model, tuple(meta["input_shape"]), title=cfg.model,
                            id_prefix=f"r{i}-"),
        health=health, notes=notes)


def run(args) -> int:
    from ..viz.report import build_html, write_html
    from .common import usage_error

    if args.top < 0:
        raise usage_error(f"--top must be 0 or more, got {args.top}")
    runs = [Path(r) for r in args.runs]
    for r in runs:  # every folder checked before any work
        if not r.is_dir():
            raise FileNotFoundError(f"no run folder at {r}: give folders that `convnetpy "
                                    "train` wrote (runs/<id>)")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out}: the folder {out.parent} does not exist")
    names = [r.resolve().name for r in runs]
    names = [n if names.count(n) == 1 else str(r) for n, r in zip(names, runs)]
    data = [_read_run(i, r, n, args) for i, (r, n) in enumerate(zip(runs, names))]
    write_html(out, build_html(data, args.title))
    size = out.stat().st_size
    print(f"wrote {out} ({len(data)} run{'s' if len(data) > 1 else ''}, {size / 1e6:.1f} MB)")
    return 0
