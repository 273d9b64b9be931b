"""Reverse-mode automatic differentiation: the Function base, grad mode, anomaly mode
(``detect_anomaly``, from anomaly.py) and unbroadcast.

A ``Function`` subclass implements ``forward(ctx, *arrays, **kwargs) -> ndarray`` (usually one
kernel call, keeping the kernel's cache on ``ctx``) and ``backward(ctx, grad) -> tuple`` with
one gradient (or None) per tensor input. ``Function.apply`` wraps arrays and tensors and
records the graph node when gradients are needed.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, NamedTuple

import numpy as np

# AnomalyError, detect_anomaly and set_detect_anomaly are re-exported: convnetpy.autograd's
# names follow torch.autograd's
from .anomaly import (  # noqa: F401
    AnomalyError,
    check_forward,
    detect_anomaly,
    is_anomaly_enabled,
    is_quiet,
    quiet_floating_point,
    set_detect_anomaly,
)
from .shape import receptive_field_step

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class _GradMode:
    mode = True

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        set_grad_enabled(self.mode)

    def __exit__(self, *exc: Any) -> None:
        set_grad_enabled(self.prev)

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Context manager (and decorator) that records no graph, as ``torch.no_grad``.

    >>> import convnetpy as cp
    >>> x = cp.tensor([1.0, 2.0], requires_grad=True)
    >>> with cp.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    mode = False


class enable_grad(_GradMode):
    """Re-enable graph recording inside a ``no_grad`` block."""

    mode = True


class run_backward_callbacks:
    """Context of one backward pass (``Tensor.backward`` enters it): the callbacks that
    ``queue_callback`` adds during the pass run, in order, when it completes; a pass that
    raises drops them."""

    def __enter__(self) -> None:
        self.outer = getattr(_state, "callbacks", None)
        _state.callbacks = []

    def __exit__(self, exc_type, *exc: Any) -> None:
        callbacks, _state.callbacks = _state.callbacks, self.outer
        if exc_type is None:
            for fn in callbacks:
                fn()


def queue_callback(fn) -> None:
    """Run ``fn()`` once the backward pass running in this thread completes (from a hook,
    as PyTorch's engine ``queue_callback``); data-parallel training waits for its gradient
    exchanges there."""
    callbacks = getattr(_state, "callbacks", None)
    if callbacks is None:
        raise RuntimeError("queue_callback can only be called during a backward pass")
    callbacks.append(fn)


def current_tracer() -> Any:
    """The active shape tracer (see ``convnetpy.analysis``), or None."""
    return getattr(_state, "tracer", None)


def set_tracer(tracer: Any) -> Any:
    """Install ``tracer`` (or None); returns the previous one. While a tracer is active,
    Functions that define ``meta`` compute only their output shape (no convolution runs),
    and every Function call is reported to ``tracer.record(ctx, args, kwargs, result)``."""
    prev = current_tracer()
    _state.tracer = tracer
    return prev


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``, undoing NumPy broadcasting.

    >>> unbroadcast(np.ones((2, 3)), (3,)).tolist()
    [2.0, 2.0, 2.0]
    >>> unbroadcast(np.ones((2, 3)), (2, 1)).tolist()
    [[3.0], [3.0]]
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Cost(NamedTuple):
    """What one call of an op costs (``Function.cost``), for the whole batch of the call.

    ``forward``, ``backward``: floating-point operations (a multiply-add is two; a
    comparison, an exp or a log one); backward counts only the gradients that flow.
    ``macs``: multiply-accumulates of a weighted op (convolution, linear, matrix product),
    the column torchvision and the lecture report. ``saved``: bytes of new arrays the op
    keeps from forward to backward beyond its inputs and output (masks, statistics, copies);
    ``workspace``: peak bytes of the temporaries inside its forward and its backward pass
    (im2col columns, say), both as the kernel on the current compute path allocates them.
    A plain (forward, backward) pair converts: ``Cost(*pair)``."""
    forward: int = 0
    backward: int = 0
    macs: int = 0
    saved: int = 0
    workspace: tuple[int, int] = (0, 0)


class Window(NamedTuple):
    """A sliding-window op's geometry (``Function.window``): the summary writes its size
    formula from it, and its receptive field follows. ``padding`` per axis as (before,
    after); ``weight`` the shape of its filters (O, C/groups, KH, KW), if it has any."""
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    weight: tuple[int, ...] | None = None
    groups: int = 1


class Function:
    """A node of the graph: ``parents`` holds, per positional input, the Tensor that wants a
    gradient (or None); ``needs`` says which positions want one."""

    parents: tuple = ()
    needs: tuple[bool, ...] = ()
    # the Tensor class that ``apply`` takes and returns; tensor.py sets it when it defines
    # Tensor (this module sits below tensor.py, so it cannot import it)
    tensor_type: Any = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> tuple:
        raise NotImplementedError

    # the output shares the input's memory (a reshape, a transpose): it takes no bytes
    view: bool = False
    # one output element per input element at the same position and channel (an
    # activation, batch norm): what fed the input (a 1x1 reduction, say) still feeds it
    elementwise: bool = False

    def cost(self, needs: tuple[bool, ...], out: Any, *arrays: Any, **kwargs: Any) -> Cost:
        """What this call costs (a ``Cost``), counted from the op's own arithmetic:
        ``needs`` says which inputs get a gradient in backward, ``out`` is the output and
        ``arrays`` and ``kwargs`` those of the call. Only shapes and dtypes are read (the
        summary passes stand-ins that hold no data). Default, an element-wise op that keeps
        nothing new: one operation per output element forward, one per element of each
        input gradient."""
        n = int(np.size(out))
        return Cost(n, sum(int(np.size(a)) for a, need in zip(arrays, needs) if need))

    def window(self, *arrays: Any, **kwargs: Any) -> Window | None:
        """The sliding window of this call (a ``Window``), or None for an op without one."""
        return None

    def receptive_field(self, rf: Any, *arrays: Any, **kwargs: Any) -> Any:
        """The receptive field of this op's output, given that of its input (per axis:
        size, jump, start; ``convnetpy.shape.receptive_field_step``), for the summary and
        the probes. A window op's follows from its ``window``; an op that keeps positions
        (elementwise, across channels) passes it on; others (padding, adaptive pools)
        override this, with the arrays and settings of the call."""
        win = self.window(*arrays, **kwargs)
        if win is None:
            return rf
        return receptive_field_step(rf, win.kernel, win.stride,
                                    (win.padding[0][0], win.padding[1][0]), win.dilation)

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any):
        """Run ``forward`` and record the node; returns the output Tensor."""
        return cls.apply_with_ctx(*args, **kwargs)[0]

    @classmethod
    def apply_with_ctx(cls, *args: Any, **kwargs: Any):
        """Run ``forward`` on the arrays of ``args`` and record the node.

        Convention: positional arguments are the array inputs (Tensor, ndarray or None);
        settings go in keyword arguments. ``backward`` returns one gradient per positional
        argument (None for a None input or one that needs no gradient).
        """
        Tensor = Function.tensor_type
        ctx = cls()
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        ctx.needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        track = is_grad_enabled() and any(ctx.needs)
        tracer = getattr(_state, "tracer", None)
        if tracer is not None and hasattr(ctx, "meta"):
            out = ctx.meta(*arrays, **kwargs)
        elif is_quiet():  # inside a model call: its scope is already entered
            out = ctx.forward(*arrays, **kwargs)
        else:
            with quiet_floating_point():
                out = ctx.forward(*arrays, **kwargs)
        if is_anomaly_enabled() and tracer is None:
            check_forward(ctx, arrays, out)
        result = Tensor._from_array(out, requires_grad=track)
        if track:
            ctx.parents = tuple(a if isinstance(a, Tensor) and a.requires_grad else None
                                for a in args)
            result._ctx = ctx
        if tracer is not None:
            tracer.record(ctx, args, kwargs, result)
        return result, ctx

    def __repr__(self) -> str:
        return f"<{type(self).__name__}Backward>"


class GradcheckError(RuntimeError):
    """A gradient from backward disagrees with its finite-difference estimate."""


def gradcheck(fn, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              seed: int = 0, raise_exception: bool = True) -> bool:
    """Check the gradients that ``fn(*inputs)`` sends back to each input that requires one
    against central finite differences, as ``torch.autograd.gradcheck`` does.

    ``fn`` returns a Tensor; its output is projected on a fixed random tensor ``r``, so one
    backward pass gives the gradient of sum(out * r) and two forward passes per input
    element estimate it: (f(x + eps) - f(x - eps)) / (2 eps). An input passes when the
    largest difference is within ``atol``, or within ``rtol`` times its largest numeric
    gradient. Inputs that require a gradient must be float64 (float32 differences are too
    coarse to tell a bug from rounding). Returns True, or raises ``GradcheckError`` naming
    the input and the worst element (returns False with ``raise_exception=False``).

    NOTE: one random projection instead of PyTorch's full Jacobian: as strong in practice
    for a wrong gradient, and as many backward passes as outputs fewer.

    >>> import convnetpy as cp
    >>> x = cp.tensor([[1.0, -2.0], [3.0, 0.5]], dtype="float64", requires_grad=True)
    >>> gradcheck(lambda t: (t * t).tanh(), [x])
    True
    """
    inputs = list(inputs)
    for k, t in enumerate(inputs):
        if getattr(t, "requires_grad", False) and t.data.dtype != np.float64:
            raise ValueError(f"gradcheck: input {k} is {t.data.dtype}; use float64 inputs "
                             f"(x.double(), module.double()) for finite differences")
    out = fn(*inputs)
    proj = np.random.default_rng(seed).standard_normal(out.shape)

    def projected() -> float:
        with no_grad():
            return float((fn(*inputs).data * proj).sum())

    for t in inputs:
        if getattr(t, "requires_grad", False):
            t.grad = None
    (out * type(out)._from_array(proj)).sum().backward()
    for k, t in enumerate(inputs):
        if not getattr(t, "requires_grad", False):
            continue
        arr = t.data
        numeric = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            hi = projected()
            arr[i] = old - eps
            lo = projected()
            arr[i] = old
            numeric[i] = (hi - lo) / (2 * eps)
        analytic = np.zeros_like(arr) if t.grad is None else t.grad.data
        diff = np.abs(numeric - analytic)
        if diff.size and diff.max() > max(atol, rtol * np.abs(numeric).max()):
            if not raise_exception:
                return False
            worst = np.unravel_index(int(diff.argmax()), diff.shape)
            raise GradcheckError(
                f"gradcheck: the gradient of input {k} (shape {tuple(arr.shape)}) is off at "
                f"{tuple(int(v) for v in worst)}: backward gives {analytic[worst]:.6g}, "
                f"finite differences {numeric[worst]:.6g} (largest error {diff.max():.3g}, "
                f"allowed {max(atol, rtol * np.abs(numeric).max()):.3g})")
    return True
