"""Reverse-mode automatic differentiation: the Function base, grad mode and unbroadcast.

A ``Function`` subclass implements ``forward(ctx, *arrays, **kwargs) -> ndarray`` (usually one
kernel call, keeping the kernel's cache on ``ctx``) and ``backward(ctx, grad) -> tuple`` with
one gradient (or None) per tensor input. ``Function.apply`` wraps arrays and tensors and
records the graph node when gradients are needed.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np

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

    def cost(self, needs: tuple[bool, ...], out: Any, *arrays: Any,
             **kwargs: Any) -> tuple[int, int]:
        """(forward, backward) floating-point operations of this call, counted from the
        op's own arithmetic (a multiply-add is two; a comparison, an exp or a log one):
        ``needs`` says which inputs get a gradient in backward, ``out`` is the output and
        ``arrays`` and ``kwargs`` those of the call. Default, an element-wise op: one per
        output element forward, and one per element of each input gradient."""
        n = int(np.size(out))
        return n, sum(int(np.size(a)) for a, need in zip(arrays, needs) if need)

    def receptive_field(self, rf: Any, *arrays: Any, **kwargs: Any) -> Any:
        """The receptive field of this op's output, given that of its input (per axis:
        size, jump, start; ``convnetpy.shape.receptive_field_step``), for the summary and
        the probes. An op that keeps positions (elementwise, across channels) passes it on;
        windows and padding override this, with the arrays and settings of the call."""
        return rf

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
        else:
            out = ctx.forward(*arrays, **kwargs)
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
