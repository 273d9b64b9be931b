"""Padding of the two spatial axes: constant, reflect, replicate, circular.

``pad`` follows torch.nn.functional.pad for 4-D input and a 4-tuple: (left, right, top,
bottom). Constant padding may be negative (it crops), as in PyTorch.

Shape:
    (N, C, H, W) -> (N, C, H + top + bottom, W + left + right)

>>> import numpy as np
>>> x = np.arange(4.0).reshape(1, 1, 1, 4)
>>> pad_forward(x, (2, 1, 0, 0), "reflect")[0][0, 0, 0].tolist()
[2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0]
"""

from __future__ import annotations

import numpy as np

from ..shape import ShapeError

_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
MODES = ("constant", "zeros", "reflect", "replicate", "circular")


def _index_map(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each output position along one axis, the input index it copies."""
    idx = np.arange(-before, size + after)
    if mode == "reflect":
        period = 2 * (size - 1)
        idx = np.abs(idx) % period if period else np.zeros_like(idx)
        idx = np.where(idx >= size, period - idx, idx)
    elif mode == "replicate":
        idx = np.clip(idx, 0, size - 1)
    else:  # circular
        idx = idx % size
    return idx


def pad_forward(
    x: np.ndarray, pad: tuple[int, int, int, int], mode: str = "constant", value: float = 0.0
) -> tuple[np.ndarray, tuple]:
    """Pad the last two axes of ``x``; returns (out, cache)."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    if mode in ("constant", "zeros"):
        # crop first (negative padding), then pad with the constant
        crop = x[..., max(-top, 0): h - max(-bottom, 0), max(-left, 0): w - max(-right, 0)]
        widths = [(0, 0)] * (x.ndim - 2) + [(max(top, 0), max(bottom, 0)),
                                             (max(left, 0), max(right, 0))]
        out = np.pad(crop, widths, mode="constant", constant_values=value)
        return out, (x.shape, pad, mode, None)
    if mode not in _NP_MODES:
        raise ValueError(f"padding mode must be one of {MODES}, got {mode!r}")
    if min(pad) < 0:
        raise ValueError(f"{mode} padding must be non-negative, got {pad}")
    if mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        raise ShapeError(
            "pad",
            f"reflect padding {pad} (left, right, top, bottom) must be smaller than the input "
            f"size it reflects: got input height {h}, width {w}",
        )
    if mode == "circular" and (max(top, bottom) > h or max(left, right) > w):
        raise ShapeError(
            "pad",
            f"circular padding {pad} (left, right, top, bottom) must not exceed the input "
            f"size: got input height {h}, width {w}",
        )
    if mode == "replicate" and (h == 0 or w == 0):
        raise ShapeError("pad", f"replicate padding needs a non-empty input, got {x.shape}")
    rows = _index_map(h, top, bottom, mode)
    cols = _index_map(w, left, right, mode)
    out = x[..., rows[:, None], cols[None, :]]
    return out, (x.shape, pad, mode, (rows, cols))


def pad_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient of ``pad_forward`` with respect to its input."""
    shape, (left, right, top, bottom), mode, maps = cache
    h, w = shape[-2:]
    if maps is None:
        dx = np.zeros(shape, dtype=dout.dtype)
        oh, ow = dout.shape[-2:]
        inner = dout[..., max(top, 0): oh - max(bottom, 0), max(left, 0): ow - max(right, 0)]
        dx[..., max(-top, 0): h - max(-bottom, 0), max(-left, 0): w - max(-right, 0)] = inner
        return dx
    rows, cols = maps
    lead = dout.shape[:-2]
    # scatter-add the output grid back to input positions: sum the rows then the columns
    # (two 1-D reductions), using a one-hot matrix per axis so that repeated indices add up.
    rh = np.zeros((h, rows.size), dtype=dout.dtype)
    rh[rows, np.arange(rows.size)] = 1
    rw = np.zeros((w, cols.size), dtype=dout.dtype)
    rw[cols, np.arange(cols.size)] = 1
    # (..., OH, OW) x (H, OH) x (W, OW) -> (..., H, W)
    dx = np.matmul(np.matmul(rh, dout.reshape((-1,) + dout.shape[-2:])), rw.T)
    return dx.reshape(lead + (h, w))
