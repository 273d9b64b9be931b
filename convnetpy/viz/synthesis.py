"""Images made by gradient ascent on the input: what a class looks like to the model
(``class_image``, Simonyan et al. 2014 as in CS231n's "Class visualization") and the
smallest-step change that makes it see another class (``fool``, CS231n's fooling images).

Both work in the model's normalised input space (what the network takes); ``mean`` and
``std`` (the training run's, per channel, for pixels scaled to [0, 1]) map it back to
pixels, give the range an image can take and the norms in 0..255 pixel units.

>>> import numpy as np
>>> from convnetpy import nn
>>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
>>> r = fool(net, np.zeros((1, 2, 2), dtype=np.float32), target=1, lr=0.1)
>>> r.success, r.final_class, r.steps >= 0
(True, 1, True)
>>> img = class_image(net, 0, shape=(1, 2, 2), steps=5, jitter=0, blur_every=0)
>>> img.image.shape, img.pixels.dtype, len(img.scores)
((1, 2, 2), dtype('uint8'), 5)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..nn.module import Module
from ..tensor import Tensor
from .gradients import (
    as_batch,
    check_positive_int,
    inspecting,
    logits_of,
    model_dtype,
    resolve_targets,
    score_of,
)

EPS = 1e-12


@dataclass
class ClassImage:
    """One class's synthesised image and how the ascent went."""
    target: int
    image: np.ndarray  # (C, H, W) in the model's normalised input space
    pixels: np.ndarray  # (C, H, W) uint8: through mean/std when given, else min-max scaled
    scores: list[float]  # the target's pre-softmax score at each step (on the jittered input)
    score: float  # the final image's target score (not jittered)
    probability: float  # the final image's softmax probability of the target
    settings: dict = field(default_factory=dict)


@dataclass
class FoolResult:
    """A fooling attempt: the image, what changed and by how much, what the model says."""
    image: np.ndarray  # (C, H, W) the fooled image (or the best attempt), normalised space
    perturbation: np.ndarray  # image - x
    steps: int  # gradient steps taken to reach ``image``
    l2: float  # norms of the perturbation in the normalised space
    linf: float
    l2_pixels: float | None  # ... and in 0..255 pixel units (None without mean/std)
    linf_pixels: float | None
    target: int
    original_class: int
    original_probability: float
    final_class: int
    final_probability: float  # the probability of final_class
    target_probability: float
    success: bool


def _channel(v, c: int, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, c)
    if a.size != c:
        raise ValueError(f"{what} must have one value per channel ({c}), got {a.size}")
    return a.reshape(c, 1, 1)


def pixel_range(mean, std, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (C, 1, 1), the normalised values that pixels 0 and 1 become:
    ``(0 - mean) / std`` and ``(1 - mean) / std``."""
    m, s = _channel(mean, channels, "mean"), _channel(std, channels, "std")
    return (0 - m) / s, (1 - m) / s


def to_pixels(x: np.ndarray, mean=None, std=None) -> np.ndarray:
    """An image (C, H, W) from the normalised space as uint8 pixels: ``(x * std + mean) *
    255`` rounded and clipped when mean/std are given, else min-max scaled to 0..255.

    >>> to_pixels(np.array([[[-1.0, 1.0]]]), mean=[0.5], std=[0.5]).tolist()
    [[[0, 255]]]
    """
    x = np.asarray(x, dtype=np.float64)
    if mean is not None and std is not None:
        c = x.shape[0]
        p = (x * _channel(std, c, "std") + _channel(mean, c, "mean")) * 255
    else:
        lo, hi = x.min(), x.max()
        p = (x - lo) / (hi - lo if hi - lo > EPS else 1.0) * 255
    return np.clip(np.rint(p), 0, 255).astype(np.uint8)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The 1-D Gaussian ``exp(-d^2 / (2 sigma^2))`` for d = -r..r, r = int(truncate * sigma
    + 0.5) (scipy.ndimage's radius), normalised to sum to 1.

    >>> gaussian_kernel(0.5).round(4).tolist()
    [0.0003, 0.1065, 0.7866, 0.1065, 0.0003]
    """
    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0 (pixels), got {sigma}")
    r = int(truncate * sigma + 0.5)
    d = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-d * d / (2 * sigma * sigma))
    return k / k.sum()


def gaussian_blur(images: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Blur the last two axes of ``images`` with a Gaussian of standard deviation ``sigma``
    pixels: separable (rows, then columns), edges mirrored (``d c b a | a b c d``, numpy's
    "symmetric", scipy.ndimage's "reflect"), so it equals ``scipy.ndimage.gaussian_filter``
    on those axes with mode="reflect".

    >>> x = np.zeros((5, 5)); x[2, 2] = 1
    >>> bool(np.isclose(gaussian_blur(x, 0.5).sum(), 1.0))   # mass is kept
    True
    """
    k = gaussian_kernel(sigma, truncate)
    r = len(k) // 2
    out = np.asarray(images, dtype=np.float64)
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="symmetric")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, w in enumerate(k):  # a loop over the 2r+1 taps, not over pixels
            acc += w * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc
    return out.astype(np.asarray(images).dtype, copy=False)


def _ascent_step(g: np.ndarray) -> np.ndarray:
    """Each image's gradient divided by its root-mean-square: a step of ``lr`` changes a
    pixel by ``lr`` on average whatever the model's score scale or the image's size."""
    rms = np.sqrt((g.astype(np.float64) ** 2).mean(axis=(1, 2, 3), keepdims=True))
    return g / (rms + EPS)


def class_image(model: Module, target: int | Sequence[int], shape: Sequence[int] = (3, 32, 32),
                steps: int = 200, lr: float = 0.1, l2: float = 1e-3, jitter: int = 2,
                blur_every: int = 10, blur_sigma: float = 0.8, seed: int = 0,
                mean=None, std=None, init_std: float = 0.1) -> ClassImage | list[ClassImage]:
    """The image that the model scores highest for ``target``: gradient ascent on
    ``score_target(x) - l2 * ||x||^2`` (pre-softmax score) from noise of std ``init_std``.

    Each step: roll the images by a random offset of up to ``jitter`` pixels in both axes,
    step by ``lr * g / rms(g)`` (each image's gradient over its root-mean-square, so ``lr``
    is the average change of a pixel per step), roll back, clamp each channel to what
    pixels 0..1 become through mean/std (when given); every ``blur_every`` steps (0:
    never) blur with a Gaussian of ``blur_sigma`` pixels (``gaussian_blur``). A list of
    targets gives a list of images, made together (one forward and backward per step).
    The model is left as it was (``inspecting``); ``seed`` fixes the noise and the jitter.
    The defaults draw stroke images in which a 0, 1, 6 and 9 can be named from a LeNet-5
    trained to 98% on the bundled digits (all ten classes in a few seconds on a CPU); a
    model trained less draws mostly repeated stroke textures.
    """
    check_positive_int(steps, "steps")
    if not lr > 0 or l2 < 0 or jitter < 0 or blur_every < 0:
        raise ValueError(f"need lr > 0, l2 >= 0, jitter >= 0, blur_every >= 0; got lr={lr}, "
                         f"l2={l2}, jitter={jitter}, blur_every={blur_every}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be the model's input (C, H, W), got {shape}")
    single = np.ndim(target) == 0
    wanted = [target] if single else list(target)
    if not wanted:
        raise ValueError("target is an empty list: name at least one class")
    rng = np.random.default_rng(seed)
    x = (init_std * rng.standard_normal((len(wanted), *shape))).astype(model_dtype(model))
    lo, hi = (pixel_range(mean, std, shape[0]) if mean is not None and std is not None
              else (None, None))
    scores = []
    with inspecting(model):
        for step in range(1, steps + 1):
            dy, dx = rng.integers(-jitter, jitter + 1, size=2)
            xj = np.roll(x, (dy, dx), axis=(2, 3))
            xt = Tensor(xj.copy(), requires_grad=True)
            logits = logits_of(model, xt)
            if step == 1:
                targets = resolve_targets(np.asarray(wanted), logits.data)
            score_of(logits, targets).backward()
            scores.append(logits.data[np.arange(len(targets)), targets].astype(float))
            g = xt.grad.data - 2 * l2 * xj
            xj = xj + lr * _ascent_step(g)
            x = np.roll(xj, (-dy, -dx), axis=(2, 3))
            if lo is not None:
                x = np.clip(x, lo, hi)
            if blur_every and step % blur_every == 0:
                x = gaussian_blur(x, blur_sigma)
            x = x.astype(model_dtype(model), copy=False)
        with no_grad():
            final = logits_of(model, Tensor(x)).data
    probs = F.softmax(Tensor(final.astype(np.float64)), dim=1).numpy()
    settings = {"steps": steps, "lr": lr, "l2": l2, "jitter": jitter, "blur_every": blur_every,
                "blur_sigma": blur_sigma, "seed": seed, "init_std": init_std,
                "step": "lr * g / rms(g)", "clamped": lo is not None}
    per_step = np.asarray(scores)  # (steps, K)
    out = [ClassImage(int(t), x[i], to_pixels(x[i], mean, std), per_step[:, i].tolist(),
                      float(final[i, t]), float(probs[i, t]), dict(settings))
           for i, t in enumerate(targets)]
    return out[0] if single else out


def fool(model: Module, x, target: int, lr: float = 0.2, max_steps: int = 100,
         mean=None, std=None, clamp: bool = True) -> FoolResult:
    """Change one image (C, H, W) or (1, C, H, W) until the model predicts ``target``:
    each step adds ``lr * g / ||g||_2``, g the gradient of the target's pre-softmax score,
    and it stops at the first image predicted as ``target`` (no step when it already is).
    After ``max_steps`` without a flip it returns the attempt with the highest target
    probability and ``success=False``. With mean/std and ``clamp``, each step is clipped to
    what pixels 0..1 become, so the fooled image is one a PNG can hold (up to rounding to
    8 bits). Norms are of the returned perturbation; with mean/std also in 0..255 pixel
    units (the perturbation times std times 255)."""
    batch = as_batch(x)
    if batch.shape[0] != 1:
        raise ValueError(f"fool takes one image (C, H, W) or (1, C, H, W), got {batch.shape}")
    if not lr > 0 or isinstance(max_steps, bool) or int(max_steps) != max_steps \
            or max_steps < 0:
        raise ValueError(f"need lr > 0 and a whole max_steps >= 0; got lr={lr}, "
                         f"max_steps={max_steps!r}")
    x0 = batch.astype(model_dtype(model))
    cur = x0.copy()
    lo, hi = (pixel_range(mean, std, x0.shape[1]) if clamp and mean is not None
              and std is not None else (-np.inf, np.inf))
    best = None  # (target probability, steps, image, probabilities)
    with inspecting(model):
        for step in range(int(max_steps) + 1):
            xt = Tensor(cur.copy(), requires_grad=True)
            logits = logits_of(model, xt)
            t = resolve_targets(target, logits.data)
            p = F.softmax(Tensor(logits.data.astype(np.float64)), dim=1).numpy()[0]
            if step == 0:
                original = p
            flipped = p.argmax() == t[0]
            # the first flip is the answer even when the target's probability was higher
            # at an earlier step (other classes moved too); until then, the best attempt
            if flipped or best is None or p[t[0]] > best[0]:
                best = (p[t[0]], step, cur[0].copy(), p)
            if flipped or step == max_steps:
                break
            score_of(logits, t).backward()
            g = xt.grad.data.astype(np.float64)
            cur = np.clip(cur + lr * g / (np.linalg.norm(g) + EPS), lo, hi).astype(x0.dtype)
    _, steps, image, p = best
    delta = (image - x0[0]).astype(x0.dtype)  # the norms are exactly those of this array
    d64 = delta.astype(np.float64)
    px = None
    if mean is not None and std is not None:
        px = d64 * _channel(std, delta.shape[0], "std") * 255
    tgt = int(t[0])
    return FoolResult(
        image=image, perturbation=delta, steps=steps,
        l2=float(np.linalg.norm(d64)), linf=float(np.abs(d64).max()),
        l2_pixels=None if px is None else float(np.linalg.norm(px)),
        linf_pixels=None if px is None else float(np.abs(px).max()),
        target=tgt, original_class=int(original.argmax()),
        original_probability=float(original.max()), final_class=int(p.argmax()),
        final_probability=float(p.max()), target_probability=float(p[tgt]),
        success=bool(p.argmax() == tgt))
