"""Attribution maps: which pixels of an input a class score depends on, one map (N, H, W)
per image at the input's size.

Every method takes ``model`` (a Module returning class scores (N, classes)), ``x`` (images
(N, C, H, W) or one image (C, H, W), numpy or Tensor, already normalised as the model takes
them) and ``target`` (None: each image's predicted class; an int; or one per image). The
score explained is the target class's pre-softmax score (logit), as in CS231n's saliency
maps: the softmax probability also depends on every other class's score and saturates for
a confident prediction. Maps are float arrays in the input's dtype (float32 unless ``x`` is
float64; integer images count as float32) and are raw, not normalised: plotting scales them
(``render.overlay``). The model's modes, parameters' gradients and ``requires_grad`` flags
are as they were afterwards (``gradients.inspecting``).

- ``saliency``: max over channels of |d score / d x| (Simonyan et al. 2014).
- ``smoothgrad``: the saliency map averaged over noisy copies of the image (Smilkov 2017).
- ``grad_cam``: ReLU(sum_k alpha_k A^k) on a conv layer's maps, upsampled (Selvaraju 2017).
- ``occlusion``: the drop of the score when a patch is greyed out (Zeiler & Fergus 2014).
- ``integrated_gradients``: signed, sums to score(x) - score(baseline) (Sundararajan 2017).

>>> import numpy as np
>>> from convnetpy import nn
>>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
>>> x = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
>>> ig = integrated_gradients(net, x, target=1)          # (x - 0) * w for a linear model
>>> np.allclose(ig.ravel(), x.ravel() * net[1].weight.data[1])
True
>>> explain(net, x, "occlusion", target=1, patch=1, stride=1).shape
(1, 2, 2)
"""

from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..nn.conv import Conv2d
from ..nn.module import Module
from ..tensor import Tensor
from .gradients import (
    Target,
    as_batch,
    check_positive_int,
    input_gradient,
    inspecting,
    logits_of,
    resolve_targets,
    score_of,
)


def saliency(model: Module, x, target: Target = None) -> np.ndarray:
    """max over channels of |d score_target / d x|, (N, H, W)."""
    grad, _ = input_gradient(model, x, target)
    return np.abs(grad).max(axis=1)


def smoothgrad(model: Module, x, target: Target = None, samples: int = 25,
               noise: float = 0.15, seed: int = 0, batch_size: int = 64) -> np.ndarray:
    """The saliency map (max over channels of |gradient|) averaged over ``samples`` copies
    of each image with Gaussian noise of std ``noise * (max - min)`` of that image added.
    The target (when None) is the prediction on the clean image. Deterministic for a given
    ``seed``; ``noise=0`` gives ``saliency``. The noisy copies go through the model in
    batches of ``batch_size``."""
    batch = as_batch(x)
    check_positive_int(samples, "samples")
    check_positive_int(batch_size, "batch_size")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0 (a fraction of each image's range), got {noise}")
    rng = np.random.default_rng(seed)
    out = np.empty((len(batch),) + batch.shape[2:], dtype=np.float64)
    with inspecting(model):
        targets = resolve_targets(target, _logits(model, batch, batch_size))
        for i, img in enumerate(batch):
            sigma = noise * float(img.max() - img.min())
            noisy = img + (sigma * rng.standard_normal((samples,) + img.shape)).astype(img.dtype)
            grads = _gradients(model, noisy, np.full(samples, targets[i]), batch_size)
            out[i] = np.abs(grads).max(axis=1).mean(axis=0, dtype=np.float64)
    return out.astype(batch.dtype)


def grad_cam(model: Module, x, target: Target = None,
             layer: str | Module | None = None) -> np.ndarray:
    """Grad-CAM: ReLU(sum_k alpha_k A^k) with A (N, K, h, w) the output of ``layer`` and
    alpha_k the spatial mean of d score / d A^k, bilinearly upsampled to the input's size
    (``upsample_bilinear``). ``layer``: a module path ("features.3") or the Module itself,
    any layer whose output is 4-D (a conv, its ReLU, a residual block); default the last
    Conv2d in call order on ``x`` (``last_conv``; in GoogLeNet that is one branch of the last
    Inception block: pass layer="inception5b" for the whole block). A module called several
    times is taken at its last call."""
    batch = as_batch(x)
    convs = [name for name, m in model.named_modules() if isinstance(m, Conv2d)]
    chosen = _find_layer(model, layer, convs)
    watched = [chosen] if chosen is not None else \
        [m for m in model.modules() if isinstance(m, Conv2d)]
    if not watched:
        raise ValueError("grad_cam: the model has no Conv2d layer; name a layer whose output "
                         "is 4-D (N, C, H, W) with layer=")
    calls: list[tuple[Module, object]] = []

    def hook(module, inputs, output):
        if isinstance(output, Tensor) and output.requires_grad:
            output.retain_grad()
        calls.append((module, output))

    handles = [m.register_forward_hook(hook) for m in {id(m): m for m in watched}.values()]
    try:
        with inspecting(model):
            xt = Tensor(batch.copy(), requires_grad=True)
            logits = logits_of(model, xt)
            targets = resolve_targets(target, logits.data)
            if not calls:
                raise ValueError(f"grad_cam: layer {_path(model, chosen)} is not called when "
                                 f"the model runs, so it has no output to explain")
            module, a = calls[-1]
            if not isinstance(a, Tensor) or a.ndim != 4:
                shape = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
                raise ValueError(f"grad_cam: layer {_path(model, module)} is a "
                                 f"{type(module).__name__} whose output is {shape}, not maps "
                                 f"(N, C, H, W); the conv layers are: {', '.join(convs)}")
            score_of(logits, targets).backward()
    finally:
        for h in handles:
            h.remove()
    maps = a.data.astype(np.float64)
    grad = np.zeros_like(maps) if a.grad is None else a.grad.data.astype(np.float64)
    alpha = grad.mean(axis=(2, 3))
    cam = np.maximum(np.einsum("nk,nkhw->nhw", alpha, maps), 0.0)  # (N,K),(N,K,h,w) -> (N,h,w)
    return upsample_bilinear(cam, batch.shape[2:]).astype(batch.dtype)


def last_conv(model: Module, x) -> str:
    """The path of the last Conv2d that runs on ``x``: Grad-CAM's default layer."""
    batch = as_batch(x)
    names = {id(m): name for name, m in model.named_modules() if isinstance(m, Conv2d)}
    order: list[str] = []
    handles = [m.register_forward_hook(lambda mod, i, o: order.append(names[id(mod)]))
               for m in model.modules() if id(m) in names]
    try:
        with inspecting(model), no_grad():
            model(Tensor(batch[:1].copy()))
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ValueError("the model runs no Conv2d layer on this input")
    return order[-1]


def upsample_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps (N, h, w) resized to (N, H, W) as torch's ``F.interpolate(mode="bilinear",
    align_corners=False)``: output pixel i samples the input at (i + 0.5) * h / H - 0.5
    (clamped at 0), between its two neighbours; done as two small matrix products.

    >>> upsample_bilinear(np.array([[[0.0, 1.0]]]), (1, 4)).round(2).tolist()
    [[[0.0, 0.25, 0.75, 1.0]]]
    """
    maps = np.asarray(maps, dtype=np.float64)
    rows, cols = _interp_matrix(maps.shape[1], size[0]), _interp_matrix(maps.shape[2], size[1])
    return np.einsum("ih,nhw,jw->nij", rows, maps, cols)  # (H,h),(N,h,w),(W,w) -> (N,H,W)


def occlusion(model: Module, x, target: Target = None, patch: int = 8, stride: int = 4,
              baseline=0.0, batch_size: int = 64) -> np.ndarray:
    """The drop of the target's pre-softmax score when a ``patch`` x ``patch`` square of the
    image is set to ``baseline`` (a number, or an array broadcastable to (C, H, W); 0 in
    the normalised space is the dataset's mean colour), averaged per pixel over the patches
    that cover it. Patches start every ``stride`` pixels (at most ``patch``), plus one flush
    with the bottom and right edges, so that every pixel is covered. NOTE: Zeiler & Fergus
    plotted the probability; the score is what the other methods differentiate, and does
    not saturate. The occluded copies go through the model in batches of ``batch_size``."""
    batch = as_batch(x)
    n, c, h, w = batch.shape
    for value, name in ((patch, "patch"), (stride, "stride"), (batch_size, "batch_size")):
        check_positive_int(value, name)
    if patch > min(h, w):
        raise ValueError(f"occlusion: patch {patch} is larger than the image ({h} x {w}); "
                         f"use patch <= {min(h, w)}")
    if stride > patch:
        raise ValueError(f"occlusion: stride {stride} is larger than patch {patch}, which "
                         f"would leave pixels no patch covers; use stride <= {patch}")
    base = _broadcast(baseline, (c, h, w), batch.dtype, "baseline", "(C, H, W)")
    places = [(i, r, q) for i in range(n) for r in _starts(h, patch, stride)
              for q in _starts(w, patch, stride)]
    total = np.zeros((n, h, w))
    count = np.zeros((n, h, w))
    with inspecting(model):
        logits = _logits(model, batch, batch_size)
        targets = resolve_targets(target, logits)
        clean = logits[np.arange(n), targets].astype(np.float64)
        for k in range(0, len(places), batch_size):
            chunk = places[k:k + batch_size]
            idx = np.array([p[0] for p in chunk])
            copies = batch[idx].copy()
            for j, (_, r, q) in enumerate(chunk):
                copies[j, :, r:r + patch, q:q + patch] = base[:, r:r + patch, q:q + patch]
            drop = clean[idx] - _logits(model, copies, batch_size)[np.arange(len(chunk)),
                                                                      targets[idx]]
            for j, (i, r, q) in enumerate(chunk):
                total[i, r:r + patch, q:q + patch] += drop[j]
                count[i, r:r + patch, q:q + patch] += 1
    return (total / count).astype(batch.dtype)


def integrated_gradients(model: Module, x, target: Target = None, baseline=None,
                         steps: int = 32, batch_size: int = 64) -> np.ndarray:
    """(x - baseline) * the mean gradient along the straight path from ``baseline`` to
    ``x``, summed over channels: signed, (N, H, W). The path integral is the midpoint rule,
    alpha = (k + 0.5) / steps for k < steps. ``baseline``: None is zeros of the model's
    input (the dataset's mean colour after normalisation, not a black image), or a number
    or array broadcastable to x. Completeness: each map sums to score(x) - score(baseline)
    up to the rule's error, which shrinks as ``steps`` grows (exact for a linear model)."""
    batch = as_batch(x)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    base = _broadcast(0.0 if baseline is None else baseline, batch.shape, batch.dtype,
                      "baseline", "x " + str(batch.shape))
    alphas = ((np.arange(steps) + 0.5) / steps).reshape(-1, 1, 1, 1)
    out = np.empty((len(batch),) + batch.shape[2:], dtype=np.float64)
    with inspecting(model):
        targets = resolve_targets(target, _logits(model, batch, batch_size))
        for i, (img, b) in enumerate(zip(batch, base)):
            path = (b + alphas * (img - b)).astype(batch.dtype)  # (steps, C, H, W)
            grads = _gradients(model, path, np.full(steps, targets[i]), batch_size)
            out[i] = ((img - b) * grads.mean(axis=0, dtype=np.float64)).sum(axis=0)
    return out.astype(batch.dtype)


METHODS = {"saliency": saliency, "smoothgrad": smoothgrad, "gradcam": grad_cam,
           "occlusion": occlusion, "ig": integrated_gradients}


def explain(model: Module, x, method: str, target: Target = None, **kwargs) -> np.ndarray:
    """The map of ``method`` (a name of ``METHODS``), with its own options as ``kwargs``."""
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; the methods are: "
                         f"{', '.join(METHODS)}")
    return METHODS[method](model, x, target, **kwargs)


# ----- helpers -----
def _logits(model: Module, batch: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's scores on ``batch``, in chunks, without building a graph."""
    with no_grad():
        return np.concatenate([logits_of(model, Tensor(batch[k:k + batch_size])).data
                               for k in range(0, len(batch), batch_size)])


def _gradients(model: Module, batch: np.ndarray, targets: np.ndarray,
               batch_size: int) -> np.ndarray:
    """d score_target / d x for each image of ``batch``, in chunks (inside ``inspecting``)."""
    out = np.empty_like(batch)
    for k in range(0, len(batch), batch_size):
        xt = Tensor(batch[k:k + batch_size].copy(), requires_grad=True)
        score_of(logits_of(model, xt), targets[k:k + batch_size]).backward()
        out[k:k + batch_size] = xt.grad.data
    return out


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of 1-D linear interpolation with align_corners=False."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lo = np.minimum(src.astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def _starts(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] + patch == size else starts + [size - patch]


def _broadcast(value, shape: tuple, dtype, name: str, what: str) -> np.ndarray:
    arr = np.asarray(value.data if isinstance(value, Tensor) else value, dtype=dtype)
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {arr.shape} does not broadcast to {what}") from None


def _find_layer(model: Module, layer, convs: list[str]) -> Module | None:
    if layer is None:
        return None
    if isinstance(layer, Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("grad_cam: the given layer module is not part of the model")
        return layer
    found = dict(model.named_modules()).get(str(layer))
    if found is None:
        raise ValueError(f"grad_cam: no layer {layer!r} in the model; the conv layers are: "
                         f"{', '.join(convs) or '(none)'}")
    return found


def _path(model: Module, module: Module | None) -> str:
    return next((repr(n) for n, m in model.named_modules() if m is module), "?")
