"""What every explanation method needs: the model run for inspection (evaluation mode, the
parameters' gradients and flags and every module's mode put back afterwards), the target
classes resolved against the batch, and the gradient of the target classes' pre-softmax
scores with respect to the input.

>>> import numpy as np
>>> from convnetpy import nn
>>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
>>> x = np.ones((2, 1, 2, 2), dtype=np.float32)
>>> grad, logits = input_gradient(net, x, target=[0, 2])
>>> grad.shape, logits.shape
((2, 1, 2, 2), (2, 3))
>>> np.allclose(grad[1].ravel(), net[1].weight.data[2])   # d score_2 / d x = W[2]
True
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np

from ..nn.module import Module
from ..tensor import Tensor

Target = int | Sequence[int] | np.ndarray | None


@contextmanager
def inspecting(model: Module, param_grads: bool = False) -> Iterator[Module]:
    """``model`` in evaluation mode with its parameters' gradients cleared; on exit every
    module's mode and every parameter's ``grad`` and ``requires_grad`` are as they were.
    Without ``param_grads`` the parameters do not require gradients meanwhile, so a
    backward pass computes only what flows to the input (no weight-gradient work)."""
    params = list(model.parameters())
    saved = [(p, p.grad, p.requires_grad) for p in params]
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        for p in params:
            p.grad = None
            if not param_grads:
                p.requires_grad = False
        yield model
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
        for p, g, rg in saved:
            p.grad, p.requires_grad = g, rg


def model_dtype(model: Module) -> np.dtype:
    """The dtype of the model's parameters (float32 for a model without any): what an
    input made for it should be."""
    p = next(iter(model.parameters()), None)
    return np.dtype(p.dtype) if p is not None else np.dtype(np.float32)


def check_positive_int(value, name: str) -> None:
    """A count the user sets (steps, samples, batch_size, patch...): an int of at least 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def as_batch(x, what: str = "x") -> np.ndarray:
    """``x`` as a float (N, C, H, W) array; one image (C, H, W) becomes a batch of one."""
    arr = np.asarray(x.data if isinstance(x, Tensor) else x)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"{what} must be images (N, C, H, W) or one image (C, H, W), got "
                         f"shape {arr.shape}")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float32)


def resolve_targets(target: Target, logits: np.ndarray) -> np.ndarray:
    """One class index per image: ``None`` is each image's predicted class, an int the same
    class for all, a sequence one per image; each checked against the number of classes."""
    n, classes = logits.shape
    if target is None:
        return logits.argmax(axis=1)
    t = np.asarray(target)
    if t.ndim == 0:
        t = np.full(n, int(t))
    if t.shape != (n,) or t.dtype.kind not in "iu":
        raise ValueError(f"target must be a class index or one per image ({n}), got "
                         f"{np.asarray(target).tolist()!r}")
    bad = t[(t < 0) | (t >= classes)]
    if bad.size:
        raise ValueError(f"target class {int(bad[0])} is out of range: the model has "
                         f"{classes} classes (0..{classes - 1})")
    return t.astype(np.int64)


def logits_of(model: Module, x: Tensor) -> Tensor:
    """The model's output, checked to be class scores (N, classes)."""
    out = model(x)
    if not isinstance(out, Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"explanations need a model that returns class scores (N, classes), "
                         f"got {shape}")
    return out


def score_of(logits: Tensor, targets: np.ndarray) -> Tensor:
    """The sum over the batch of each image's target-class score (pre-softmax): its
    gradient with respect to an image is that image's own score gradient."""
    onehot = np.zeros(logits.shape, dtype=logits.dtype)
    onehot[np.arange(len(targets)), targets] = 1
    return (logits * Tensor(onehot)).sum()


def input_gradient(model: Module, x, target: Target = None) -> tuple[np.ndarray, np.ndarray]:
    """(d score_target / d x of shape (N, C, H, W), the logits (N, classes)) with the
    model inspected as ``inspecting`` says."""
    batch = as_batch(x)
    with inspecting(model):
        xt = Tensor(batch.copy(), requires_grad=True)
        logits = logits_of(model, xt)
        targets = resolve_targets(target, logits.data)
        score_of(logits, targets).backward()
    return xt.grad.data, logits.data
