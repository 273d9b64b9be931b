"""``convnetpy explain CHECKPOINT IMAGE --method M``: which pixels of an image a trained
model's class score depends on (``convnetpy.viz.attribution``), as a PNG: the input, the
heat map and the map over the input, side by side under a caption naming the method, the
explained class with its probability and the predicted class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HELP = "explain a prediction: saliency, SmoothGrad, Grad-CAM, occlusion or integrated gradients"

METHODS = ("saliency", "smoothgrad", "gradcam", "occlusion", "ig")
# option -> the only method that takes it
OPTIONS = {"layer": "gradcam", "patch": "occlusion", "stride": "occlusion",
           "samples": "smoothgrad", "noise": "smoothgrad", "steps": "ig"}


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="a run folder or checkpoint folder")
    p.add_argument("image", help="a JPEG or PNG file")
    p.add_argument("--method", required=True, choices=METHODS,
                   help="saliency (|gradient|), smoothgrad (saliency over noisy copies), "
                        "gradcam (a conv layer's maps weighted by their gradients), occlusion "
                        "(score drop under a grey patch), ig (integrated gradients, signed)")
    p.add_argument("--target", help="the class to explain, a name or an index (default: the "
                                     "predicted class)")
    p.add_argument("--layer", help="gradcam: the layer, a module path such as features.3 "
                                   "(default: the last conv layer that runs)")
    p.add_argument("--patch", type=int, help="occlusion: the patch's side in pixels (8)")
    p.add_argument("--stride", type=int, help="occlusion: pixels between patches (4)")
    p.add_argument("--samples", type=int, help="smoothgrad: noisy copies (25)")
    p.add_argument("--noise", type=float, help="smoothgrad: noise std as a fraction of the "
                                               "image's range (0.15)")
    p.add_argument("--steps", type=int, help="ig: steps along the path from the baseline (32)")
    p.add_argument("-o", "--out", help="the PNG to write (default: explain-METHOD.png)")


def run(args) -> int:
    from .. import functional as F
    from ..autograd import no_grad
    from ..tensor import Tensor
    from ..train import load_trained
    from ..viz import attribution, render
    from .common import class_index, image_input, usage_error

    kwargs = {}
    for opt, method in OPTIONS.items():
        if getattr(args, opt) is not None:
            if method != args.method:
                raise usage_error(f"--{opt} applies to --method {method} only")
            kwargs[opt] = getattr(args, opt)
    ck, _, model = load_trained(args.checkpoint)
    classes = list(ck.meta["classes"])
    target = None if args.target is None else class_index(args.target, classes)
    pixels, x = image_input(args.image, ck.meta)
    with no_grad():
        probs = F.softmax(model(Tensor(x)), dim=1).numpy()[0]
    pred = int(np.argmax(probs))
    target = pred if target is None else target
    how = args.method
    if args.method == "gradcam":
        kwargs["layer"] = kwargs.get("layer") or attribution.last_conv(model, x)
        how = f"gradcam on {kwargs['layer']}"
    heat = attribution.explain(model, x, args.method, target, **kwargs)[0]
    out = Path(args.out or f"explain-{args.method}.png")
    caption = (f"{how}: class {classes[target]!r} ({probs[target]:.1%}); predicted "
               f"{classes[pred]!r} ({probs[pred]:.1%}); {Path(args.image).name}")
    render.save_png(render.labelled([(caption, panels(pixels, heat))]), out)
    print(f"wrote {out} ({caption})")
    return 0


def panels(pixels: np.ndarray, heat: np.ndarray):
    """The input, the heat map (with its range) and the overlay, each zoomed to ~160 px."""
    from ..viz import render

    h, w = heat.shape
    zoom = render.scale_for(h, w, 160)
    lo, hi = float(heat.min()), float(heat.max())
    signed = lo < 0  # as render colours it: diverging, white at 0
    titled = [("input", render.pixels_image(pixels)),
              (f"map, - blue + red: {lo:.3g} .. {hi:.3g}" if signed else f"map: 0 .. {hi:.3g}",
               render.heatmap(heat)),
              ("overlay", render.overlay(pixels, heat))]
    return render.montage([(t, img.resize((w * zoom, h * zoom), 0)) for t, img in titled],
                          columns=3)
