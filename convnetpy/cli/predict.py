"""``convnetpy predict CHECKPOINT IMAGE...``: the top classes of each image file; or, with
``--data SPEC [--split test|train|val] --index N...``, of images of a dataset split, beside
their true class."""

from __future__ import annotations

import numpy as np

HELP = "classify image files with a checkpoint"


def add_arguments(p) -> None:
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="*", help="JPEG or PNG files")
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--data", help="classify images of this data instead (with --index)")
    p.add_argument("--split", choices=("test", "train", "val"),
                   help="which split of --data (default test; val: the run's carve-out)")
    p.add_argument("--index", type=int, nargs="+", default=[],
                   help="positions of the images in that split")


def run(args) -> int:
    from .. import functional as F
    from ..autograd import no_grad
    from ..tensor import Tensor
    from ..train import load_trained
    from .common import image_input, normalise, run_split, usage_error

    if bool(args.images) == bool(args.index):
        raise usage_error("give image files, or --index N... of a dataset split (with --data "
                          "or the run's own data), not both")
    ck, cfg, model = load_trained(args.checkpoint)
    meta = ck.meta
    if args.index:
        ds, what = run_split(args.data, args.split, cfg, meta)
        bad = [i for i in args.index if not 0 <= i < len(ds)]
        if bad:
            raise ValueError(f"--index {bad[0]} is outside {what} ({len(ds)} images)")
        x = normalise(ds.images[args.index], meta)
        with no_grad():
            probs = F.softmax(model(Tensor(x)), dim=1).numpy()
        print(f"{what}:")
        for i, p in zip(args.index, probs):
            top = np.argsort(-p)[: max(1, args.top)]
            print(f"  image {i} (true: {meta['classes'][ds.labels[i]]}): "
                  + ", ".join(f"{meta['classes'][j]} {p[j]:.1%}" for j in top))
        return 0
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
