"""Functions behind the Tensor's operators: arithmetic, reductions, shape and indexing."""

from __future__ import annotations

import numpy as np

from .autograd import Cost, Function, unbroadcast
from .backend.dispatch import kernel
from .shape import ShapeError


def _broadcast(op: str, fn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Apply a binary NumPy op; shapes that do not broadcast get an explanation (the usual
    case is a residual add whose shortcut was not projected)."""
    try:
        return fn(a, b)
    except ValueError:
        if np.ndim(a) == np.ndim(b) == 4 and a.shape[0] == b.shape[0]:
            big, small = (a.shape, b.shape) if a.shape[2] >= b.shape[2] else (b.shape, a.shape)
            stride = big[2] // small[2] if small[2] and big[2] % small[2] == 0 else None
            fix = (f" A residual add needs equal shapes: project the shortcut with "
                   f"Conv2d({big[1]}, {small[1]}, kernel_size=1"
                   + (f", stride={stride})" if stride and stride > 1 else ")")
                   + " (and a BatchNorm2d), or fix the block's stride/channels.")
        else:
            fix = ""
        raise ShapeError(op, f"shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast."
                             + fix) from None


class Add(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return _broadcast("add", np.add, a, b)

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return _broadcast("sub", np.subtract, a, b)

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return _broadcast("mul", np.multiply, a, b)

    def backward(self, g):
        da = unbroadcast(g * self.b, self.a.shape) if self.needs[0] else None
        db = unbroadcast(g * self.a, self.b.shape) if self.needs[1] else None
        return da, db


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return _broadcast("div", np.divide, a, b)

    def backward(self, g):
        da = unbroadcast(g / self.b, self.a.shape) if self.needs[0] else None
        db = unbroadcast(-g * self.a / (self.b * self.b), self.b.shape) if self.needs[1] else None
        return da, db


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        a, b = self.a, self.b
        da = unbroadcast(g * b * a ** (b - 1), a.shape) if self.needs[0] else None
        db = None
        if self.needs[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                la = np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0)
            db = unbroadcast(g * self.out * la, b.shape)
        return da, db


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return np.matmul(a, b)

    def backward(self, g):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        da = db = None
        if self.needs[0]:
            da = unbroadcast(np.matmul(g, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs[1]:
            db = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g), b2.shape).reshape(b.shape)
        return da, db

    def cost(self, needs, out, a, b):
        macs = out.size * a.shape[-1]  # 2 x MACs each way per gradient
        return Cost(2 * macs, 2 * macs * (needs[0] + needs[1]), macs)


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Exp(Function):
    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, g):
        return (g * self.out,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return (g / self.a,)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return (g * np.sign(self.a),)


class Clamp(Function):
    def cost(self, needs, out, a, **kwargs):
        return Cost(2 * a.size, a.size if needs[0] else 0, saved=a.size)  # a bool mask

    def forward(self, a, lo=None, hi=None):
        out = np.clip(a, lo, hi) if lo is not None or hi is not None else a.copy()
        self.mask = np.ones(a.shape, dtype=bool)
        if lo is not None:
            self.mask &= a >= lo
        if hi is not None:
            self.mask &= a <= hi
        return out

    def backward(self, g):
        return (np.where(self.mask, g, 0).astype(g.dtype, copy=False),)


class Cast(Function):
    def forward(self, a, dtype=None):
        self.src = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return (g.astype(self.src),)

    def cost(self, needs, out, *arrays, **kwargs):
        return Cost()  # a copy: no arithmetic


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return (g,)

    def cost(self, needs, out, *arrays, **kwargs):
        return Cost()  # a copy: no arithmetic


def _norm_dims(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(d % max(ndim, 1) for d in dims)


class Sum(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.shape, self.dims = a.shape, _norm_dims(dim, a.ndim)
        if len(self.dims) == a.ndim and not keepdim:
            return kernel("sum_all").forward(a)
        return np.asarray(a.sum(axis=self.dims, keepdims=keepdim))

    def backward(self, g):
        g = np.expand_dims(g, tuple(sorted(self.dims))) if g.ndim < len(self.shape) else g
        return (np.broadcast_to(g, self.shape),)

    def cost(self, needs, out, a, **kwargs):
        return Cost(a.size, a.size if needs[0] else 0)  # one per input element each way


class Mean(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.shape, self.dims = a.shape, _norm_dims(dim, a.ndim)
        self.count = int(np.prod([a.shape[d] for d in self.dims], dtype=np.int64))
        return np.asarray(a.mean(axis=self.dims, keepdims=keepdim))

    def backward(self, g):
        g = np.expand_dims(g, tuple(sorted(self.dims))) if g.ndim < len(self.shape) else g
        return (np.broadcast_to(g / self.count, self.shape),)

    def cost(self, needs, out, a, **kwargs):
        return Cost(a.size, a.size if needs[0] else 0)  # one per input element each way


class MaxAll(Function):
    def forward(self, a):
        self.a = a
        self.out = np.asarray(a.max())
        return self.out

    def backward(self, g):
        ties = self.a == self.out
        return ((ties * (g / ties.sum())).astype(g.dtype, copy=False),)

    def cost(self, needs, out, a, **kwargs):
        return Cost(a.size, a.size if needs[0] else 0)  # one per input element each way


class Gather(Function):
    """Values at ``index`` (kept as a size-1 axis ``dim``), e.g. the argmax of max(dim)."""

    def forward(self, a, index=None, dim=0, keepdim=False):
        self.shape, self.index, self.dim = a.shape, index, dim
        out = np.take_along_axis(a, index, axis=dim)
        return out if keepdim else out.squeeze(dim)

    def backward(self, g):
        dx = np.zeros(self.shape, dtype=g.dtype)
        if g.ndim < len(self.shape):
            g = np.expand_dims(g, self.dim)
        np.put_along_axis(dx, self.index, g, axis=self.dim)
        return (dx,)

    def cost(self, needs, out, a, **kwargs):
        return Cost(0, out.size if needs[0] else 0)  # backward adds into a zero gradient


class Reshape(Function):
    view = True  # NOTE: a reshape NumPy cannot make as a view copies; counted as a view

    def forward(self, a, shape=()):
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(
                f"shape {tuple(shape)} is invalid for input of size {a.size} (shape {a.shape})"
            ) from None

    def backward(self, g):
        return (g.reshape(self.shape),)

    def cost(self, needs, out, *arrays, **kwargs):
        return Cost()  # a view: no arithmetic


class Permute(Function):
    view = True

    def forward(self, a, axes=()):
        if sorted(d % max(a.ndim, 1) for d in axes) != list(range(a.ndim)):
            raise ValueError(f"permute dims {axes} do not match the {a.ndim} axes of {a.shape}")
        self.axes = axes
        return a.transpose(axes)

    def backward(self, g):
        return (g.transpose(np.argsort([d % g.ndim for d in self.axes])),)

    def cost(self, needs, out, *arrays, **kwargs):
        return Cost()  # a view: no arithmetic


class Index(Function):
    def forward(self, a, index=None):
        self.shape, self.index = a.shape, index
        return a[index]

    def backward(self, g):
        dx = np.zeros(self.shape, dtype=g.dtype)
        np.add.at(dx, self.index, g)  # repeated indices add up
        return (dx,)

    def cost(self, needs, out, a, **kwargs):
        return Cost(0, out.size if needs[0] else 0)  # backward adds into a zero gradient


class Cat(Function):
    def forward(self, *arrays, dim=0):
        if not arrays:
            raise ValueError("cat() expects a non-empty list of tensors")
        nd = arrays[0].ndim
        d = dim % nd
        first = arrays[0].shape
        for i, a in enumerate(arrays[1:], 1):
            if a.ndim != nd or a.shape[:d] + a.shape[d + 1:] != first[:d] + first[d + 1:]:
                hint = ""
                if nd == 4 and d == 1:
                    hint = (f". Branches concatenated on channels must keep the same spatial "
                            f"size: got {first[2]}x{first[3]} and {a.shape[2]}x{a.shape[3]}; "
                            "give each KxK branch padding=(K-1)//2 and stride 1 (or pool "
                            "with padding=1, stride=1)")
                raise ShapeError(
                    "cat", f"dim={dim}: sizes must match except along dim {dim}; tensor 0 has "
                    f"shape {tuple(first)}, tensor {i} has shape {tuple(a.shape)}{hint}")
        self.dim = d
        self.splits = np.cumsum([a.shape[d] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=d)

    def backward(self, g):
        return tuple(np.split(g, self.splits, axis=self.dim))

    def cost(self, needs, out, *arrays, **kwargs):
        return Cost()  # a copy: no arithmetic

