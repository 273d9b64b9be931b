"""``convnetpy eval CHECKPOINT``: accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

HELP = "accuracy, per-class accuracy and confusion matrix of a checkpoint"


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="a run folder or checkpoint folder")
    p.add_argument("--data", help="the data to evaluate on (default: the run's)")
    p.add_argument("--split", choices=("test", "train", "val"),
                   help="test (the official test files; the default with --data), val (the "
                        "run's own validation carve-out; the default without --data) or "
                        "train (the whole training split)")
    p.add_argument("--png", help="write the confusion matrix as a PNG here")
    p.add_argument("--tta", choices=("flip", "flip-translate"),
                   help="test-time augmentation: logits averaged over mirrored (2 passes) "
                        "or mirrored and shifted copies (6 passes); see nn.TTA")


def run(args) -> int:
    from ..data import DataLoader
    from ..nn import TTA
    from ..train import evaluate, load_trained, transforms_for
    from .common import run_split

    ck, cfg, model = load_trained(args.checkpoint)
    meta = ck.meta
    ds, what = run_split(args.data, args.split, cfg, meta)
    tf = transforms_for(cfg, ds.image_shape, meta["mean"], meta["std"], False)
    if args.tta:
        model = TTA(model, args.tta)
    t0 = time.perf_counter()
    res = evaluate(model, DataLoader(ds, 256, transform=tf), meta["num_classes"])
    took = time.perf_counter() - t0
    classes = meta["classes"]
    how = f", test-time augmentation {args.tta} ({model.passes} passes)" if args.tta else ""
    print(f"{what}: {res['n']} images, accuracy {res['acc']:.2%}, loss {res['loss']:.4f}"
          f"{how}, {took:.1f} s")
    for c, a in zip(classes, res["per_class"]):
        print(f"  {c:>12s}  {a:7.2%}")
    conf = np.asarray(res["confusion"])
    w = max(6, len(str(conf.max())) + 1)
    print("confusion matrix (rows: true class, columns: predicted)")
    print(" " * 13 + "".join(f"{c[:w - 1]:>{w}s}" for c in classes))
    for c, row in zip(classes, conf):
        print(f"{c[:12]:>12s} " + "".join(f"{v:>{w}d}" for v in row))
    if args.png:
        confusion_png(conf, classes, Path(args.png))
        print(f"wrote {args.png}")
    return 0


def confusion_png(conf: np.ndarray, classes, path: Path) -> None:
    """The confusion matrix as a PNG (viz.plots.confusion_figure): rows true classes,
    coloured by row share, each cell its count and row percentage."""
    from ..viz.plots import confusion_figure, save_figure

    save_figure(confusion_figure(conf, classes), path)
