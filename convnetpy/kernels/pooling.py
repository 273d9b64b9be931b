"""Max, average, adaptive and global pooling over the two spatial axes.

Fixed-window pools run one strided slice per kernel offset (KH*KW slices), never a loop over
pixels. Max pooling sends the whole gradient to the first maximum of each window in row-major
window order, as PyTorch does; NaN propagates.

Shape:
    (N, C, H, W) -> (N, C, H_out, W_out),
    H_out = floor((H + 2*P - D*(K-1) - 1) / S) + 1   (ceil instead of floor with ceil_mode,
    dropping a last window that would start in the right padding)

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> max_pool2d_forward(x, (2, 2), (2, 2))[0][0, 0].tolist()
[[5.0, 7.0], [13.0, 15.0]]
>>> avg_pool2d_forward(x, (2, 2), (2, 2))[0][0, 0].tolist()
[[2.5, 4.5], [10.5, 12.5]]
"""

from __future__ import annotations

import numpy as np

from ..shape import ShapeError, adaptive_bins, check_pool_axis


def _check4d(op: str, x: np.ndarray) -> None:
    if x.ndim != 4:
        raise ShapeError(op, f"expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")


def pool2d_output_shape(
    op: str, xshape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0), dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
) -> tuple[int, int, int, int]:
    """Validate a fixed-window pooling and return its output shape (N, C, H_out, W_out).

    >>> pool2d_output_shape("max_pool2d", (1, 64, 224, 224), (2, 2), (2, 2))
    (1, 64, 112, 112)
    """
    if len(xshape) != 4:
        raise ShapeError(op, f"expected a 4-D input (N, C, H, W), got shape {tuple(xshape)}")
    oh = check_pool_axis(op, "height", xshape[2], kernel[0], stride[0], padding[0],
                         dilation[0], ceil_mode)
    ow = check_pool_axis(op, "width", xshape[3], kernel[1], stride[1], padding[1],
                         dilation[1], ceil_mode)
    return xshape[0], xshape[1], oh, ow


def _window_geometry(op, x, kernel, stride, padding, dilation, ceil_mode):
    """Output size and the padded extent the windows need (ceil_mode may need extra)."""
    h, w = x.shape[2:]
    _, _, oh, ow = pool2d_output_shape(op, x.shape, kernel, stride, padding, dilation,
                                       ceil_mode)
    need_h = (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
    need_w = (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    # pad before by P; pad after enough for the last window (P, or more in ceil_mode)
    after_h = max(need_h - h - padding[0], 0)
    after_w = max(need_w - w - padding[1], 0)
    return oh, ow, ((padding[0], after_h), (padding[1], after_w))


def _offset_slice(i, j, oh, ow, stride, dilation):
    r0, c0 = i * dilation[0], j * dilation[1]
    return (..., slice(r0, r0 + stride[0] * (oh - 1) + 1, stride[0]),
            slice(c0, c0 + stride[1] * (ow - 1) + 1, stride[1]))


def max_pool2d_forward(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
) -> tuple[np.ndarray, tuple]:
    """Max pooling with -inf padding; returns (out, cache). The forward pass is a running
    maximum of KH*KW strided slices; which element won is recovered only when needed
    (backward, or ``max_pool2d_indices`` for return_indices)."""
    n, c, h, w = x.shape
    oh, ow, pads = _window_geometry("max_pool2d", x, kernel, stride, padding, dilation,
                                    ceil_mode)
    if any(p for pp in pads for p in pp):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError("max_pool2d with padding needs a floating-point input")
        xp = np.pad(x, ((0, 0), (0, 0)) + pads, constant_values=-np.inf)
    else:
        xp = x
    out = None
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            s = xp[_offset_slice(i, j, oh, ow, stride, dilation)]
            out = s.copy() if out is None else np.maximum(out, s, out=out)  # NaN propagates
    return out, (xp, out, x.shape, kernel, stride, padding, dilation)


def _winners(cache):
    """For each kernel offset k, a mask of the windows whose maximum it holds: the first
    maximum in row-major window order, or for a NaN result the last NaN, as PyTorch."""
    xp, out, _, kernel, stride, _, dilation = cache
    oh, ow = out.shape[2:]
    free = np.ones(out.shape, dtype=bool)
    nan = out != out
    offsets = [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]
    masks = {}
    for i, j in offsets:
        hit = (xp[_offset_slice(i, j, oh, ow, stride, dilation)] == out) & free
        free &= ~hit
        masks[i, j] = hit
    if nan.any():
        for i, j in reversed(offsets):
            s = xp[_offset_slice(i, j, oh, ow, stride, dilation)]
            hit = (s != s) & nan
            masks[i, j] |= hit
            nan &= ~hit
    return masks


def max_pool2d_indices(cache) -> np.ndarray:
    """The flat ``h * W + w`` index of each maximum in the unpadded input (return_indices)."""
    _, out, xshape, kernel, stride, padding, dilation = cache
    oh, ow = out.shape[2:]
    w = xshape[3]
    idx = np.zeros(out.shape, dtype=np.int64)
    base_r = np.arange(oh).reshape(oh, 1) * stride[0] - padding[0]
    base_c = np.arange(ow).reshape(1, ow) * stride[1] - padding[1]
    for (i, j), hit in _winners(cache).items():
        np.copyto(idx, (base_r + i * dilation[0]) * w + base_c + j * dilation[1], where=hit)
    return idx


def max_pool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient of ``max_pool2d_forward``: each window's gradient goes to its maximum."""
    xp, out, xshape, kernel, stride, padding, dilation = cache
    oh, ow = dout.shape[2:]
    span = [dilation[a] * (kernel[a] - 1) + 1 for a in range(2)]
    # windows that tile the input exactly (e.g. 2x2, stride 2, even size): each pixel has one
    # window, so each offset's gradient is written straight into its strided slice
    tiles = all(stride[a] == span[a] == kernel[a] and (out.shape[2 + a] - 1) * stride[a]
                + span[a] == xp.shape[2 + a] for a in range(2))
    dxp = np.empty(xp.shape, dout.dtype) if tiles else np.zeros(xp.shape, dout.dtype)
    for (i, j), hit in _winners(cache).items():
        sl = _offset_slice(i, j, oh, ow, stride, dilation)
        if tiles:
            np.multiply(dout, hit, out=dxp[sl])
        else:
            dxp[sl] += dout * hit
    if not any(padding) and dxp.shape == tuple(xshape):
        return dxp
    h, w = xshape[2:]
    return np.ascontiguousarray(dxp[:, :, padding[0]: padding[0] + h, padding[1]: padding[1] + w])


def _avg_divisor(size, out, kernel, stride, padding, count_include_pad):
    """Per-output-position window length along one axis, as PyTorch counts it."""
    start = np.arange(out) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    full = end - start
    clipped = np.minimum(end, size) - np.maximum(start, 0)
    return full if count_include_pad else clipped


def avg_pool2d_forward(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> tuple[np.ndarray, tuple]:
    """Average pooling with zero padding; returns (out, cache)."""
    if divisor_override is not None and divisor_override == 0:
        raise ValueError("divisor_override must be non-zero")
    h, w = x.shape[2:]
    oh, ow, pads = _window_geometry("avg_pool2d", x, kernel, stride, padding, (1, 1),
                                    ceil_mode)
    xp = np.pad(x, ((0, 0), (0, 0)) + pads) if any(p for pp in pads for p in pp) else x
    acc = np.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            acc += xp[_offset_slice(i, j, oh, ow, stride, (1, 1))]
    if divisor_override is not None:
        div = np.full((oh, ow), divisor_override, dtype=x.dtype)
    else:
        dh = _avg_divisor(h, oh, kernel[0], stride[0], padding[0], count_include_pad)
        dw = _avg_divisor(w, ow, kernel[1], stride[1], padding[1], count_include_pad)
        div = np.outer(dh, dw).astype(x.dtype)
    out = acc / div
    return out, (x.shape, xp.shape, kernel, stride, padding, div)


def avg_pool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient of ``avg_pool2d_forward``."""
    xshape, pshape, kernel, stride, padding, div = cache
    oh, ow = dout.shape[2:]
    g = dout / div
    dxp = np.zeros(pshape, dtype=dout.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            dxp[_offset_slice(i, j, oh, ow, stride, (1, 1))] += g
    h, w = xshape[2:]
    return np.ascontiguousarray(dxp[:, :, padding[0]: padding[0] + h, padding[1]: padding[1] + w])


def adaptive_output_shape(op: str, xshape: tuple[int, ...],
                          out: tuple[int, int]) -> tuple[int, int, int, int]:
    """Validate an adaptive pooling and return its output shape (N, C, OH, OW)."""
    if len(xshape) != 4:
        raise ShapeError(op, f"expected a 4-D input (N, C, H, W), got shape {tuple(xshape)}")
    if min(out) < 1:
        raise ValueError(f"{op}: output_size must be positive, got {out}")
    if min(xshape[2:]) < 1:
        raise ShapeError(op, f"input has an empty spatial size: {tuple(xshape)}")
    return xshape[0], xshape[1], out[0], out[1]


def _bin_matrix(size: int, out: int, dtype) -> np.ndarray:
    """(out, size) matrix whose row i averages PyTorch's bin i."""
    starts, ends = adaptive_bins(size, out)
    idx = np.arange(size)
    mask = (idx >= np.array(starts)[:, None]) & (idx < np.array(ends)[:, None])
    return (mask / mask.sum(axis=1, keepdims=True)).astype(dtype)


def adaptive_avg_pool2d_forward(x: np.ndarray, output_size: tuple[int, int]):
    """Adaptive average pooling with PyTorch's bins (overlapping when sizes do not divide).

    Each bin average is a row of a (out, in) averaging matrix per axis, so the whole pool is
    two small matrix products: (OH, H) x (N, C, H, W) x (W, OW) -> (N, C, OH, OW).
    """
    adaptive_output_shape("adaptive_avg_pool2d", x.shape, output_size)
    ah = _bin_matrix(x.shape[2], output_size[0], x.dtype)
    aw = _bin_matrix(x.shape[3], output_size[1], x.dtype)
    out = np.matmul(np.matmul(ah, x), aw.T)
    return out, (ah, aw)


def adaptive_avg_pool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    ah, aw = cache
    return np.matmul(np.matmul(ah.T, dout), aw)


def adaptive_max_pool2d_forward(x: np.ndarray, output_size: tuple[int, int]):
    """Adaptive max pooling; returns (out, cache) with ``cache[0]`` the flat indices.

    Bins of unequal length are gathered into a common (OH, KH_max, OW, KW_max) grid whose
    unused cells hold -inf, then reduced with one argmax (first maximum in row-major order).
    """
    adaptive_output_shape("adaptive_max_pool2d", x.shape, output_size)
    n, c, h, w = x.shape
    grids = []
    for size, out in ((h, output_size[0]), (w, output_size[1])):
        starts, ends = (np.array(v) for v in adaptive_bins(size, out))
        span = int((ends - starts).max())
        idx = starts[:, None] + np.arange(span)
        grids.append((np.minimum(idx, size - 1), idx < ends[:, None], span))
    (ri, rv, kh), (ci, cv, kw) = grids
    oh, ow = output_size
    # (N, C, OH, KH, OW, KW) -> (N, C, OH, OW, KH*KW)
    g = x[:, :, ri[:, :, None, None], ci[None, None, :, :]]
    valid = rv[:, :, None, None] & cv[None, None, :, :]
    if np.issubdtype(x.dtype, np.floating):
        g = np.where(valid, g, -np.inf)
    else:
        g = np.where(valid, g, np.iinfo(x.dtype).min)
    g = g.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, kh * kw)
    arg = np.argmax(g, axis=-1)
    out = np.take_along_axis(g, arg[..., None], axis=-1)[..., 0].astype(x.dtype, copy=False)
    ki, kj = np.divmod(arg, kw)
    rows = ri[np.arange(oh)[:, None], ki]
    cols = ci[np.arange(ow)[None, :], kj]
    indices = rows * w + cols
    return out, (indices, x.shape)


def adaptive_max_pool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    indices, (n, c, h, w) = cache
    # scatter-add into the flat (N*C, H*W) plane; bins may overlap so indices may repeat
    flat = indices.reshape(n * c, -1) + (np.arange(n * c) * h * w)[:, None]
    dx = np.bincount(flat.ravel(), weights=dout.reshape(-1), minlength=n * c * h * w)
    return dx.astype(dout.dtype, copy=False).reshape(n, c, h, w)


def global_avg_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Mean over H and W, keeping them as 1x1: (N, C, H, W) -> (N, C, 1, 1)."""
    _check4d("global_avg_pool2d", x)
    return x.mean(axis=(2, 3), keepdims=True), x.shape


def global_avg_pool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    n, c, h, w = cache
    return np.broadcast_to(dout / (h * w), cache).copy()
