"""``convnetpy fool CHECKPOINT IMAGE --target CLASS [-o out.png]``: the small change to an
image that makes the model call it ``CLASS`` (CS231n's fooling images): a PNG of the
original, the change (amplified) and the fooled image, and the change's size printed in
0..255 pixel units. Exit code 1 when the model was not fooled within --max-steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HELP = "change an image a little until the model calls it another class (fooling image)"


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="a run folder or checkpoint folder")
    p.add_argument("image", help="a JPEG or PNG file")
    p.add_argument("--target", required=True, metavar="CLASS",
                   help="the class to make the model see (a name or an index)")
    p.add_argument("--lr", type=float, default=0.2,
                   help="L2 length of each step in normalised units (0.2)")
    p.add_argument("--max-steps", type=int, default=100, help="give up after this many (100)")
    p.add_argument("-o", "--out", default="fool.png", help="the PNG to write (fool.png)")


def run(args) -> int:
    from .. import functional as F
    from ..autograd import no_grad
    from ..tensor import Tensor
    from ..train import load_trained
    from ..viz import render
    from ..viz.synthesis import fool, to_pixels
    from .common import class_index, image_input, normalise

    ck, _, model = load_trained(args.checkpoint)
    meta = ck.meta
    classes = [str(c) for c in meta["classes"]]
    target = class_index(args.target, classes)
    pixels, x = image_input(args.image, meta)
    r = fool(model, x[0], target, lr=args.lr, max_steps=args.max_steps, mean=meta["mean"],
             std=meta["std"])
    fooled = to_pixels(r.image, meta["mean"], meta["std"])
    with no_grad():  # the fooled image as a PNG stores it: rounded to 8-bit pixels
        p8 = F.softmax(model(Tensor(normalise(fooled[None], meta))), dim=1).numpy()[0]
    std = np.asarray(meta["std"], dtype=np.float64).reshape(-1, 1, 1)
    change = r.perturbation.astype(np.float64) * std * 255  # in 0..255 pixel units
    peak = float(np.abs(change).max())
    amp = 127.0 / peak if peak > 0 else 1.0
    shown = np.clip(np.rint(128 + amp * change), 0, 255).astype(np.uint8)
    scale = render.scale_for(*pixels.shape[1:], 112)
    name = classes[r.final_class]
    verdict = (f"fooled: {name} ({r.final_probability:.1%})" if r.success
               else f"not fooled: {name} ({r.final_probability:.1%})")
    parts = [(f"original: {classes[r.original_class]} ({r.original_probability:.1%})",
              render.pixels_image(pixels, scale)),
             (f"change x{amp:.1f} (grey = 0)", render.pixels_image(shown, scale)),
             (f"{verdict}, {r.steps} steps", render.pixels_image(fooled, scale))]
    title = (f"{Path(args.image).name} -> {classes[target]}: L2 {r.l2_pixels:.1f}, L-inf "
             f"{r.linf_pixels:.1f} (0..255 pixels)")
    render.save_png(render.labelled([(title, render.montage(parts, columns=3))]), args.out)
    print(f"original: {classes[r.original_class]} ({r.original_probability:.1%})")
    if r.success:
        print(f"fooled into {name} ({r.final_probability:.1%}) after {r.steps} steps of "
              f"lr {args.lr}")
    else:
        print(f"not fooled within {args.max_steps} steps: the best attempt is {name} "
              f"({r.final_probability:.1%}), {classes[target]} {r.target_probability:.1%}")
    print(f"change: L2 {r.l2:.4g}, L-inf {r.linf:.4g} (normalised); L2 {r.l2_pixels:.1f}, "
          f"L-inf {r.linf_pixels:.1f} (0..255 pixels)")
    print(f"as 8-bit pixels the fooled image is {classes[int(p8.argmax())]} "
          f"({float(p8.max()):.1%})")
    print(f"wrote {args.out} (the change is shown x{amp:.1f})")
    return 0 if r.success else 1
