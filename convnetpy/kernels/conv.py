"""2-D convolution (cross-correlation, as every deep-learning library computes it): the
readable reference. Each output pixel is the dot product of a filter with the window of the
zero-padded input it meets; here every window is a strided view of the padded input, and the
sums over channels and kernel offsets are one einsum per group. ``convnetpy.backend``
computes the same numbers faster (batch chunks, im2col into cache, GEMMs, threads).

Shape:
    input (N, C_in, H, W), weight (C_out, C_in/groups, KH, KW), bias (C_out,)
    -> (N, C_out, H_out, W_out) with
    H_out = floor((H + P_top + P_bottom - D*(KH-1) - 1) / S) + 1 (likewise W_out)

>>> import numpy as np
>>> x = np.ones((1, 3, 32, 32), dtype=np.float32)
>>> w = np.ones((10, 3, 5, 5), dtype=np.float32)
>>> out, _ = conv2d_forward(x, w, None, padding=((2, 2), (2, 2)))
>>> out.shape, float(out[0, 0, 16, 16])
((1, 10, 32, 32), 75.0)
"""

from __future__ import annotations

import numpy as np

from ..shape import ShapeError, check_conv_axis

Pad2 = tuple[tuple[int, int], tuple[int, int]]


def conv2d_output_shape(
    xshape: tuple[int, ...],
    wshape: tuple[int, ...],
    bshape: tuple[int, ...] | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: Pad2 = ((0, 0), (0, 0)),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> tuple[int, int, int, int]:
    """Validate a convolution's shapes and return its output shape (N, C_out, H_out, W_out).

    >>> conv2d_output_shape((1, 3, 227, 227), (96, 3, 11, 11), stride=(4, 4))
    (1, 96, 55, 55)
    """
    if len(xshape) != 4:
        raise ShapeError("conv2d", f"expected a 4-D input (N, C_in, H, W), got shape {xshape}")
    if len(wshape) != 4:
        raise ShapeError(
            "conv2d", f"expected a 4-D weight (C_out, C_in/groups, KH, KW), got {wshape}"
        )
    o, cg, kh, kw = wshape
    if groups < 1 or o % groups:
        raise ShapeError("conv2d", f"out_channels {o} must be divisible by groups {groups}")
    if xshape[1] != cg * groups:
        raise ShapeError(
            "conv2d",
            f"expected input of shape (N, {cg * groups}, H, W) (weight {tuple(wshape)}, "
            f"groups={groups}), got {tuple(xshape)}: the input has {xshape[1]} channels, "
            f"the layer expects in_channels={cg * groups}",
        )
    if bshape is not None and tuple(bshape) != (o,):
        raise ShapeError("conv2d", f"expected bias of shape ({o},), got {tuple(bshape)}")
    oh = check_conv_axis("conv2d", "height", xshape[2], kh, stride[0], padding[0], dilation[0])
    ow = check_conv_axis("conv2d", "width", xshape[3], kw, stride[1], padding[1], dilation[1])
    return xshape[0], o, oh, ow


def _windows(xp: np.ndarray, kh: int, kw: int, oh: int, ow: int, stride, dilation):
    """(N, C, OH, OW, KH, KW) read-only view of the padded input ``xp``: [n, c, y, x, i, j]
    is the pixel that kernel offset (i, j) of output (y, x) meets."""
    n, c = xp.shape[:2]
    s_n, s_c, s_h, s_w = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (n, c, oh, ow, kh, kw),
        (s_n, s_c, s_h * stride[0], s_w * stride[1], s_h * dilation[0], s_w * dilation[1]),
        writeable=False)


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: tuple[int, int] = (1, 1),
    padding: Pad2 = ((0, 0), (0, 0)),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> tuple[np.ndarray, tuple]:
    """Convolve ``x`` with ``w`` (zero padding given per side); returns (out, cache)."""
    n, o, oh, ow = conv2d_output_shape(x.shape, w.shape, None if b is None else b.shape,
                                       stride, padding, dilation, groups)
    _, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(padding))
    cols = _windows(xp, kh, kw, oh, ow, stride, dilation)
    g = groups
    # (N, G, Cg, OH, OW, KH, KW), (G, Og, Cg, KH, KW) -> (N, G, Og, OH, OW)
    out = np.einsum("ngchwij,gocij->ngohw", cols.reshape(n, g, cg, oh, ow, kh, kw),
                    w.reshape(g, o // g, cg, kh, kw), optimize=True).reshape(n, o, oh, ow)
    if b is not None:
        out = out + b.reshape(1, o, 1, 1)
    return out.astype(np.result_type(x, w), copy=False), (x, w, stride, padding, dilation,
                                                           groups, b is not None)


def conv2d_backward(
    dout: np.ndarray, cache: tuple, need: tuple[bool, bool, bool] = (True, True, True)
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients (dx, dw, db) of ``conv2d_forward``; entries not in ``need`` are None.
    dW correlates dout with the same windows; dx adds each kernel offset's share of
    W^T dout back onto the pixels that offset met (col2im, one strided add per offset)."""
    x, w, stride, padding, dilation, g, has_bias = cache
    n, o, oh, ow = dout.shape
    _, cg, kh, kw = w.shape
    og = o // g
    dg = dout.reshape(n, g, og, oh, ow)
    wg = w.reshape(g, og, cg, kh, kw)
    db = dout.sum(axis=(0, 2, 3)) if need[2] and has_bias else None
    dw = dx = None
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(padding))
    if need[1]:
        cols = _windows(xp, kh, kw, oh, ow, stride, dilation).reshape(n, g, cg, oh, ow, kh, kw)
        # (N, G, Og, OH, OW), (N, G, Cg, OH, OW, KH, KW) -> (G, Og, Cg, KH, KW)
        dw = np.einsum("ngohw,ngchwij->gocij", dg, cols, optimize=True).reshape(w.shape)
    if need[0]:
        dxp = np.zeros(xp.shape, np.result_type(dout, w))
        for i in range(kh):
            for j in range(kw):
                r, c = i * dilation[0], j * dilation[1]
                # (N, G, Og, OH, OW), (G, Og, Cg) -> (N, G, Cg, OH, OW)
                share = np.einsum("ngohw,goc->ngchw", dg, wg[..., i, j], optimize=True)
                dxp[:, :, r: r + stride[0] * (oh - 1) + 1: stride[0],
                    c: c + stride[1] * (ow - 1) + 1: stride[1]] += share.reshape(
                        n, g * cg, oh, ow)
        (pt, _), (pl, _) = padding
        dx = dxp[:, :, pt: pt + x.shape[2], pl: pl + x.shape[3]].copy()
    return dx, dw, db
