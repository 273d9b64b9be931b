"""``convnetpy predict CHECKPOINT IMAGE...``: the top classes of each image file."""

from __future__ import annotations

import numpy as np

HELP = "classify image files with a checkpoint"


def add_arguments(p) -> None:
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+")
    p.add_argument("--top", type=int, default=3)


def run(args) -> int:
    from .. import functional as F
    from ..autograd import no_grad
    from ..tensor import Tensor
    from ..train import load_trained
    from .common import image_input

    ck, _, model = load_trained(args.checkpoint)
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
