"""2-D convolution (cross-correlation, as every deep-learning library computes it).

The input is unfolded into per-image columns (im2col) with one strided copy per kernel
offset; the convolution is then a batched matrix product per group. The backward pass
reuses the columns for the weight gradient and folds the column gradient back (col2im) with
one strided add per kernel offset, so no Python loop runs over pixels or batch items.

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

from ._shape import ShapeError, check_conv_axis

Pad2 = tuple[tuple[int, int], tuple[int, int]]
SMALL = 16  # output maps of at most this many pixels use one large GEMM (see forward)


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


def _offset_view(xp: np.ndarray, i: int, j: int, oh: int, ow: int, stride, dilation):
    """The input pixels that kernel offset (i, j) meets, one per output position:
    (N, C, OH, OW), a strided view of the padded input."""
    r0, c0 = i * dilation[0], j * dilation[1]
    return xp[:, :, r0: r0 + stride[0] * (oh - 1) + 1: stride[0],
              c0: c0 + stride[1] * (ow - 1) + 1: stride[1]]


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: tuple[int, int] = (1, 1),
    padding: Pad2 = ((0, 0), (0, 0)),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> tuple[np.ndarray, tuple]:
    """Convolve ``x`` with ``w`` (zero padding given per side); returns (out, cache).

    Columns are laid out per image as (N, C*KH*KW, OH*OW), filled with one strided copy per
    kernel offset, so the product W @ cols writes (N, C_out, OH*OW), already NCHW, and the
    backward pass needs no transposes. A 1x1 convolution with stride 1 and no padding uses
    the input itself as its columns.
    """
    n, o, oh, ow = conv2d_output_shape(x.shape, w.shape, None if b is None else b.shape,
                                       stride, padding, dilation, groups)
    c, (cg, kh, kw) = x.shape[1], w.shape[1:]
    (pt, pb), (pl, pr) = padding
    g, og = groups, o // groups
    if (kh, kw) == (1, 1) and stride == (1, 1) and not (pt or pb or pl or pr):
        cols = np.ascontiguousarray(x).reshape(n, g, cg, oh * ow)
    else:
        xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))) if pt or pb or pl or pr else x
        cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = _offset_view(xp, i, j, oh, ow, stride, dilation)
        cols = cols.reshape(n, g, cg * kh * kw, oh * ow)
    wg = w.reshape(g, og, cg * kh * kw)
    if oh * ow <= SMALL:
        # small maps: N tiny per-image GEMMs cost more than one copy of the columns into
        # (G, K, N*OH*OW) and a single GEMM; the output comes back as (G, Og, N, OH*OW)
        cols = np.ascontiguousarray(cols.transpose(1, 2, 0, 3)).reshape(g, -1, n * oh * ow)
        out = np.matmul(wg, cols).reshape(o, n, oh, ow).transpose(1, 0, 2, 3)
        out = np.ascontiguousarray(out)
    else:
        # (G, Og, Cg*KH*KW) @ (N, G, Cg*KH*KW, OH*OW) -> (N, G, Og, OH*OW)
        out = np.matmul(wg, cols).reshape(n, o, oh, ow)
    if b is not None:
        out += b.reshape(1, o, 1, 1)
    cache = (x.shape, cols, w, stride, padding, dilation, groups, b is not None)
    return out, cache


def conv2d_backward(
    dout: np.ndarray, cache: tuple, need: tuple[bool, bool, bool] = (True, True, True)
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients (dx, dw, db) of ``conv2d_forward``; entries not in ``need`` are None."""
    xshape, cols, w, stride, padding, dilation, g, has_bias = cache
    n, c, h, wd = xshape
    o, cg, kh, kw = w.shape
    og = o // g
    oh, ow = dout.shape[2:]
    small = oh * ow <= SMALL  # the forward pass's single-GEMM layout
    if small:
        d = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)).reshape(g, og, n * oh * ow)
    else:
        d = np.ascontiguousarray(dout).reshape(n, g, og, oh * ow)
    dx = dw = db = None
    if need[1]:
        if small:  # (G, Og, N*OH*OW) @ (G, N*OH*OW, K)
            dw = np.matmul(d, cols.transpose(0, 2, 1)).reshape(o, cg, kh, kw)
        else:  # per image (G, Og, OH*OW) @ (G, OH*OW, K), summed over the batch
            dw = np.matmul(d, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(o, cg, kh, kw)
    if need[2] and has_bias:
        db = d.sum(axis=2 if small else (0, 3)).reshape(o)
    if need[0]:
        # W^T made contiguous (a tiny copy): with a transposed view NumPy's batched matmul
        # can leave BLAS for a loop ~10x slower (seen: 37 ms instead of 4 on 16x72)
        wt = np.ascontiguousarray(w.reshape(g, og, cg * kh * kw).transpose(0, 2, 1))
        dcols = np.matmul(wt, d)  # (N, G, K, OH*OW), or (G, K, N*OH*OW) when small
        (pt, pb), (pl, pr) = padding
        if small:  # view it as (N, C, KH, KW, OH, OW) without copying
            dcols = dcols.reshape(c, kh, kw, n, oh, ow).transpose(3, 0, 1, 2, 4, 5)
        if (kh, kw) == (1, 1) and stride == (1, 1) and not (pt or pb or pl or pr):
            return np.ascontiguousarray(dcols.reshape(n, c, h, wd)), dw, db
        dcols = dcols.reshape(n, c, kh, kw, oh, ow)
        dxp = np.zeros((n, c, h + pt + pb, wd + pl + pr), dtype=dout.dtype)
        for i in range(kh):  # col2im: one strided add per kernel offset
            for j in range(kw):
                _offset_view(dxp, i, j, oh, ow, stride, dilation)[...] += dcols[:, :, i, j]
        dx = dxp[:, :, pt: pt + h, pl: pl + wd]
        if pt or pb or pl or pr:
            dx = np.ascontiguousarray(dx)
    return dx, dw, db
