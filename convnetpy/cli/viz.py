"""``convnetpy viz filters|activations|curves|confusion|embedding|neighbours``: PNG pictures
for a report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HELP = ("write PNG pictures: filters, activations, curves, confusion matrix, feature-space "
        "embedding, nearest neighbours")


def add_arguments(v) -> None:
    vs = v.add_subparsers(dest="what", required=True, metavar="{filters,activations,curves,"
                                                               "confusion,embedding,neighbours}")
    f = vs.add_parser("filters", help="every conv layer's filters (the first as RGB patches)")
    f.add_argument("checkpoint", help="a run folder or checkpoint folder")
    f.add_argument("--layer", help="only this layer (its path, e.g. features.0)")
    f.add_argument("-o", "--out", default="filters.png")
    a = vs.add_parser("activations", help="each layer's activation maps for one image")
    a.add_argument("checkpoint")
    a.add_argument("image", help="a JPEG or PNG file")
    a.add_argument("-o", "--out", default="activations.png")
    a.add_argument("--max-maps", type=int, default=32, help="channels shown per layer")
    c = vs.add_parser("curves", help="loss and accuracy per epoch of a run")
    c.add_argument("run", help="a run folder (holds metrics.jsonl)")
    c.add_argument("-o", "--out", default="curves.png")
    m = vs.add_parser("confusion", help="confusion matrix of a checkpoint on data")
    m.add_argument("checkpoint")
    m.add_argument("--data", help="the data (default: the run's)")
    m.add_argument("--split", choices=("test", "train", "val"),
                   help="as for eval: test by default with --data, else the run's val split")
    m.add_argument("-o", "--out", default="confusion.png")
    e = vs.add_parser("embedding", help="the penultimate features of images in 2-D, by class")
    e.add_argument("checkpoint")
    e.add_argument("--data", help="the data (default: the run's)")
    e.add_argument("--split", choices=("test", "train", "val"),
                   help="as for eval: test by default with --data, else the run's val split")
    e.add_argument("--method", choices=("pca", "tsne"), default="pca",
                   help="pca (default) or tsne (the extra convnetpy[tsne])")
    e.add_argument("--limit", type=int, default=2000,
                   help="the first N images of the split (default 2000; 0: all)")
    e.add_argument("-o", "--out", default="embedding.png")
    n = vs.add_parser("neighbours", help="the training images nearest to an image in feature "
                                         "space (penultimate features, cosine)")
    n.add_argument("checkpoint")
    n.add_argument("image", help="a JPEG or PNG file")
    n.add_argument("--data", help="the training data (default: the run's)")
    n.add_argument("-k", type=int, default=8, help="how many neighbours (default 8)")
    n.add_argument("--limit", type=int, default=0,
                   help="search the first N training images only (default 0: all)")
    n.add_argument("-o", "--out", default="neighbours.png")


def run(args) -> int:
    return {"filters": _filters, "activations": _activations, "curves": _curves,
            "confusion": _confusion, "embedding": _embedding,
            "neighbours": _neighbours}[args.what](args)


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


def _split_features(args, split: str | None, limit: int):
    """(trained run, dataset, what it is, its first ``limit`` images' penultimate features)."""
    from ..data import DataLoader
    from ..train import load_trained, transforms_for
    from ..viz.feature_space import features
    from .common import run_split

    if limit < 0:
        raise ValueError(f"--limit must be 0 (all) or more, got {limit}")
    trained = load_trained(args.checkpoint)
    ds, what = run_split(args.data, split, trained.config, trained.checkpoint.meta)
    if limit and limit < len(ds):
        ds, what = ds.subset(np.arange(limit)), f"the first {limit} images of {what}"
    tf = transforms_for(trained.config, ds.image_shape, trained.checkpoint.meta["mean"],
                        trained.checkpoint.meta["std"], False)
    feats = np.concatenate([features(trained.model, x) for x, _ in
                            DataLoader(ds, 256, transform=tf).batches(0)])
    return trained, ds, what, feats


def _embedding(args) -> int:
    from ..viz import plots
    from ..viz.feature_space import embed

    trained, ds, what, feats = _split_features(args, args.split, args.limit)
    points = embed(feats, args.method)
    method = {"pca": "PCA", "tsne": "t-SNE"}[args.method]
    fig = plots.embedding_figure(points, np.asarray(ds.labels), trained.checkpoint.meta["classes"],
                                 title=f"{method} of the penultimate features "
                                       f"({feats.shape[1]}) of {len(ds)} images")
    plots.save_figure(fig, args.out)
    print(f"wrote {args.out} ({method} of {what})")
    return 0


def _neighbours(args) -> int:
    from ..viz import render
    from ..viz.feature_space import features, nearest_neighbours
    from .common import image_input

    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    trained, ds, what, bank = _split_features(args, "train", args.limit)
    pixels, x = image_input(args.image, trained.checkpoint.meta)
    idx, dist = nearest_neighbours(features(trained.model, x), bank, k=min(args.k, len(ds)))
    classes = trained.checkpoint.meta["classes"]
    scale = render.scale_for(*pixels.shape[1:], 96)
    parts = [(f"query {Path(args.image).name}", render.pixels_image(pixels, scale))]
    parts += [(f"#{i}: {classes[ds.labels[i]]}, d {d:.3f}",
               render.pixels_image(ds.images[i], scale)) for i, d in zip(idx[0], dist[0])]
    render.save_png(render.montage(parts, columns=5), args.out)
    print(f"wrote {args.out} (the {len(idx[0])} nearest of {what} by cosine distance of the "
          f"penultimate features)")
    for i, d in zip(idx[0], dist[0]):
        print(f"  #{i} class {classes[ds.labels[i]]} distance {d:.4f}")
    return 0
