"""A float32 convolution's part (a range of images) as one compiled call: im2col, our GEMMs,
bias and col2im chained in numba, so that a part takes the GIL only to start (two threads
that meet at the GIL between steps wait for each other). ``pointwise_*_part`` are the 1x1
convolutions, which need no columns: the input is the column matrix.
"""

from __future__ import annotations

import numba
from numba import uint64 as _u

from .gemm import _nn, _nt
from .loops import conv_col2im, conv_im2col

_jit = numba.njit(nogil=True, cache=True, boundscheck=False)


@_jit
def row_stride(p):
    """Elements between rows of p columns (the im2col columns, dout): whole 64-byte lines,
    and never a multiple of 1 KiB, whose rows would all fall into a few cache sets when a
    GEMM reads an NR-wide strip of them in place."""
    ld = (p + 15) // 16 * 16
    return ld + 16 if ld % 256 == 0 else ld


@_jit
def _chunk(lo, hi, chunk, q):
    """Images of the q-th of the equal chunks (at most ``chunk`` images) of lo..hi, as
    ``conv._Geometry.chunks`` cuts them."""
    parts = (hi - lo + chunk - 1) // chunk
    return lo + (hi - lo) * q // parts, lo + (hi - lo) * (q + 1) // parts


@_jit
def conv_forward_part(isa, blk, x, wg, bias, lo, hi, chunk, kh, kw, sh, sw, dh, dw, pt, pl,
                      oh, ow, hp, wp, cols, y, out):
    """Images lo..hi of a float32 convolution, all in compiled code (a part holds the GIL
    only to start): per chunk, im2col into ``cols`` (rows ``row_stride`` apart), W @ columns
    into ``y`` per group (wg is (G, Og, K)), then plus ``bias`` (O,) into ``out``
    (N, O, OH, OW)."""
    g, og, k = wg.shape
    o = g * og
    ohw = oh * ow
    of = out.reshape(-1)
    for q in range((hi - lo + chunk - 1) // chunk):
        n0, n1 = _chunk(lo, hi, chunk, q)
        p = (n1 - n0) * ohw
        ld = row_stride(p)
        conv_im2col(x, n0, n1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, hp, wp, cols, ld)
        for i in range(g):
            _nn(isa, blk, wg[i], cols[i * k * ld:], ld, y[i * og * p:], p, p, False)
        for c in range(o):
            bc = bias[c]
            for n in range(n1 - n0):
                s = c * p + n * ohw
                d = ((n0 + n) * o + c) * ohw
                for t in range(ohw):
                    of[_u(d + t)] = y[_u(s + t)] + bc


@_jit
def conv_backward_part(isa, blk, x, dout, wt, lo, hi, chunk, kh, kw, sh, sw, dh, dw, pt, pl,
                       oh, ow, hp, wp, need_dx, need_dw, cols, d, dwp, dbp, dx):
    """The gradients of images lo..hi of a float32 convolution, in compiled code: per chunk,
    dout (N, O, OH, OW; any strides, a broadcast too) into ``d`` laid out (O, nc*OH*OW)
    (rows, like the columns', ``row_stride`` apart),
    its sums per channel added to ``dbp`` (float64; empty: not wanted); with ``need_dw``
    im2col again and dW += d @ columns^T per group (into the flat ``dwp``, (G, Og, K)); with
    ``need_dx`` the columns' scratch takes W^T @ d (wt is (G, K, Og)), folded (col2im) into
    ``dx``."""
    g, k, og = wt.shape
    o = g * og
    ohw = oh * ow
    for q in range((hi - lo + chunk - 1) // chunk):
        n0, n1 = _chunk(lo, hi, chunk, q)
        p = (n1 - n0) * ohw
        ld = row_stride(p)
        for c in range(o):
            total = 0.0
            for n in range(n1 - n0):
                r = c * ld + n * ohw
                for a in range(oh):
                    for b in range(ow):
                        v = dout[_u(n0 + n), _u(c), _u(a), _u(b)]
                        d[_u(r + a * ow + b)] = v
                        total += v
            if dbp.size:
                dbp[c] += total
        if need_dw:
            conv_im2col(x, n0, n1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, hp, wp, cols, ld)
            for i in range(g):
                _nt(isa, blk, d[i * og * ld:], ld, og, cols[i * k * ld:], ld, k, p,
                    dwp[i * og * k:], k, True)
        if need_dx:
            for i in range(g):
                _nn(isa, blk, wt[i], d[i * og * ld:], ld, cols[i * k * ld:], ld, p, False)
            conv_col2im(cols, n0, n1 - n0, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, hp, wp, dx,
                        ld)


@_jit
def pointwise_forward_part(isa, blk, x, wg, bias, lo, hi, out):
    """Images lo..hi of a float32 1x1 convolution (stride 1, no padding): the input itself is
    the column matrix, W @ x[i] per image and group (wg is (G, Og, Cg)), into ``out``
    (N, O, H, W), plus ``bias`` (O,; empty: none)."""
    g, og, cg = wg.shape
    c, hw = x.shape[1], x.shape[2] * x.shape[3]
    o = g * og
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for i in range(lo, hi):
        for j in range(g):
            _nn(isa, blk, wg[j], xf[(i * c + j * cg) * hw:], hw, of[(i * o + j * og) * hw:],
                hw, hw, False)
        if bias.size:
            for ch in range(o):
                base = (i * o + ch) * hw
                for t in range(hw):
                    of[_u(base + t)] += bias[ch]


@_jit
def pointwise_backward_part(isa, blk, x, dout, wt, lo, hi, need_dx, need_dw, d, dwp, dx):
    """The gradients of images lo..hi of a float32 1x1 convolution: each image's dout
    (O, H, W; any strides, a broadcast too) copied into ``d`` (O*H*W, in cache), then
    dW += d @ x[i]^T per group (into the flat ``dwp``, (G, Og, Cg)) and dx[i] = W^T @ d
    (wt is (G, Cg, Og))."""
    g, cg, og = wt.shape
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    hw = h * w
    o = g * og
    xf = x.reshape(-1)
    dxf = dx.reshape(-1)
    for i in range(lo, hi):
        for ch in range(o):
            for a in range(h):
                for b in range(w):
                    d[_u((ch * h + a) * w + b)] = dout[_u(i), _u(ch), _u(a), _u(b)]
        for j in range(g):
            if need_dw:
                _nt(isa, blk, d[j * og * hw:], hw, og, xf[(i * c + j * cg) * hw:], hw, cg, hw,
                    dwp[j * og * cg:], cg, True)
            if need_dx:
                _nn(isa, blk, wt[j], d[j * og * hw:], hw, dxf[(i * c + j * cg) * hw:], hw, hw,
                    False)
