"""Max pooling on the compiled loops, the planes split over the cores: the backward pass in
one pass per window instead of ~20 whole-array NumPy passes, and the common 2x2 stride-2
pooling of even-sized float planes both ways in vectorised loops. Every other case is the
reference's (kernels/pooling.py), whose cache both passes share.
"""

from __future__ import annotations

import numpy as np

from ..kernels import pooling as reference
from .memory import empty
from .select import compiled as loops
from .threads import parallel_for


def max_pool2d_forward(x, kernel, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    """``kernels.pooling.max_pool2d_forward``, the 2x2 stride-2 case compiled."""
    if not (tuple(kernel) == tuple(stride) == (2, 2) and not any(padding)
            and tuple(dilation) == (1, 1) and x.ndim == 4 and x.shape[2] % 2 == 0
            and x.shape[3] % 2 == 0 and x.dtype in (np.float32, np.float64)):
        return reference.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = empty((n, c, h // 2, w // 2), x.dtype)
    lp = loops()
    parallel_for(lambda lo, hi: lp.maxpool2x2_forward(x, lo, hi, out), n * c, h * w)
    return out, (x, out, x.shape, (2, 2), (2, 2), (0, 0), (1, 1))


def max_pool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Gradient of ``max_pool2d_forward``: each window's gradient goes to its first
    maximum in row-major window order (for a NaN result, its last NaN), as PyTorch."""
    xp, out, xshape, kernel, stride, padding, dilation = cache
    if not (dout.dtype == xp.dtype and xp.dtype in (np.float32, np.float64)):
        return reference.max_pool2d_backward(dout, cache)
    span = [dilation[a] * (kernel[a] - 1) + 1 for a in range(2)]
    # windows that tile the input exactly (e.g. 2x2, stride 2, even size): each pixel has one
    # window, so each window is written whole and nothing needs zeroing first
    tiles = all(stride[a] == span[a] == kernel[a] and (out.shape[2 + a] - 1) * stride[a]
                + span[a] == xp.shape[2 + a] for a in range(2))
    dxp = empty(xp.shape, dout.dtype)
    planes = xp.shape[0] * xp.shape[1]
    xc, oc = np.ascontiguousarray(xp), np.ascontiguousarray(out)  # views of x: a copy
    lp = loops()
    if tiles and tuple(kernel) == (2, 2):  # the common pooling, vectorised
        parallel_for(lambda lo, hi: lp.maxpool2x2_backward(xc, oc, dout, lo, hi, dxp), planes,
                     xp[0, 0].size)
    else:
        parallel_for(lambda lo, hi: lp.maxpool_backward(
            xc, oc, dout, *kernel, *stride, *dilation, tiles, lo, hi, dxp), planes,
            xp[0, 0].size)
    if not any(padding) and dxp.shape == tuple(xshape):
        return dxp
    h, w = xshape[2:]
    return np.ascontiguousarray(dxp[:, :, padding[0]: padding[0] + h, padding[1]: padding[1] + w])
