"""The Tensor: an ndarray with an optional autograd history.

``backward()`` walks the graph in reverse topological order computed iteratively (no
recursion, so a 10,000-op chain is fine), summing the gradients of nodes used more than once.
The math operators and methods are Functions in ``_ops.py``; the activation methods
(``relu``, ``softmax``, ...) are attached by ``functional.py``, which sits above this module.

NOTE: unlike ``torch.Tensor.data``, ``Tensor.data`` is the underlying ``numpy.ndarray``;
optimizers update it in place. ``Tensor(ndarray)`` shares the array (like
``torch.from_numpy``); ``convnetpy.tensor(...)`` copies it (like ``torch.tensor``).

>>> import convnetpy as cp
>>> x = cp.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad.numpy().tolist()
[[2.0, 4.0], [6.0, 8.0]]
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np

from . import _ops as ops
from .anomaly import check_backward, is_anomaly_enabled, quiet_floating_point
from .autograd import Function, is_grad_enabled, run_backward_callbacks

_FLOATS = (np.float16, np.float32, np.float64)


def _whole(a: np.ndarray) -> bool:
    """Whether ``a`` is the one array over its memory: it owns its data, or it was made over
    a raw buffer (a kernel's output in recycled memory) rather than as a view of another
    array, whose base is that array or an object exposing it (``__array_interface__``)."""
    base = a.base
    return a.flags.owndata or (base is not None and not isinstance(base, np.ndarray)
                               and not hasattr(base, "__array_interface__"))


def as_array(data: Any, dtype: Any = None, copy: bool = False) -> np.ndarray:
    """``data`` (a Tensor, ndarray, torch tensor or nested sequence) as an ndarray, the way
    ``convnetpy.tensor`` reads it: Python floats give float32; object arrays are refused."""
    if isinstance(data, Tensor):
        data = data.data
    elif hasattr(data, "detach") and hasattr(data, "numpy") and not isinstance(data, np.ndarray):
        data = data.detach().cpu().numpy()  # a torch tensor, duck-typed (torch not imported)
    if isinstance(data, np.ndarray):
        arr = np.array(data, dtype=dtype, copy=True) if copy else np.asarray(data, dtype=dtype)
    else:
        arr = np.array(data, dtype=dtype)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(np.float32)  # Python floats default to float32, as in PyTorch
    if arr.dtype == object:
        raise TypeError(f"cannot make a Tensor from {type(data).__name__} holding objects")
    return arr


class MaxResult(NamedTuple):
    values: Tensor
    indices: Tensor


class Tensor:
    """An n-dimensional array with reverse-mode autograd."""

    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator
    __hash__ = object.__hash__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self.data: np.ndarray = as_array(data, dtype)
        self.grad: Tensor | None = None
        self._ctx = None
        self._retain = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_array(cls, arr: np.ndarray, requires_grad: bool = False) -> Tensor:
        t = cls.__new__(cls)
        t.data = arr if isinstance(arr, np.ndarray) else np.asarray(arr)
        t.grad, t._ctx, t._retain, t.requires_grad = None, None, False, requires_grad
        return t

    # ----- properties -----
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> Any:
        if self.data.size != 1:
            raise ValueError(
                f"a Tensor with {self.data.size} elements cannot be converted to a scalar"
            )
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4)
        extra = ""
        if self.data.dtype not in (np.float32, np.int64, np.bool_):
            extra += f", dtype={self.data.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ----- autograd -----
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype not in _FLOATS:
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients, got {self.dtype}"
            )
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        self._retain = True

    def register_post_accumulate_grad_hook(self, hook) -> "HookHandle":
        """Call ``hook(tensor)`` each time a backward pass has added its gradient into this
        leaf's ``.grad`` (as PyTorch's; data-parallel training starts the gradient's
        exchange there). Returns a handle whose ``remove()`` takes the hook away."""
        if self._ctx is not None:
            raise RuntimeError("post-accumulate-grad hooks are for leaf tensors (parameters)")
        hooks = self.__dict__.setdefault("_post_hooks", {})
        handle = HookHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def detach(self) -> Tensor:
        return Tensor._from_array(self.data)

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        if not self.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = np.ones_like(self.data)
        else:
            g = as_array(grad, dtype=self.dtype)
            if g.shape != self.shape:
                raise RuntimeError(
                    f"grad of shape {g.shape} does not match the tensor's shape {self.shape}"
                )
        order = _topological_order(self)
        with run_backward_callbacks(), quiet_floating_point():
            self._run_backward(order, g, retain_graph)

    def _run_backward(self, order: list, g: np.ndarray, retain_graph: bool) -> None:
        grads: dict[int, np.ndarray] = {id(self): g}
        handed: set[int] = set()  # arrays already given to a leaf as its .grad
        anomaly = is_anomaly_enabled()
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            ctx = t._ctx
            if ctx is None or t._retain:
                _accumulate(t, g, handed)
            if ctx is None:
                continue
            if getattr(ctx, "released", False):
                raise RuntimeError(
                    "Trying to backward through the graph a second time: its saved arrays "
                    "were freed after the first backward. Pass retain_graph=True to the first "
                    "backward() call if you need to call it twice."
                )
            in_grads = ctx.backward(g)
            if anomaly:
                check_backward(ctx, g, in_grads)
            for p, pg in zip(ctx.parents, in_grads):
                if p is not None and pg is not None:
                    k = id(p)
                    grads[k] = pg if k not in grads else grads[k] + pg
            if not retain_graph:
                ctx.__dict__.clear()
                ctx.released = True

    # ----- dtype -----
    def to(self, dtype: Any) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        return ops.Cast.apply(self, dtype=dtype)

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return self.to(np.int64)

    def clone(self) -> Tensor:
        return ops.Clone.apply(self)

    # ----- arithmetic -----
    def _wrap(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return other
        if isinstance(other, np.ndarray):
            return Tensor._from_array(other)
        return Tensor._from_array(np.asarray(other, dtype=np.result_type(self.data, other)))

    def __add__(self, o): return ops.Add.apply(self, self._wrap(o))
    def __radd__(self, o): return ops.Add.apply(self._wrap(o), self)
    def __sub__(self, o): return ops.Sub.apply(self, self._wrap(o))
    def __rsub__(self, o): return ops.Sub.apply(self._wrap(o), self)
    def __mul__(self, o): return ops.Mul.apply(self, self._wrap(o))
    def __rmul__(self, o): return ops.Mul.apply(self._wrap(o), self)
    def __truediv__(self, o): return ops.Div.apply(self, self._wrap(o))
    def __rtruediv__(self, o): return ops.Div.apply(self._wrap(o), self)
    def __pow__(self, o): return ops.Pow.apply(self, self._wrap(o))
    def __rpow__(self, o): return ops.Pow.apply(self._wrap(o), self)
    def __matmul__(self, o): return ops.MatMul.apply(self, self._wrap(o))
    def __rmatmul__(self, o): return ops.MatMul.apply(self._wrap(o), self)
    def __neg__(self): return ops.Neg.apply(self)
    def __pos__(self): return self

    def _compare(self, o, fn) -> Tensor:
        return Tensor._from_array(fn(self.data, o.data if isinstance(o, Tensor) else o))

    def __eq__(self, o): return self._compare(o, np.equal)  # type: ignore[override]
    def __ne__(self, o): return self._compare(o, np.not_equal)  # type: ignore[override]
    def __lt__(self, o): return self._compare(o, np.less)
    def __le__(self, o): return self._compare(o, np.less_equal)
    def __gt__(self, o): return self._compare(o, np.greater)
    def __ge__(self, o): return self._compare(o, np.greater_equal)

    def exp(self) -> Tensor: return ops.Exp.apply(self)
    def log(self) -> Tensor: return ops.Log.apply(self)
    def sqrt(self) -> Tensor: return ops.Pow.apply(self, self._wrap(0.5))
    def abs(self) -> Tensor: return ops.Abs.apply(self)
    def clamp(self, min=None, max=None) -> Tensor: return ops.Clamp.apply(self, lo=min, hi=max)

    # ----- reductions -----
    def sum(self, dim=None, keepdim: bool = False) -> Tensor:
        return ops.Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim: bool = False) -> Tensor:
        return ops.Mean.apply(self, dim=dim, keepdim=keepdim)

    def max(self, dim: int | None = None, keepdim: bool = False):
        """Without ``dim``: the maximum (gradient shared evenly by ties, as PyTorch). With
        ``dim``: ``(values, indices)``, the gradient going to the returned index."""
        if dim is None:
            return ops.MaxAll.apply(self)
        idx = np.expand_dims(np.argmax(self.data, axis=dim), dim)
        values = ops.Gather.apply(self, index=idx, dim=dim, keepdim=keepdim)
        return MaxResult(values, Tensor._from_array(idx if keepdim else idx.squeeze(dim)))

    def min(self, dim: int | None = None, keepdim: bool = False):
        if dim is None:
            return -ops.MaxAll.apply(-self)
        idx = np.expand_dims(np.argmin(self.data, axis=dim), dim)
        values = ops.Gather.apply(self, index=idx, dim=dim, keepdim=keepdim)
        return MaxResult(values, Tensor._from_array(idx if keepdim else idx.squeeze(dim)))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        if dim is None:
            return Tensor._from_array(np.asarray(np.argmax(self.data)))
        return Tensor._from_array(np.argmax(self.data, axis=dim, keepdims=keepdim))

    # ----- shape -----
    def reshape(self, *shape) -> Tensor:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=tuple(shape))

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        nd = max(self.ndim, 1)
        s, e = start_dim % nd, end_dim % nd
        if s > e:
            raise ValueError(
                f"flatten() has invalid args: start_dim {start_dim} > end_dim {end_dim}")
        shp = self.shape
        new = shp[:s] + (int(np.prod(shp[s:e + 1], dtype=np.int64)),) + shp[e + 1:]
        return self.reshape(new)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return ops.Permute.apply(self, axes=tuple(axes))

    def permute(self, *dims) -> Tensor:
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return ops.Permute.apply(self, axes=tuple(dims))

    def unsqueeze(self, dim: int) -> Tensor:
        return self.reshape(np.expand_dims(self.data, dim).shape)

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        if self.shape[dim] != 1:
            return self
        return self.reshape(np.squeeze(self.data, dim).shape)

    def __getitem__(self, index) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return ops.Index.apply(self, index=index)


Function.tensor_type = Tensor


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors reachable from ``root`` through grad-requiring edges, parents first."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for p in getattr(t._ctx, "parents", ()):
                if p is not None and id(p) not in seen:
                    stack.append((p, False))
    return order


class HookHandle:
    """Removes the hook it was returned for."""
    _ids = itertools.count()

    def __init__(self, hooks: dict) -> None:
        self.hooks, self.id = hooks, next(HookHandle._ids)

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


def _accumulate(t: Tensor, g: np.ndarray, handed: set[int]) -> None:
    g = g.astype(t.dtype, copy=False)
    if t.grad is None:
        # a fresh array that owns its memory is taken as it is; a view (of another
        # gradient, or a read-only broadcast) or an array already given to another leaf is
        # copied, so that no two .grad ever share memory (clip_grad_norm_ scales in place)
        if not (_whole(g) and g.flags.writeable) or id(g) in handed:
            g = np.array(g, copy=True)
        handed.add(id(g))
        t.grad = Tensor._from_array(g)
    else:
        t.grad.data = t.grad.data + g
    hooks = t.__dict__.get("_post_hooks")
    if hooks:
        for hook in list(hooks.values()):
            hook(t)


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """A new Tensor holding a copy of ``data`` (Python floats give float32)."""
    t = Tensor._from_array(as_array(data, dtype, copy=True))
    return t.requires_grad_(True) if requires_grad else t


def from_numpy(arr: np.ndarray) -> Tensor:
    """A Tensor sharing ``arr``'s memory."""
    return Tensor._from_array(np.asarray(arr))


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def zeros(*shape, dtype: Any = np.float32, requires_grad: bool = False) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype: Any = np.float32, requires_grad: bool = False) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate along ``dim`` (the Inception block's channel concat)."""
    return ops.Cat.apply(*tensors, dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


__all__ = ["Tensor", "tensor", "from_numpy", "is_tensor", "zeros", "ones", "cat", "stack",
           "is_grad_enabled"]
