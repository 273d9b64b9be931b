"""Padding of trailing axes: constant, reflect, replicate, circular.

``pad`` follows torch.nn.functional.pad: a (before, after) pair per axis from the last one
backwards, (left, right, top, bottom, front, back, ...). Negative entries crop, as in
PyTorch: constant and circular crop first and then pad what is left (circular wraps around
the cropped axis); reflect and replicate index the whole input (reflect: x[-i] = x[i], the
edge not repeated; replicate: the edge repeated).

Shape:
    (*, H, W) -> (*, H + top + bottom, W + left + right), and so on for each pair

>>> import numpy as np
>>> x = np.arange(4.0).reshape(1, 1, 1, 4)
>>> pad_forward(x, (2, 1, 0, 0), "reflect")[0][0, 0, 0].tolist()
[2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0]
>>> pad_forward(x, (0, 0, 0, 0, 1, 1), "constant")[0].shape   # a channel each side
(1, 3, 1, 4)
"""

from __future__ import annotations

import numpy as np

from ..shape import ShapeError

MODES = ("constant", "zeros", "reflect", "replicate", "circular")
_NAMES = ("left", "right", "top", "bottom", "front", "back")


def _names(pad: tuple[int, ...]) -> str:
    return (f"({', '.join(_NAMES[:len(pad)])})" if len(pad) <= len(_NAMES)
            else "(a before, after pair per dim from the last)")


def pad_axes(ndim: int, pad: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(axis, before, after) of each pair of ``pad`` that is not (0, 0), last axis first."""
    pairs = [(ndim - 1 - i, pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]
    return [(ax, b, a) for ax, b, a in pairs if b or a]


def _check_axis(shape: tuple[int, ...], pad: tuple[int, ...], mode: str, axis: int,
                before: int, after: int) -> None:
    """PyTorch's rules for one padded axis; a ShapeError that names it otherwise."""
    size = shape[axis]
    kept = size + min(before, 0) + min(after, 0)  # what is left after cropping
    where = (f"padding ({before}, {after}) of dim {axis} (size {size}) of an input of shape "
             f"{tuple(shape)}")
    if mode == "reflect" and max(before, after) >= size:
        raise ShapeError("pad", f"reflect padding {pad} {_names(pad)} must be smaller than the "
                                f"input size it reflects: {where}")
    if mode == "circular" and (kept < 0 or max(before, after) > kept):
        raise ShapeError("pad", f"circular padding {pad} {_names(pad)} must not exceed the "
                                f"input size (what is left of it after cropping): {where}")
    if mode in ("reflect", "replicate") and size + before + after < 1:
        raise ShapeError("pad", f"{mode} padding {pad} {_names(pad)} leaves no output: {where}")
    if mode in ("constant", "zeros") and kept < 0:
        raise ShapeError("pad", f"padding {pad} {_names(pad)} crops more than the input has: "
                                f"{where}")


def _index_map(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each output position along one axis, the input index it copies."""
    if mode == "circular":  # crop, then wrap around what is left
        lo = max(-before, 0)
        kept = size - lo - max(-after, 0)
        return lo + np.arange(-max(before, 0), kept + max(after, 0)) % max(kept, 1)
    idx = np.arange(-before, size + after)
    if mode == "reflect":
        period = 2 * (size - 1)
        idx = np.abs(idx) % period if period else np.zeros_like(idx)
        return np.where(idx >= size, period - idx, idx)
    return np.clip(idx, 0, size - 1)  # replicate


def _crop(shape: tuple[int, ...], axes: list[tuple[int, int, int]]) -> tuple[slice, ...]:
    """The slices that cut the negative entries off (constant padding)."""
    index = [slice(None)] * len(shape)
    for ax, b, a in axes:
        index[ax] = slice(max(-b, 0), shape[ax] - max(-a, 0))
    return tuple(index)


def pad_forward(
    x: np.ndarray, pad: tuple[int, ...], mode: str = "constant", value: float = 0.0
) -> tuple[np.ndarray, tuple]:
    """Pad the trailing axes of ``x`` by ``pad`` (see the module docstring); returns
    (out, cache)."""
    if mode not in MODES:
        raise ValueError(f"padding mode must be one of {MODES}, got {mode!r}")
    if len(pad) % 2 or len(pad) > 2 * x.ndim:
        raise ShapeError("pad", f"pad {pad} needs an even number of entries, at most 2 * "
                                f"{x.ndim} for an input of shape {x.shape}")
    axes = pad_axes(x.ndim, pad)
    for ax, b, a in axes:
        _check_axis(x.shape, pad, mode, ax, b, a)
    if mode in ("constant", "zeros"):
        widths = [(0, 0)] * x.ndim
        for ax, b, a in axes:
            widths[ax] = (max(b, 0), max(a, 0))
        out = np.pad(x[_crop(x.shape, axes)], widths, mode="constant", constant_values=value)
        return out, (x.shape, axes, None)
    maps = [(ax, _index_map(x.shape[ax], b, a, mode)) for ax, b, a in axes]
    out = x
    for ax, idx in maps:
        out = np.take(out, idx, axis=ax)
    return out, (x.shape, axes, maps)


def pad_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient of ``pad_forward`` with respect to its input."""
    shape, axes, maps = cache
    if maps is None:
        dx = np.zeros(shape, dtype=dout.dtype)
        inner = [slice(None)] * dout.ndim
        for ax, b, a in axes:
            inner[ax] = slice(max(b, 0), dout.shape[ax] - max(a, 0))
        dx[_crop(shape, axes)] = dout[tuple(inner)]
        return dx
    g = dout
    for ax, idx in reversed(maps):
        # scatter-add the output positions back to the input positions they copy, one axis
        # at a time, with a one-hot matrix so that repeated indices add up:
        # (..., OUT) x (OUT, SIZE) -> (..., SIZE) along axis ``ax``
        onehot = np.zeros((idx.size, shape[ax]), dtype=dout.dtype)
        onehot[np.arange(idx.size), idx] = 1
        g = np.moveaxis(np.moveaxis(g, ax, -1) @ onehot, -1, ax)
    return np.ascontiguousarray(g)


def check_pad_dims(shape: tuple[int, ...], pad: tuple[int, ...], mode: str) -> None:
    """PyTorch's rule for the dims that reflect, replicate and circular padding take: a pad
    of 2, 4 or 6 entries (the last 1, 2 or 3 dims) of an input with one or two more dims
    (unbatched or batched); reflect and replicate also need every dim non-empty but the
    batch. Constant padding pads any number of trailing dims."""
    if mode in ("constant", "zeros"):
        return
    k, nd = len(pad) // 2, len(shape)
    if k not in (1, 2, 3) or nd not in (k + 1, k + 2):
        dims = "dim" if k == 1 else f"{k} dims"
        raise ShapeError("pad", f"{mode} padding with {len(pad)} entries pads the last {dims} "
                                f"of a {k + 1}-D or {k + 2}-D input (unbatched or "
                                f"batched), got a {nd}-D input of shape {tuple(shape)}; pad "
                                f"2, 4 or 6 entries, or use mode='constant' for any dims")
    if mode != "circular" and 0 in shape[nd - k - 1:]:
        raise ShapeError("pad", f"{mode} padding needs every dim of the input non-empty but "
                                f"the batch, got shape {tuple(shape)}")
