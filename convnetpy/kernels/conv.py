"""2-D convolution (cross-correlation, as every deep-learning library computes it).

The input is unfolded once into columns (im2col) from a strided view of the zero-padded
input; the convolution is then one matrix product per group. The backward pass reuses the
columns for the weight gradient and folds the column gradient back (col2im) with one strided
add per kernel offset, so no Python loop runs over pixels or batch items.

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
from numpy.lib.stride_tricks import as_strided

from ._shape import ShapeError, check_conv_axis

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
    cg, kh, kw = w.shape[1:]
    (pt, pb), (pl, pr) = padding
    sh, sw = stride
    dh, dw = dilation
    g, og = groups, o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))) if pt or pb or pl or pr else x
    s_n, s_c, s_h, s_w = xp.strides
    win = as_strided(
        xp,
        shape=(n, g, cg, oh, ow, kh, kw),
        strides=(s_n, cg * s_c, s_c, s_h * sh, s_w * sw, s_h * dh, s_w * dw),
        writeable=False,
    )
    # (N,G,Cg,OH,OW,KH,KW) -> columns (G, N*OH*OW, Cg*KH*KW): the one copy of the input
    cols = win.transpose(1, 0, 3, 4, 2, 5, 6).reshape(g, n * oh * ow, cg * kh * kw)
    wg = w.reshape(g, og, cg * kh * kw)
    # (G, N*OH*OW, K) @ (G, K, Og) -> (G, N*OH*OW, Og)
    out = np.matmul(cols, wg.transpose(0, 2, 1))
    out = out.reshape(g, n, oh, ow, og).transpose(1, 0, 4, 2, 3).reshape(n, o, oh, ow)
    if b is not None:
        out += b.reshape(1, o, 1, 1)
    cache = (x.shape, xp.shape, cols, w, stride, padding, dilation, groups, b is not None)
    return np.ascontiguousarray(out), cache


def conv2d_backward(
    dout: np.ndarray, cache: tuple, need: tuple[bool, bool, bool] = (True, True, True)
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients (dx, dw, db) of ``conv2d_forward``; entries not in ``need`` are None."""
    xshape, pshape, cols, w, stride, padding, dilation, g, has_bias = cache
    n, c, h, wd = xshape
    o, cg, kh, kw = w.shape
    og = o // g
    oh, ow = dout.shape[2:]
    sh, sw = stride
    dh, dw_ = dilation
    # (N,O,OH,OW) -> (G, N*OH*OW, Og)
    dog = dout.reshape(n, g, og, oh, ow).transpose(1, 0, 3, 4, 2).reshape(g, n * oh * ow, og)
    dx = dw = db = None
    if need[1]:
        # (G, Og, N*OH*OW) @ (G, N*OH*OW, K) -> (G, Og, K)
        dw = np.matmul(dog.transpose(0, 2, 1), cols).reshape(o, cg, kh, kw)
    if need[2] and has_bias:
        db = dout.sum(axis=(0, 2, 3))
    if need[0]:
        # (G, N*OH*OW, Og) @ (G, Og, K) -> (G, N*OH*OW, K)
        dcols = np.matmul(dog, w.reshape(g, og, cg * kh * kw))
        # -> (N, G, Cg, OH, OW, KH, KW) so that each kernel offset is a strided block
        dcols = dcols.reshape(g, n, oh, ow, cg, kh, kw).transpose(1, 0, 4, 2, 3, 5, 6)
        dxp = np.zeros((n, g, cg) + pshape[2:], dtype=dout.dtype)
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dh, j * dw_
                dxp[:, :, :, r0: r0 + sh * (oh - 1) + 1: sh, c0: c0 + sw * (ow - 1) + 1: sw] += (
                    dcols[..., i, j]
                )
        (pt, _), (pl, _) = padding
        dx = dxp.reshape((n, c) + pshape[2:])[:, :, pt: pt + h, pl: pl + wd]
        dx = np.ascontiguousarray(dx)
    return dx, dw, db
