"""Anomaly mode and quiet floating point: where a NaN or an infinity first appears.

``detect_anomaly()`` (a context manager and decorator, as ``torch.autograd.detect_anomaly``;
``convnetpy.autograd`` exports it) checks the output of every op's forward and every
gradient its backward sends on, and raises ``AnomalyError`` at the first that is not
finite, naming the op, the layer of the model it ran in (``features.0``) and the pass. The
layers are known because, while the mode is on, each module call pushes itself on this
thread's layer stack and each op keeps a copy of it for its backward. NOTE: PyTorch checks
only backward and names only the backward function. Off, the mode costs one flag read per
op and per module call.

NumPy's floating-point warnings ("overflow encountered in matmul") never reach the user's
console: ops run under ``np.errstate(all="ignore")``, entered once per model call or
backward pass (``quiet_floating_point``), not once per op, and once around a whole ``fit``.
Non-finite values are reported by this mode and by the trainer's checks instead, with the
layer's name.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Iterator, Sequence

import numpy as np

_state = threading.local()


class AnomalyError(RuntimeError):
    """An op's forward output or backward gradient holds NaN or an infinity (anomaly mode).

    ``op`` is the op's name, ``phase`` "forward" or "backward", ``layer`` the innermost
    module it ran in (or None) and ``path`` that module's name in the model."""

    def __init__(self, message: str, op: str, phase: str, layer: Any, path: str | None):
        super().__init__(message)
        self.op, self.phase, self.layer, self.path = op, phase, layer, path


def is_anomaly_enabled() -> bool:
    return getattr(_state, "anomaly", False)


def set_detect_anomaly(mode: bool) -> None:
    """Turn anomaly mode on or off for this thread (``torch.autograd.set_detect_anomaly``)."""
    _state.anomaly = bool(mode)
    _state.layers = [] if mode else None


class detect_anomaly:
    """Raise ``AnomalyError`` at the first op whose forward output or backward gradient is
    not finite, naming the op and its layer (see the module docstring).

    >>> import numpy as np, convnetpy as cp
    >>> from convnetpy import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> try:
    ...     with cp.autograd.detect_anomaly():
    ...         net(cp.tensor([[np.inf, 1.0]]))
    ... except cp.autograd.AnomalyError as e:
    ...     print(e.op, e.phase, e.path)
    Linear forward 0
    """

    def __enter__(self) -> None:
        self.prev = (is_anomaly_enabled(), getattr(_state, "layers", None))
        set_detect_anomaly(True)

    def __exit__(self, *exc: Any) -> None:
        _state.anomaly, _state.layers = self.prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly():
                return fn(*args, **kwargs)
        return wrapper


def layer_stack() -> list | None:
    """This thread's stack of module calls while anomaly mode is on (a module pushes itself
    on it for the length of its call), else None."""
    return getattr(_state, "layers", None) if is_anomaly_enabled() else None


@contextlib.contextmanager
def quiet_floating_point() -> Iterator[None]:
    """NumPy's floating-point warnings off inside (once per thread: nested scopes are
    free)."""
    if getattr(_state, "quiet", False):
        yield
        return
    _state.quiet = True
    try:
        with np.errstate(all="ignore"):
            yield
    finally:
        _state.quiet = False


def is_quiet() -> bool:
    return getattr(_state, "quiet", False)


def _bad(arr: Any) -> str | None:
    """How ``arr`` is not finite ("3 non-finite values (nan, inf)"), or None."""
    if isinstance(arr, np.generic):  # a 0-d op's result may be a NumPy scalar
        arr = np.asarray(arr)
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fc":
        return None
    finite = np.isfinite(arr)
    if finite.all():
        return None
    bad = arr[~finite]
    kinds = [k for k, hit in (("nan", np.isnan(bad).any()), ("inf", np.isposinf(bad).any()),
                              ("-inf", np.isneginf(bad).any())) if hit]
    return f"{bad.size} non-finite value{'s' * (bad.size > 1)} ({', '.join(kinds)})"


def _where(layers: Sequence) -> tuple[Any, str | None, str]:
    """(innermost layer, its path in the outermost, the words for it)."""
    if not layers:
        return None, None, "outside any layer"
    inner, outer = layers[-1], layers[0]
    path = next((n for n, m in outer.named_modules() if m is inner), None) or None
    desc = f"{type(inner).__name__}({inner.extra_repr()})"
    return inner, path, (f"in layer {path} ({desc})" if path else f"in {desc}")


def _op(ctx: Any) -> str:
    return type(ctx).__name__.lstrip("_")


def check_forward(ctx: Any, arrays: Sequence, out: Any) -> None:
    """Anomaly mode's check of one op's forward (``Function.apply`` calls it): keeps the layer
    stack on ``ctx`` for the backward check, raises when ``out`` is not finite."""
    ctx.anomaly_layers = tuple(getattr(_state, "layers", None) or ())
    how = _bad(out)
    if how is None:
        return
    layer, path, where = _where(ctx.anomaly_layers)
    fed = next(((k, h) for k, h in ((k, _bad(a)) for k, a in enumerate(arrays)) if h), None)
    if fed:
        cause = (f"its input {fed[0]} already held {fed[1]}: they came into the model from "
                 "outside (the data, or a tensor set by hand)")
    else:
        cause = ("its inputs were finite, so this op produced them (an overflow, a log or "
                 "division of zero, too high a learning rate?)")
    raise AnomalyError(f"detect_anomaly: the forward output of {_op(ctx)} {where} holds "
                       f"{how} of {np.size(out)}; {cause}", _op(ctx), "forward", layer, path)


def check_backward(ctx: Any, grad: Any, grads: Sequence) -> None:
    """Anomaly mode's check of the gradients that one op's backward, given ``grad``, sends
    to its inputs."""
    for k, g in enumerate(grads):
        how = _bad(g)
        if how is None:
            continue
        layer, path, where = _where(getattr(ctx, "anomaly_layers", ()))
        parent = ctx.parents[k] if k < len(ctx.parents) else None
        name = next((n for n, p in layer.named_parameters(recurse=False) if p is parent),
                    None) if layer is not None else None
        came = _bad(grad)
        cause = (f"the gradient it received already held {came} (the gradient given to "
                 "backward())" if came else "the gradient it received was finite, so this "
                 "op's backward produced them")
        raise AnomalyError(f"detect_anomaly: the backward of {_op(ctx)} {where} sends input "
                           f"{k}{f' ({name})' if name else ''} a gradient holding {how} of "
                           f"{np.size(g)}; {cause}", _op(ctx), "backward", layer, path)
