"""``convnetpy visualize-class CHECKPOINT --class NAME [--class NAME ...] [-o out.png]``: the
image each class's score is highest for (gradient ascent from noise, CS231n's class model
visualisation), upscaled, each captioned with its class, score and probability."""

from __future__ import annotations

HELP = "draw the image a trained model scores highest for a class (class model visualisation)"


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="a run folder or checkpoint folder")
    p.add_argument("--class", dest="classes", action="append", required=True, metavar="NAME",
                   help="a class name or index (repeat for several; 'all' for every class)")
    p.add_argument("--steps", type=int, default=200, help="gradient ascent steps (200)")
    p.add_argument("--lr", type=float, default=0.1,
                   help="average change of a pixel per step, normalised units (0.1)")
    p.add_argument("--l2", type=float, default=1e-3, help="L2 penalty on the image (0.001)")
    p.add_argument("--seed", type=int, default=0, help="the starting noise and the jitter")
    p.add_argument("-o", "--out", default="class.png", help="the PNG to write (class.png)")


def run(args) -> int:
    from ..train import load_trained
    from ..viz import render
    from ..viz.synthesis import class_image
    from .common import class_indices

    ck, _, model = load_trained(args.checkpoint)
    meta = ck.meta
    classes = [str(c) for c in meta["classes"]]
    targets = class_indices(args.classes, classes, "--class")
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    shape = tuple(meta["input_shape"])
    images = class_image(model, targets, shape, steps=args.steps, lr=args.lr, l2=args.l2,
                         seed=args.seed, mean=meta["mean"], std=meta["std"])
    scale = render.scale_for(shape[1], shape[2], 112)
    parts = []
    for im in images:
        name = classes[im.target]
        parts.append((f"class {name}: score {im.score:.2f}, p {im.probability:.1%}",
                      render.pixels_image(im.pixels, scale)))
        print(f"{name}: score {im.scores[0]:.2f} -> {im.score:.2f}, probability "
              f"{im.probability:.1%}")
    render.save_png(render.montage(parts), args.out)
    print(f"wrote {args.out} ({len(images)} classes, {args.steps} steps)")
    return 0
