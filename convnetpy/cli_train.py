"""The training commands: ``convnetpy train``, ``eval`` and ``predict``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="train a model (no options: LeNet-5 on the bundled "
                                     "digits, about a minute)")
    p.add_argument("--preset", help="a named recipe: digits-lenet5 (default), mnist-lenet5, "
                                    "cifar10-quick, cifar10-convnetjs, cifar10-resnet20")
    p.add_argument("--model", help="a zoo name (convnetpy models)")
    p.add_argument("--data", help="digits | mnist[:PATH] | cifar10[:PATH] | folder:PATH | "
                                  "synthetic[:N]")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--lr", type=float)
    p.add_argument("--out", help="parent folder of the run folders (default runs/)")
    p.add_argument("--resume", metavar="RUN_OR_CKPT",
                   help="continue a run exactly from its newest checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrainConfig field, e.g. --set augment='[\"crop\",\"flip\"]'")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--dashboard", action="store_true",
                   help="serve a live view of the run in the browser (prints the URL)")
    p.add_argument("--port", type=int, default=8765, help="dashboard port (default 8765)")
    p.add_argument("--host", default="127.0.0.1",
                   help="dashboard address (default 127.0.0.1; another needs --allow-remote)")
    p.add_argument("--allow-remote", action="store_true",
                   help="let the dashboard listen on a non-local address")
    d = sub.add_parser("dashboard", help="serve the dashboard for a finished run or a "
                                         "checkpoint")
    d.add_argument("checkpoint", help="a run folder or checkpoint folder")
    d.add_argument("--port", type=int, default=8765)
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--allow-remote", action="store_true")
    d.add_argument("--no-data", action="store_true",
                   help="do not load the run's data for the predictions grid")
    e = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion matrix of a "
                                    "checkpoint")
    e.add_argument("checkpoint", help="a run folder or checkpoint folder")
    e.add_argument("--data", help="evaluate on this whole dataset (default: the run's "
                                  "validation split)")
    e.add_argument("--png", help="write the confusion matrix as a PNG here")
    r = sub.add_parser("predict", help="classify image files with a checkpoint")
    r.add_argument("checkpoint")
    r.add_argument("images", nargs="+")
    r.add_argument("--top", type=int, default=3)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_train(args) -> int:
    from .train import TrainConfig, fit, preset

    sets = {}
    for item in args.set:
        key, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        sets[key.strip().replace("-", "_")] = _parse_value(val)
    if args.quiet:
        sets["progress"] = False
    if args.resume:
        given = [k for k in ("preset", "model", "data", "epochs", "batch_size", "lr", "out")
                 if getattr(args, k) is not None]
        if given:
            raise ValueError("--resume continues a run with its own settings; drop "
                             + ", ".join("--" + k.replace("_", "-") for k in given))
        result = fit(resume=args.resume, overrides=sets, watch=_watch(args))
    else:
        values = preset(args.preset or "digits-lenet5")
        for key in ("model", "data", "epochs", "batch_size", "lr", "out"):
            if getattr(args, key) is not None:
                values[key] = getattr(args, key)
        result = fit(TrainConfig.from_dict({**values, **sets}), watch=_watch(args))
    acc = result["val_acc"]
    shown = "n/a (no epoch finished)" if acc is None else f"{acc:.2%}"
    print(f"validation accuracy: {shown} (best {max(result['best_val_acc'], 0):.2%}); "
          f"status: {result['status']}; run folder: {result['run_dir']}")
    return 0


def _watch(args):
    """The dashboard hook for fit when --dashboard is given (else None)."""
    if not getattr(args, "dashboard", False):
        return None
    from .dashboard import watcher

    return watcher(args.host, args.port, args.allow_remote)


def cmd_dashboard(args) -> int:
    """Serve the dashboard for a finished run: its curves, its model on an example, its
    validation images; uploads work; training controls do nothing. Ctrl-C stops it."""
    import time

    from .dashboard import Monitor, pick_examples, serve

    ck, cfg, model = _load(args.checkpoint)
    run_dir = ck.path.parent.parent
    examples = labels = None
    if not args.no_data:
        try:
            from .data import get_dataset

            ds = get_dataset(cfg.data, cfg.image_size)
            examples, labels = pick_examples(ds.split(cfg.val_fraction, cfg.seed)[1])
        except (OSError, ValueError) as e:
            print(f"the run's data ({cfg.data}) is not available ({e}); upload images instead")
    summary_path = run_dir / "summary.txt"
    monitor = Monitor(model, ck.meta, examples, labels,
                      summary_path.read_text() if summary_path.exists() else "", ck.meta["config"])
    for rec in ck.meta.get("history", []):
        monitor.on_epoch(rec)
    monitor.offer_weights(ck.meta.get("step", 0))
    monitor.finish("finished run")
    srv = serve(monitor, args.host, args.port, args.allow_remote)
    print(f"dashboard for {ck.path}: {srv.url}  (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
    return 0


def _load(path):
    from . import models
    from .io import checkpoint
    from .train import TrainConfig

    ck = checkpoint.load_checkpoint(path)
    cfg = TrainConfig.from_dict(ck.meta["config"])
    model = models.get(cfg.model, num_classes=ck.meta["num_classes"],
                       in_channels=ck.meta["input_shape"][0], **cfg.model_kwargs)
    checkpoint.restore(ck, model)
    model.eval()
    return ck, cfg, model


def cmd_eval(args) -> int:
    from .data import DataLoader, get_dataset
    from .train import evaluate, transforms_for

    ck, cfg, model = _load(args.checkpoint)
    meta = ck.meta
    ds = get_dataset(args.data or cfg.data, cfg.image_size)
    if tuple(ds.image_shape) != tuple(meta["input_shape"]):
        raise ValueError(f"the data's images are {ds.image_shape}, the model was trained on "
                         f"{tuple(meta['input_shape'])}")
    if not args.data:
        ds = ds.split(cfg.val_fraction, cfg.seed)[1]
    tf = transforms_for(cfg, ds.image_shape, meta["mean"], meta["std"], False)
    res = evaluate(model, DataLoader(ds, 256, transform=tf), meta["num_classes"])
    classes = meta["classes"]
    print(f"{ds.name}: {res['n']} images, accuracy {res['acc']:.2%}, loss {res['loss']:.4f}")
    for c, a in zip(classes, res["per_class"]):
        print(f"  {c:>12s}  {a:7.2%}")
    conf = np.asarray(res["confusion"])
    w = max(6, len(str(conf.max())) + 1)
    print("confusion matrix (rows: true class, columns: predicted)")
    print(" " * 13 + "".join(f"{c[:w - 1]:>{w}s}" for c in classes))
    for c, row in zip(classes, conf):
        print(f"{c[:12]:>12s} " + "".join(f"{v:>{w}d}" for v in row))
    if args.png:
        _confusion_png(conf, classes, Path(args.png))
        print(f"wrote {args.png}")
    return 0


def _confusion_png(conf: np.ndarray, classes, path: Path) -> None:
    from PIL import Image, ImageDraw

    from .viz.render import save_png

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


def image_input(path, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """Decode a JPEG/PNG for a checkpoint: (pixels (C, H, W) uint8 at the model's size,
    the normalised float32 input (1, C, H, W)). Raises ValueError naming the file."""
    from .data.folder import MAX_PIXELS, _decode

    c, h, w = meta["input_shape"]
    try:
        arr = _decode(Path(path), (h, w), "L" if c == 1 else "RGB", MAX_PIXELS)
    except Exception as e:  # noqa: BLE001 - any decoder failure is the file's fault
        raise ValueError(f"{path}: cannot read it as a JPEG or PNG image ({e})") from e
    mean = np.asarray(meta["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(meta["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return arr, (arr[None].astype(np.float32) / 255 - mean) / std


def cmd_predict(args) -> int:
    from . import functional as F
    from .autograd import no_grad
    from .tensor import Tensor

    ck, cfg, model = _load(args.checkpoint)
    meta = ck.meta
    for path in args.images:
        try:
            _, x = image_input(path, meta)
        except ValueError as e:
            print(e)
            continue
        with no_grad():
            p = F.softmax(model(Tensor(x)), dim=1).numpy()[0]
        top = np.argsort(-p)[: max(1, args.top)]
        print(f"{path}: " + ", ".join(f"{meta['classes'][i]} {p[i]:.1%}" for i in top))
    return 0
