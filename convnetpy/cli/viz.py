"""``convnetpy viz filters|activations|curves|confusion``: PNG pictures for a report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HELP = "write PNG pictures: filters, activations, curves, confusion matrix"


def add_arguments(v) -> None:
    vs = v.add_subparsers(dest="what", required=True, metavar="{filters,activations,curves,"
                                                               "confusion}")
    f = vs.add_parser("filters", help="every conv layer's filters (the first as RGB patches)")
    f.add_argument("checkpoint", help="a run folder or checkpoint folder")
    f.add_argument("--layer", help="only this layer (its path, e.g. features.0)")
    f.add_argument("--out", default="filters.png")
    a = vs.add_parser("activations", help="each layer's activation maps for one image")
    a.add_argument("checkpoint")
    a.add_argument("image", help="a JPEG or PNG file")
    a.add_argument("--out", default="activations.png")
    a.add_argument("--max-maps", type=int, default=32, help="channels shown per layer")
    c = vs.add_parser("curves", help="loss and accuracy per epoch of a run")
    c.add_argument("run", help="a run folder (holds metrics.jsonl)")
    c.add_argument("--out", default="curves.png")
    m = vs.add_parser("confusion", help="confusion matrix of a checkpoint on data")
    m.add_argument("checkpoint")
    m.add_argument("--data", help="the data (default: the run's)")
    m.add_argument("--split", choices=("test", "train", "val"),
                   help="as for eval: test by default with --data, else the run's val split")
    m.add_argument("--out", default="confusion.png")


def run(args) -> int:
    return {"filters": _filters, "activations": _activations, "curves": _curves,
            "confusion": _confusion}[args.what](args)


def _filters(args) -> int:
    from ..nn import Conv2d
    from ..train import load_trained
    from ..viz import render

    model = load_trained(args.checkpoint).model
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, Conv2d)]
    if args.layer:
        convs = [(n, m) for n, m in convs if n == args.layer]
        if not convs:
            names = ", ".join(n for n, m in model.named_modules() if isinstance(m, Conv2d))
            raise ValueError(f"no conv layer named {args.layer!r}; the conv layers are: {names}")
    if not convs:
        raise ValueError("the model has no Conv2d layer: no filters to draw")
    parts = []
    for name, m in convs:
        w = m.weight.data
        o, c, kh, kw = w.shape
        more = ", first 32 channels" if c > 32 else ""
        how = "RGB" if c == 3 else f"grey, a filter per row{more}"
        parts.append((f"{name}: {o} filters {c}x{kh}x{kw} ({how})",
                      render.filters(w, scale=max(2, render.scale_for(kh, kw, 24)))))
    render.save_png(render.labelled(parts), args.out)
    print(f"wrote {args.out} ({len(parts)} conv layers)")
    return 0


def _activations(args) -> int:
    from .. import functional as F
    from ..autograd import no_grad
    from ..tensor import Tensor
    from ..train import load_trained
    from ..viz import probe, render
    from .common import image_input

    ck, _, model = load_trained(args.checkpoint)
    pixels, x = image_input(args.image, ck.meta)
    layers = probe.probe(model, x[0])
    with no_grad():
        p = F.softmax(model(Tensor(x)), dim=1).numpy()[0]
    classes = ck.meta["classes"]
    top = ", ".join(f"{classes[i]} {p[i]:.1%}" for i in np.argsort(-p)[:3])
    h, w = pixels.shape[1:]
    img = pixels if pixels.shape[0] == 3 else np.repeat(pixels, 3, axis=0)
    parts = [(f"input {Path(args.image).name}: {top}",
              render.grid(img[None], render.scale_for(h, w, 96), rgb=True))]
    for lp in layers:
        if lp.output.ndim != 3:
            continue
        maps = lp.output[: args.max_maps]
        st = lp.stats()
        parts.append((f"{lp.path} {lp.kind} {tuple(lp.output.shape)}  min {st['min']:.3g} "
                      f"max {st['max']:.3g} mean {st['mean']:.3g}",
                      render.grid(maps, render.scale_for(*maps.shape[1:]), columns=16)))
    render.save_png(render.labelled(parts), args.out)
    print(f"wrote {args.out} ({len(parts) - 1} layers; prediction {top})")
    return 0


def _curves(args) -> int:
    from ..train.report import plot_curves

    path = Path(args.run) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: give a run folder (runs/<id>)")
    history = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not history:
        raise ValueError(f"{path} has no finished epoch yet")
    plot_curves(history, Path(args.out))
    print(f"wrote {args.out} ({len(history)} epochs)")
    return 0


def _confusion(args) -> int:
    from . import eval as eval_command

    return eval_command.run(argparse.Namespace(checkpoint=args.checkpoint, data=args.data,
                                               split=args.split, tta=None, png=args.out))
