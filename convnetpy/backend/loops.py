"""Loops compiled by numba for the passes NumPy makes badly; imported only through
``select`` (the numpy path runs without them).

Every kernel that calls one gives the same numbers as its reference (convnetpy/kernels):
the tests run each kernel on every path. Conventions:
- ``nogil=True``: a caller may split work over threads (``threads``); nothing here starts
  threads of its own (numba's thread pools cannot be entered from two threads at once).
- array indices are unsigned (``_u``): with signed ones numba adds a negative-index check to
  every access, which keeps LLVM from vectorising the copies.
- arrays arrive C-contiguous; flat views are taken with ``reshape(-1)`` (``ravel`` copies).
"""

from __future__ import annotations

import math
import platform

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba import uint64 as _u
from numba.core import cgutils
from numba.extending import intrinsic

_jit = numba.njit(nogil=True, cache=True, boundscheck=False)


@_jit
def conv_im2col(x, n0, n1, kh, kw, sh, sw, dh, dw, pt, pl, oh, owx, hp, wp, cols, ld):
    """Columns (C, KH, KW, n1 - n0, OH, OWX) of images n0..n1 of ``x`` (N, C, H, W), as
    ``conv._Geometry.im2col`` lays them out, into the flat ``cols``, each row of
    (n1 - n0) * OH * OWX columns ``ld`` elements after the one before. Each image plane is
    zero-padded into a small buffer (HP, WP) that stays in cache, then every kernel offset's
    columns are copied from it row by row (the compiled path never merges rows: OWX = OW)."""
    _, c_in, h, w = x.shape
    xf = x.reshape(-1)
    plane = np.zeros(hp * wp, x.dtype)  # the border stays zero: only the image is written
    p = oh * owx
    for n in range(n0, n1):
        for c in range(c_in):
            src = (n * c_in + c) * h * w
            for y in range(h):
                d = (y + pt) * wp + pl
                s = src + y * w
                for t in range(w):
                    plane[_u(d + t)] = xf[_u(s + t)]
            for i in range(kh):
                for j in range(kw):
                    q = ((c * kh + i) * kw + j) * ld + (n - n0) * p
                    if sw == 1:  # contiguous rows: a loop LLVM vectorises
                        for oy in range(oh):
                            b = (oy * sh + i * dh) * wp + j * dw
                            r = q + oy * owx
                            for ox in range(owx):
                                cols[_u(r + ox)] = plane[_u(b + ox)]
                    else:
                        for oy in range(oh):
                            b = (oy * sh + i * dh) * wp + j * dw
                            r = q + oy * owx
                            for ox in range(owx):
                                cols[_u(r + ox)] = plane[_u(b + ox * sw)]


@_jit
def conv_col2im(dcols, n0, nc, kh, kw, sh, sw, dh, dw, pt, pl, oh, owx, hp, wp, dx, ld):
    """The adjoint of ``conv_im2col``: add the column gradients ``dcols`` (flat, laid out
    (C, KH, KW, nc, OH, OWX), rows ``ld`` apart) back onto their pixels and write images
    n0..n0+nc of ``dx`` (N, C, H, W). Each plane is summed in a small padded buffer in
    cache, then cropped."""
    _, c_in, h, w = dx.shape
    dxf = dx.reshape(-1)
    plane = np.empty(hp * wp, dx.dtype)
    p = oh * owx
    for n in range(n0, n0 + nc):
        for c in range(c_in):
            plane[:] = 0
            for i in range(kh):
                for j in range(kw):
                    q = ((c * kh + i) * kw + j) * ld + (n - n0) * p
                    if sw == 1:
                        for oy in range(oh):
                            b = (oy * sh + i * dh) * wp + j * dw
                            r = q + oy * owx
                            for ox in range(owx):
                                plane[_u(b + ox)] += dcols[_u(r + ox)]
                    else:
                        for oy in range(oh):
                            b = (oy * sh + i * dh) * wp + j * dw
                            r = q + oy * owx
                            for ox in range(owx):
                                plane[_u(b + ox * sw)] += dcols[_u(r + ox)]
            dst = (n * c_in + c) * h * w
            for y in range(h):
                s = (y + pt) * wp + pl
                d = dst + y * w
                for t in range(w):
                    dxf[_u(d + t)] = plane[_u(s + t)]


@_jit
def maxpool_backward(xp, out, dout, kh, kw, sh, sw, dh, dw, tiles, p0, p1, dxp):
    """The gradient of a max pool for planes p0..p1 (flat n*C + c) into ``dxp`` (shaped like
    the padded input ``xp``): each window's gradient goes to its first maximum in row-major
    window order, or for a NaN result to its last NaN (as ``pooling._winners``). With
    ``tiles`` (windows that cover every pixel once) each window is written whole, else the
    plane is zeroed and the gradients added. ``dout`` may be a broadcast view."""
    _, c_in, hp, wp = xp.shape
    oh, ow = out.shape[2], out.shape[3]
    xf = xp.reshape(-1)
    of = out.reshape(-1)
    gf = dxp.reshape(-1)
    for p in range(p0, p1):
        n, c = divmod(p, c_in)
        xb = p * hp * wp
        ob = p * oh * ow
        if not tiles:
            for t in range(hp * wp):
                gf[_u(xb + t)] = 0
        for oy in range(oh):
            for ox in range(ow):
                m = of[_u(ob + oy * ow + ox)]
                g = dout[n, c, oy, ox]
                corner = xb + oy * sh * wp + ox * sw
                win = -1
                for i in range(kh):
                    for j in range(kw):
                        at = corner + i * dh * wp + j * dw
                        v = xf[_u(at)]
                        if m != m:  # a NaN result: the last NaN
                            if v != v:
                                win = at
                        elif win < 0 and v == m:
                            win = at
                        if tiles:
                            gf[_u(at)] = 0
                if win >= 0:
                    if tiles:
                        gf[_u(win)] = g
                    else:
                        gf[_u(win)] += g


@_jit
def maxpool2x2_forward(x, p0, p1, out):
    """2x2 max pooling with stride 2 of planes p0..p1 (flat n*C + c) of ``x`` (N, C, H, W;
    H and W even) into ``out``; a NaN in a window makes its maximum NaN, as np.maximum
    does. Branch-free, so LLVM vectorises it along each output row."""
    h, w = x.shape[2], x.shape[3]
    oh, ow = h // 2, w // 2
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for p in range(p0, p1):
        for oy in range(oh):
            top = p * h * w + 2 * oy * w
            row = p * oh * ow + oy * ow
            for ox in range(ow):
                m = xf[_u(top + 2 * ox)]
                for v in (xf[_u(top + 2 * ox + 1)], xf[_u(top + w + 2 * ox)],
                          xf[_u(top + w + 2 * ox + 1)]):
                    m = m if (m >= v or m != m) else v
                of[_u(row + ox)] = m


@_jit
def maxpool2x2_backward(xp, out, dout, p0, p1, dxp):
    """``maxpool_backward`` for 2x2 windows with stride 2 that tile ``xp`` exactly (the
    common pooling), branch-free so that LLVM vectorises it along each output row: the
    first of the four equal to the maximum wins, or for a NaN result the last NaN."""
    _, c_in, hp, wp = xp.shape
    oh, ow = out.shape[2], out.shape[3]
    xf = xp.reshape(-1)
    of = out.reshape(-1)
    gf = dxp.reshape(-1)
    for p in range(p0, p1):
        n, c = divmod(p, c_in)
        for oy in range(oh):
            top = p * hp * wp + 2 * oy * wp
            row = p * oh * ow + oy * ow
            for ox in range(ow):
                m = of[_u(row + ox)]
                g = dout[n, c, oy, ox]
                a = xf[_u(top + 2 * ox)]
                b = xf[_u(top + 2 * ox + 1)]
                d = xf[_u(top + wp + 2 * ox)]
                e = xf[_u(top + wp + 2 * ox + 1)]
                if m != m:  # a NaN result: the last NaN
                    we, wd = e != e, d != d
                    wd = wd and not we
                    wb = b != b and not (we or wd)
                    wa = not (we or wd or wb)
                else:
                    wa = a == m
                    wb = b == m and not wa
                    wd = d == m and not (wa or wb)
                    we = not (wa or wb or wd)
                z = g * 0
                gf[_u(top + 2 * ox)] = g if wa else z
                gf[_u(top + 2 * ox + 1)] = g if wb else z
                gf[_u(top + wp + 2 * ox)] = g if wd else z
                gf[_u(top + wp + 2 * ox + 1)] = g if we else z


# Reductions may reorder their additions (fastmath "reassoc" only: NaN and infinities keep
# their meaning) so that LLVM can vectorise them; they accumulate in float64, and the order
# is fixed by the compiled code, so a result never depends on timing.
_jit_sum = numba.njit(nogil=True, cache=True, boundscheck=False, fastmath={"reassoc"})


@_jit
def relu_forward(x, out):
    """out = max(x, 0) over flat arrays; NaN stays NaN, as in PyTorch."""
    for i in range(x.size):
        v = x[_u(i)]
        out[_u(i)] = 0 if v <= 0 else v


@_jit
def relu_backward(dout, out, dx):
    """dx = dout * (out > 0) over flat arrays (as the NumPy code: NaN * 0 is NaN)."""
    for i in range(dx.size):
        d = dout[_u(i)]
        dx[_u(i)] = d if out[_u(i)] > 0 else d * 0


@_jit
def gelu_forward(x, out):
    """out = x * Phi(x) = x * 0.5 * (1 + erf(x / sqrt(2))) over flat arrays."""
    for i in range(x.size):
        v = x[_u(i)]
        out[_u(i)] = v * 0.5 * (1.0 + math.erf(v * 0.7071067811865476))


@_jit
def gelu_backward(dout, x, dx):
    """dx = dout * (Phi(x) + x * phi(x)) over flat arrays."""
    for i in range(dx.size):
        v = x[_u(i)]
        cdf = 0.5 * (1.0 + math.erf(v * 0.7071067811865476))
        dx[_u(i)] = dout[_u(i)] * (cdf + v * math.exp(-0.5 * v * v) * 0.3989422804014327)


# float32 GELU: the C library's erf and exp are calls LLVM cannot vectorise, so float32
# arrays get branch-free versions of both, in float32 arithmetic, that it can: erf as
# Eigen's rational approximation on [-4, 4] (erf is +-1 to float32 precision outside), exp
# as 2^k times a polynomial on [-ln2/2, ln2/2] (Cephes' expf). The error bound is asserted
# in tests/test_kernels_other.py; float64 keeps the exact calls above. The numpy error
# model drops the division's zero check (q is never 0), which would otherwise block the
# vectoriser; constants are float32 so that no step widens to float64.
_jit_f32 = numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
_inline_f32 = numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy",
                         inline="always")
_f4 = np.float32
_ERF_P = tuple(_f4(c) for c in (-2.72614225801306e-10, 2.77068142495902e-08,
                                -2.10102402082508e-06, -5.69250639462346e-05,
                                -7.34990630326855e-04, -2.95459980854025e-03,
                                -1.60960333262415e-02))  # odd numerator, x^13 first
_ERF_Q = tuple(_f4(c) for c in (-1.45660718464996e-05, -2.13374055278905e-04,
                                -1.68282697438203e-03, -7.37332916720468e-03,
                                -1.42647390514189e-02))  # even denominator, x^8 first
_EXP_P = tuple(_f4(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = _ERF_P
_Q0, _Q1, _Q2, _Q3, _Q4 = _ERF_Q
_E0, _E1, _E2, _E3, _E4, _E5 = _EXP_P
_F_ZERO, _F_HALF, _F_ONE, _F_FOUR = _f4(0.0), _f4(0.5), _f4(1.0), _f4(4.0)
_F_RSQRT2, _F_RSQRT2PI = _f4(0.7071067811865476), _f4(0.3989422804014327)
_F_LOG2E, _F_LN2_HI, _F_LN2_LO = _f4(1.4426950408889634), _f4(0.693359375), _f4(-2.12194440e-4)
_F_EXP_MIN = _f4(-87.0)      # exp of less is below float32's smallest normal number
_F_ROUND = _f4(12582912.0)   # 1.5 * 2^23: adding and subtracting it rounds to an integer


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 ``bits``."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@_inline_f32
def _erf_f32(v):
    x = v if v < _F_FOUR else _F_FOUR
    x = x if x > -_F_FOUR else -_F_FOUR
    x2 = x * x
    p = ((((((_P0 * x2 + _P1) * x2 + _P2) * x2 + _P3) * x2 + _P4) * x2 + _P5) * x2 + _P6)
    q = ((((_Q0 * x2 + _Q1) * x2 + _Q2) * x2 + _Q3) * x2 + _Q4)
    return x * p / q


@_inline_f32
def _exp_nonpositive_f32(y):
    """exp(y) for y <= 0, 0 below float32's smallest normal number and for -inf (so that
    x * phi(x) is NaN at infinite x, as in the reference)."""
    z = y if y > _F_EXP_MIN else _F_EXP_MIN
    k = (z * _F_LOG2E + _F_ROUND) - _F_ROUND
    r = (z - k * _F_LN2_HI) - k * _F_LN2_LO
    p = ((((_E0 * r + _E1) * r + _E2) * r + _E3) * r + _E4) * r + _E5
    scale = _float32_from_bits((np.int32(k) + np.int32(127)) << np.int32(23))
    e = ((p * r * r + r) + _F_ONE) * scale
    return e if y >= _F_EXP_MIN else (_F_ZERO if y < _F_EXP_MIN else y)  # y NaN: NaN


@_jit_f32
def gelu_forward_f32(x, out):
    """``gelu_forward`` for float32 arrays, vectorised (see above)."""
    for i in range(x.size):
        v = x[_u(i)]
        out[_u(i)] = v * _F_HALF * (_F_ONE + _erf_f32(v * _F_RSQRT2))


@_jit_f32
def gelu_backward_f32(dout, x, dx):
    """``gelu_backward`` for float32 arrays, vectorised (see above)."""
    for i in range(dx.size):
        v = x[_u(i)]
        cdf = _F_HALF * (_F_ONE + _erf_f32(v * _F_RSQRT2))
        phi = _exp_nonpositive_f32(-_F_HALF * v * v) * _F_RSQRT2PI
        dx[_u(i)] = dout[_u(i)] * (cdf + v * phi)


@_jit_sum
def channel_sums(x, mean, sums):
    """For x (N, C, L): sums[0, c] += sum of x - mean[c] and, when ``sums`` has two rows,
    sums[1, c] += sum of (x - mean[c])^2 (float64)."""
    n, c, ln = x.shape
    xf = x.reshape(-1)
    squares = sums.shape[0] > 1
    for i in range(n):
        for j in range(c):
            b = (i * c + j) * ln
            m = mean[j]
            s = 0.0
            q = 0.0
            for t in range(ln):
                v = xf[_u(b + t)] - m
                s += v
                q += v * v
            sums[0, j] += s
            if squares:
                sums[1, j] += q


@_jit_sum
def channel_grad_sums(dy, x, mean, sums):
    """For dy, x (N, C, L): sums[0, c] += sum of dy, sums[1, c] += sum of dy * (x - mean[c])."""
    n, c, ln = x.shape
    df = dy.reshape(-1)
    xf = x.reshape(-1)
    for i in range(n):
        for j in range(c):
            b = (i * c + j) * ln
            m = mean[j]
            s = 0.0
            q = 0.0
            for t in range(ln):
                d = df[_u(b + t)]
                s += d
                q += d * (xf[_u(b + t)] - m)
            sums[0, j] += s
            sums[1, j] += q


@_jit
def channel_affine(x, mean, scale, shift, out):
    """out = (x - mean[c]) * scale[c] + shift[c] for x (N, C, L)."""
    n, c, ln = x.shape
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for i in range(n):
        for j in range(c):
            b = (i * c + j) * ln
            m = mean[j]
            k = scale[j]
            h = shift[j]
            for t in range(ln):
                of[_u(b + t)] = (xf[_u(b + t)] - m) * k + h


@_jit
def channel_grad(dy, x, mean, k, a, shift, dx):
    """dx = dy * k[c] + (x - mean[c]) * a[c] + shift[c] for dy, x (N, C, L)."""
    n, c, ln = x.shape
    df = dy.reshape(-1)
    xf = x.reshape(-1)
    of = dx.reshape(-1)
    for i in range(n):
        for j in range(c):
            b = (i * c + j) * ln
            m = mean[j]
            kj = k[j]
            aj = a[j]
            h = shift[j]
            for t in range(ln):
                of[_u(b + t)] = df[_u(b + t)] * kj + (xf[_u(b + t)] - m) * aj + h


@_jit
def relu_backward_scalar(d, out, dx):
    """``relu_backward`` for a gradient that is one value broadcast (from a sum, say)."""
    z = d * 0
    for i in range(dx.size):
        dx[_u(i)] = d if out[_u(i)] > 0 else z


@_jit_sum
def flat_sum(x):
    """The sum of a flat array, accumulated in float64."""
    s = 0.0
    for i in range(x.size):
        s += x[_u(i)]
    return s


@intrinsic
def _load_acquire(typingctx, flags, i):
    """flags[i] read from memory on every call (an atomic load: a plain one may be hoisted
    out of a loop that waits for another thread to change it)."""
    sig = types.int64(flags, i)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.load_atomic(builder.gep(data, [args[1]]), "acquire", 8)

    return sig, codegen


@intrinsic
def _store_release(typingctx, flags, i, value):
    """flags[i] = value, seen by another thread's ``_load_acquire`` after every earlier
    write of this one."""
    sig = types.void(flags, i, value)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        builder.store_atomic(args[2], builder.gep(data, [args[1]]), "release", 8)
        return context.get_dummy_value()

    return sig, codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _pause(typingctx):
    """The CPU's spin-wait hint (x86 PAUSE; nothing elsewhere)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@_jit
def spin_while(flags, i, value, tries, bump, grace):
    """Wait, without the GIL, while flags[i] (int64) == value, at most ``tries`` spin
    hints, then ``grace`` more once it changed; returns the last value read (``value``
    when it never changed). First, when ``bump`` >= 0, adds one to flags[bump] (written by
    this thread only): the GIL is already released then, so a thread that waits for that
    can take it at once."""
    if bump >= 0:
        _store_release(flags, bump, _load_acquire(flags, bump) + 1)
    for _ in range(tries):
        v = _load_acquire(flags, i)
        if v != value:
            for _ in range(grace):
                _pause()
            return v
        _pause()
    return value
