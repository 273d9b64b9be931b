"""One snapshot of the network for the page: per-layer pictures and numbers for the current
example, and predictions on a grid of validation images. Pictures travel as PNG data URLs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.conv import Conv2d
from ..viz import attribution, render
from ..viz import probe as vprobe

MAX_MAPS = 32  # channels drawn per layer (and filters per conv layer)
MAX_FILTER_CHANNELS = 16  # input channels drawn per filter of a deeper conv layer


def data_url(img) -> str:
    return render.data_url(render.png_bytes(img, compress_level=1))  # small maps: fast


def _pixels_image(pixels: np.ndarray, size: int = 96):
    return render.pixels_image(pixels, render.scale_for(*pixels.shape[1:], size))


def _maps(a: np.ndarray) -> np.ndarray | None:
    """What to draw of an output (C, H, W) or a vector (F,): maps, or None. A vector
    becomes one map of rows of 32 cells (the last row padded with its minimum)."""
    if a.ndim == 3:
        return a[:MAX_MAPS]
    if a.ndim == 1 and a.size:
        cols = min(a.size, 32)
        rows = -(-a.size // cols)
        flat = np.full(rows * cols, a.min(), dtype=np.float64)
        flat[: a.size] = a
        return flat.reshape(1, rows, cols)
    return None


def explanations(model, pixels: np.ndarray, x: np.ndarray, target: int,
                 conv_layer: str | None) -> dict[str, Any]:
    """Why the model picks ``target`` for this example: the saliency map and Grad-CAM on
    ``conv_layer`` (the last conv layer the probe saw run) as heat maps over the image,
    upscaled like the example; without a conv layer Grad-CAM says why instead."""
    h, w = pixels.shape[1:]
    scale = render.scale_for(h, w, 96)
    heats = {"saliency": attribution.saliency(model, x[None], target)[0]}
    if conv_layer is None:
        out: dict[str, Any] = {"gradcam": {"error": "Grad-CAM needs a conv layer; this "
                                                    "model has none"}}
    else:
        out = {"gradcam": {"layer": conv_layer}}
        try:
            heats["gradcam"] = attribution.grad_cam(model, x[None], target,
                                                    layer=conv_layer)[0]
        except ValueError as e:  # shown in its place; the rest of the snapshot stands
            out["gradcam"]["error"] = str(e)
    for key, heat in heats.items():
        img = render.overlay(pixels, heat)
        img = img.resize((w * scale, h * scale), resample=0)  # nearest: pixels stay visible
        out.setdefault(key, {}).update(image=data_url(img), max=float(np.abs(heat).max()))
    return out


CLASS_IMAGE_STEPS = 100  # ascent steps per class image on the page (a few seconds on a CPU)


def class_images(monitor, model, steps: int = CLASS_IMAGE_STEPS) -> dict[str, Any]:
    """What each class looks like to ``model`` now: one ``viz.class_image`` per class (all
    classes in one batch), as pictures upscaled like the examples, with the final score
    and probability of the class."""
    from ..viz.synthesis import class_image

    shape = tuple(monitor.meta["input_shape"])
    made = class_image(model, list(range(len(monitor.classes))), shape, steps=steps,
                       mean=monitor.meta["mean"], std=monitor.meta["std"])
    return {"steps": steps, "images": [
        {"class": monitor.classes[c.target], "image": data_url(_pixels_image(c.pixels)),
         "score": c.score, "p": c.probability} for c in made]}


def layer_info(lp: vprobe.LayerProbe) -> dict[str, Any]:
    info: dict[str, Any] = {"index": lp.index, "path": lp.path, "kind": lp.kind,
                            "shape": list(lp.output.shape), "params": lp.params,
                            "formula": list(lp.formula), "stats": lp.stats(),
                            "spatial": lp.output.ndim == 3}
    m = lp.module
    formula = m.param_formula()
    if formula:
        info["param_formula"] = formula
    maps = _maps(lp.output)
    if maps is not None:
        scale = render.scale_for(*maps.shape[1:], 40) if lp.output.ndim == 3 else 6
        cols = min(16, len(maps))
        info["act"] = data_url(render.grid(maps, scale, columns=cols))
        info["act_grid"] = {"cols": cols, "scale": scale, "h": int(maps.shape[1]),
                            "w": int(maps.shape[2]), "gap": render.GAP}
        if lp.grad is not None:
            info["grad"] = data_url(render.grid(_maps(lp.grad), scale,
                                                columns=min(16, len(maps))))
    weight = getattr(m, "weight", None)
    if weight is not None and weight.ndim == 4:  # filters (O, C, KH, KW): draw them
        w = weight.data
        # colour patches of the first layer large, the per-channel grey grid small
        fscale = render.scale_for(*w.shape[2:], 24 if w.shape[1] in (1, 3) else 8)
        shown = (slice(0, MAX_MAPS), slice(0, MAX_FILTER_CHANNELS))
        info["filters"] = data_url(render.filters(w[shown], fscale))
        if m.weight.grad is not None:
            info["weight_grad"] = data_url(render.filters(m.weight.grad.data[shown], fscale))
    return info


def build_snapshot(monitor, model, example) -> tuple[dict[str, Any], list]:
    """(the snapshot JSON, the probed layers) for the uploaded example if any, else the
    first validation image."""
    if example is None:
        if monitor.examples is None or not len(monitor.examples):
            raise ValueError("no example to show: upload an image")
        pixels, name = monitor.examples[0], "validation image 0"
    else:
        pixels, name = example
    x = monitor.normalise(pixels)
    if monitor.trace_rows is None:  # the architecture does not change: trace it once
        from ..analysis.trace import trace

        monitor.trace_rows = trace(model, (1,) + x.shape, x.dtype).rows
    layers = vprobe.probe(model, x, rows=monitor.trace_rows)
    probs = monitor.predict(pixels[None])[0]
    convs = [lp.path for lp in layers if isinstance(lp.module, Conv2d)]
    top = [{"class": monitor.classes[i], "p": float(probs[i])} for i in np.argsort(-probs)[:3]]
    snap: dict[str, Any] = {
        "example": {"name": name, "image": data_url(_pixels_image(pixels)), "top": top,
                    "size": list(pixels.shape[1:])},
        "explain": dict(explanations(model, pixels, x, int(np.argmax(probs)), convs[-1]
                                     if convs else None), target=top[0]["class"]),
        "layers": [layer_info(lp) for lp in layers],
    }
    if monitor.examples is not None and len(monitor.examples):
        probs = monitor.predict(monitor.examples)
        grid = []
        for i, p in enumerate(probs):
            order = np.argsort(-p)[:3]
            label = None if monitor.labels is None else int(monitor.labels[i])
            grid.append({"image": data_url(_pixels_image(monitor.examples[i], 48)),
                         "label": None if label is None else monitor.classes[label],
                         "correct": label is not None and int(order[0]) == label,
                         "top": [{"class": monitor.classes[j], "p": float(p[j])}
                                 for j in order]})
        snap["predictions"] = grid
    return snap, layers
