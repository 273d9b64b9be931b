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
    """The confusion matrix as a PNG: rows true classes, shaded by row share."""
    from PIL import Image, ImageDraw

    from ..viz.render import save_png

    k, cell, pad = len(classes), 40, 90
    img = Image.new("RGB", (pad + k * cell + 10, pad + k * cell + 10), "white")
    d = ImageDraw.Draw(img)
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    for i in range(k):
        d.text((4, pad + i * cell + 14), str(classes[i])[:12], fill=(0, 0, 0))
        d.text((pad + i * cell + 2, pad - 20), str(classes[i])[:6], fill=(0, 0, 0))
        for j in range(k):
            shade = int(255 * (1 - norm[i, j]))
            box = [pad + j * cell, pad + i * cell, pad + (j + 1) * cell - 1,
                   pad + (i + 1) * cell - 1]
            d.rectangle(box, fill=(shade, shade, 255))
            d.text((box[0] + 4, box[1] + 14), str(conf[i, j]),
                   fill=(0, 0, 0) if shade > 120 else (255, 255, 255))
    save_png(img, path)
