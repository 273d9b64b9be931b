"""Float32 GEMMs of our own for CPUs with AVX-512, compiled by numba; imported only through
``_compiled`` (``gemm()`` is None where they do not apply, and the kernels then call NumPy's
matmul).

Why: NumPy's OpenBLAS may be held to narrower kernels than the CPU has (these machines set
OPENBLAS_CORETYPE=Haswell: AVX2, ~100 GFLOP/s a core), and the library never changes a
user's BLAS settings. The inner kernels below are written in LLVM IR with 16-wide vectors,
so they run on AVX-512 whatever the BLAS does (seen: ~245 GFLOP/s on one core). Without
AVX-512 they are not used unless forced (LLVM splits the vectors: correct, no faster).

Two shapes of product, the two a convolution needs, both over row-contiguous operands:
- ``nn``: C (+)= A @ B, A small (weights). As in BLIS, A is packed into panels of MR rows
  (each k's MR values side by side) that stay in L2; B is read in place (copied first when
  K is short and many A panels use it), one strip of NR columns at a time (its KC x NR
  block stays in L1 while every A panel passes over it), and the micro-kernel keeps an
  MR x NR tile of C in 16 vector registers. Ragged edges go through a zero-padded copy of
  B's last strip and a small tile buffer.
- ``nt``: C (+)= A @ B^T with a long K (a weight gradient: dout times the im2col columns,
  summed over every pixel). Per K block of KB, rows of both are copied KB apart (zero-padded
  to whole vectors), and a tile of TA x TB vector accumulators (one per entry of C) runs
  along them; it starts from zero, waits in a buffer between K blocks when K is longer than
  one, and is summed across its 16 lanes into C on the last.
Both run in the calling thread: the convolutions split their batch over the cores (each
part unfolds, multiplies and folds its own images), which also keeps every sum in a fixed
order. ``conv_forward_part`` and ``conv_backward_part`` are such parts, whole (and
``pointwise_*_part`` for 1x1 convolutions, which need no columns): the im2col
and col2im loops of ``_loops`` and these GEMMs chained in compiled code, so that a part
takes the GIL only to start (two threads that meet at the GIL between steps wait ~20 us
for each other on these machines).
"""

from __future__ import annotations

import functools

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba import uint64 as _u
from numba.core import cgutils
from numba.extending import intrinsic

from ._loops import conv_col2im, conv_im2col

MR, NR = 8, 32  # nn micro-tile of C: 8 rows x 2 vectors of 16 floats
KC = 256  # nn K block: B's KC x NR block (32 KiB) stays in L1
A_BYTES = 512 << 10  # packed A up to this size is packed once and kept (L2)
PACK_ROWS, PACK_K = 32, 64  # B's strips are copied first from 32 rows of A, for K <= 64
TA, TB = 4, 6  # nt micro-tile: 24 vector accumulators
KB = 1024  # nt K block: B's TB rows of it (24 KiB) stay in L1, A's in L2
_V = 16

_f32 = ir.FloatType()
_v16 = ir.VectorType(_f32, _V)
_i32 = ir.IntType(32)
_i64 = ir.IntType(64)


@functools.cache
def available() -> bool:
    """True when this CPU runs 16-wide float vectors natively (AVX-512F)."""
    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")


def _vec_ptr(builder, base, offset):
    return builder.bitcast(builder.gep(base, [offset]), _v16.as_pointer())


def _fma(builder):
    return cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_v16, [_v16, _v16, _v16]), "llvm.fma.v16f32")


def _const(value):
    return ir.Constant(_i64, value)


@intrinsic
def _micro_nn(typingctx, kc, ap, aoff, b, boff, ldb, c, coff, ldc, add):
    """C[coff + r*ldc + t] (+)= sum_k ap[aoff + k*MR + r] * b[boff + k*ldb + t] for the
    MR x NR tile (r < MR, t < NR); ``add`` False overwrites C."""
    sig = types.void(kc, ap, aoff, b, boff, ldb, c, coff, ldc, add)

    def codegen(context, builder, signature, args):
        kc, ap, aoff, b, boff, ldb, c, coff, ldc, add = args
        a_ptr = context.make_array(signature.args[1])(context, builder, ap).data
        b_ptr = context.make_array(signature.args[3])(context, builder, b).data
        c_ptr = context.make_array(signature.args[6])(context, builder, c).data
        fma = _fma(builder)
        nv = NR // _V
        acc = [[cgutils.alloca_once_value(builder, ir.Constant(_v16, None))
                for _ in range(nv)] for _ in range(MR)]
        undef = ir.Constant(_v16, ir.Undefined)
        splat = ir.Constant(ir.VectorType(_i32, _V), [0] * _V)
        with cgutils.for_range(builder, kc) as loop:
            k = loop.index
            b0 = builder.add(boff, builder.mul(k, ldb))
            bv = [builder.load(_vec_ptr(builder, b_ptr, builder.add(b0, _const(_V * j))),
                               align=4) for j in range(nv)]
            a0 = builder.add(aoff, builder.mul(k, _const(MR)))
            for r in range(MR):
                a = builder.load(builder.gep(a_ptr, [builder.add(a0, _const(r))]))
                av = builder.shuffle_vector(
                    builder.insert_element(undef, a, ir.Constant(_i32, 0)), undef, splat)
                for j in range(nv):
                    builder.store(builder.call(fma, [av, bv[j], builder.load(acc[r][j])]),
                                  acc[r][j])
        for r in range(MR):
            row = builder.add(coff, builder.mul(ldc, _const(r)))
            for j in range(nv):
                p = _vec_ptr(builder, c_ptr, builder.add(row, _const(_V * j)))
                v = builder.load(acc[r][j])
                with builder.if_else(add) as (then, otherwise):
                    with then:
                        builder.store(builder.fadd(builder.load(p, align=4), v), p, align=4)
                    with otherwise:
                        builder.store(v, p, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _micro_nt(typingctx, kv, ap, aoff, bp, boff, acc, accoff, first, last, c, coff, ldc, nr,
              ns, add):
    """For r < TA, s < TB, with 16-wide partial sums over v < kv of
    ap[aoff + r*KB + 16v + lane] * bp[boff + s*KB + 16v + lane] (the rows sit KB apart, so
    two base pointers address them all): started from zero (``first``) or from
    acc[accoff + (r*TB + s)*16 + lane], and either kept there or (``last``) summed over the
    lanes into C[coff + r*ldc + s] for r < nr, s < ns (``add``: added to it)."""
    sig = types.void(kv, ap, aoff, bp, boff, acc, accoff, first, last, c, coff, ldc, nr, ns,
                     add)

    def codegen(context, builder, signature, args):
        kv, ap, aoff, bp, boff, acc, accoff, first, last, c, coff, ldc, nr, ns, add = args
        a_ptr = context.make_array(signature.args[1])(context, builder, ap).data
        b_ptr = context.make_array(signature.args[3])(context, builder, bp).data
        acc_ptr = context.make_array(signature.args[5])(context, builder, acc).data
        c_ptr = context.make_array(signature.args[9])(context, builder, c).data
        fma = _fma(builder)
        slots = [[_vec_ptr(builder, acc_ptr, builder.add(accoff, _const((r * TB + s) * _V)))
                  for s in range(TB)] for r in range(TA)]
        regs = [[cgutils.alloca_once(builder, _v16) for s in range(TB)] for r in range(TA)]
        with builder.if_else(first) as (then, otherwise):
            with then:
                for r in range(TA):
                    for s in range(TB):
                        builder.store(ir.Constant(_v16, None), regs[r][s])
            with otherwise:
                for r in range(TA):
                    for s in range(TB):
                        builder.store(builder.load(slots[r][s], align=4), regs[r][s])
        with cgutils.for_range(builder, kv) as loop:
            off = builder.mul(loop.index, _const(_V))
            a0 = builder.add(aoff, off)
            b0 = builder.add(boff, off)
            av = [builder.load(_vec_ptr(builder, a_ptr, builder.add(a0, _const(r * KB))),
                               align=4) for r in range(TA)]
            for s in range(TB):
                bv = builder.load(_vec_ptr(builder, b_ptr, builder.add(b0, _const(s * KB))),
                                  align=4)
                for r in range(TA):
                    builder.store(builder.call(fma, [av[r], bv, builder.load(regs[r][s])]),
                                  regs[r][s])
        undef = ir.Constant(_v16, ir.Undefined)
        with builder.if_else(last) as (then, otherwise):
            with then:
                for r in range(TA):
                    for s in range(TB):
                        v = builder.load(regs[r][s])
                        for width in (8, 4, 2, 1):  # lanes summed pairwise, as a tree
                            mask = ir.Constant(ir.VectorType(_i32, _V),
                                               [(i + width) % _V for i in range(_V)])
                            v = builder.fadd(v, builder.shuffle_vector(v, undef, mask))
                        total = builder.extract_element(v, ir.Constant(_i32, 0))
                        inside = builder.and_(builder.icmp_signed("<", _const(r), nr),
                                              builder.icmp_signed("<", _const(s), ns))
                        with builder.if_then(inside):
                            at = builder.add(coff, builder.add(
                                builder.mul(ldc, _const(r)), _const(s)))
                            p = builder.gep(c_ptr, [at])
                            builder.store(builder.select(
                                add, builder.fadd(builder.load(p), total), total), p)
            with otherwise:
                for r in range(TA):
                    for s in range(TB):
                        builder.store(builder.load(regs[r][s]), slots[r][s], align=4)
        return context.get_dummy_value()

    return sig, codegen


_jit = numba.njit(nogil=True, cache=True, boundscheck=False)


@_jit
def _pack_a(a, k0, kc, ap):
    """Columns k0..k0+kc of ``a`` (M x K, any strides) as panels of MR rows:
    ap[(p*kc + k)*MR + r] = a[p*MR + r, k0 + k], zero past the last row."""
    m = a.shape[0]
    for p in range((m + MR - 1) // MR):
        base = p * kc * MR
        for r in range(MR):
            i = p * MR + r
            if i < m:
                for k in range(kc):
                    ap[_u(base + k * MR + r)] = a[_u(i), _u(k0 + k)]
            else:
                for k in range(kc):
                    ap[_u(base + k * MR + r)] = 0


@_jit
def _nn(a, b, ldb, c, ldc, n, add):
    """c[i*ldc + j] (+)= sum_k a[i, k] * b[k*ldb + j] for j < n and every row i of ``a``
    (M x K); ``b`` and ``c`` are flat, ``add`` False overwrites.

    When A's packed panels fit in L2 (A_BYTES) they are packed once and each strip of NR
    columns of C runs through every K block while it is in cache; otherwise A is packed one
    K block at a time and C is swept once per block."""
    m, k = a.shape
    mp = (m + MR - 1) // MR
    kb = min(KC, k)
    nblocks = (k + kb - 1) // kb
    kb = (k + nblocks - 1) // nblocks  # equal blocks
    resident = mp * MR * k * 4 <= A_BYTES
    ap = np.empty(mp * MR * (k if resident else kb), np.float32)
    edge = np.empty(kb * NR, np.float32)  # B's last, partial strip, zero-padded
    tile = np.empty(MR * NR, np.float32)
    if resident:
        for kk in range(0, k, kb):
            _pack_a(a, kk, min(kb, k - kk), ap[mp * MR * kk:])
        for jj in range(0, n, NR):
            for kk in range(0, k, kb):
                _strip(ap, mp * MR * kk, b, ldb, kk, min(kb, k - kk), m, jj,
                       min(NR, n - jj), c, ldc, kk > 0 or add, edge, tile)
    else:
        for kk in range(0, k, kb):
            kc = min(kb, k - kk)
            _pack_a(a, kk, kc, ap)
            for jj in range(0, n, NR):
                _strip(ap, 0, b, ldb, kk, kc, m, jj, min(NR, n - jj), c, ldc,
                       kk > 0 or add, edge, tile)


@_jit
def _strip(ap, aoff, b, ldb, k0, kc, m, jj, nj, c, ldc, add, edge, tile):
    """Rows k0..k0+kc of B's columns jj..jj+nj times every packed A panel, into rows 0..m
    and columns jj..jj+nj of C."""
    if nj == NR and (m < PACK_ROWS or kc > PACK_K):
        src, boff, ld = b, k0 * ldb + jj, ldb
    elif nj == NR:  # short and used by many A panels: copied together first (seen, one
        # core: 144x32 @ 32x7168 95 -> 144 GFLOP/s; with kc = 192 it cost 196 -> 155)
        for k in range(kc):  # NR, not nj, as the bound (seen: 75x16 @ 16x13312 ~10% faster)
            s = (k0 + k) * ldb + jj
            for t in range(NR):
                edge[_u(k * NR + t)] = b[_u(s + t)]
        src, boff, ld = edge, 0, NR
    else:  # a partial strip: copy it zero-padded, so the micro-kernel reads only B
        for k in range(kc):
            for t in range(NR):
                edge[_u(k * NR + t)] = b[_u((k0 + k) * ldb + jj + t)] if t < nj else 0
        src, boff, ld = edge, 0, NR
    for p in range((m + MR - 1) // MR):
        i = p * MR
        if nj == NR and i + MR <= m:
            _micro_nn(kc, ap, aoff + p * kc * MR, src, boff, ld, c, i * ldc + jj, ldc, add)
        else:
            _micro_nn(kc, ap, aoff + p * kc * MR, src, boff, ld, tile, 0, NR, False)
            for r in range(min(MR, m - i)):
                row = (i + r) * ldc + jj
                for t in range(nj):
                    if add:
                        c[_u(row + t)] += tile[r * NR + t]
                    else:
                        c[_u(row + t)] = tile[r * NR + t]


@_jit
def _pack_rows(x, ld, r0, r1, rows, k0, kc, xp):
    """Rows r0..r0+rows of flat ``x`` (row stride ``ld``), elements k0..k0+kc, into ``xp``
    KB apart, zero-padded to a multiple of 16 and for rows at or past r1."""
    kp = (kc + _V - 1) // _V * _V
    for r in range(rows):
        d = r * KB
        if r0 + r < r1:
            s = (r0 + r) * ld + k0
            for t in range(kc):
                xp[_u(d + t)] = x[_u(s + t)]
            for t in range(kc, kp):
                xp[_u(d + t)] = 0
        else:
            for t in range(kp):
                xp[_u(d + t)] = 0


@_jit
def _nt(a, lda, m, b, ldb, n, k, c, ldc, add):
    """c[i*ldc + s] (+)= sum over t < k of a[i*lda + t] * b[s*ldb + t] for i < m and
    s < n (all flat); ``add`` False overwrites. With K longer than one block the
    tiles' vector sums wait in ``acc`` between blocks."""
    ta = (m + TA - 1) // TA
    tb = (n + TB - 1) // TB
    blocks = (k + KB - 1) // KB
    acc = np.empty(ta * tb * TA * TB * _V if blocks > 1 else _V, np.float32)
    ap = np.empty(ta * TA * KB, np.float32)
    bp = np.empty(TB * KB, np.float32)
    for k0 in range(0, k, KB):
        kc = min(KB, k - k0)
        kv = (kc + _V - 1) // _V
        _pack_rows(a, lda, 0, m, ta * TA, k0, kc, ap)
        for y in range(tb):  # B's TB rows stay in L1 while all of A's block passes (L2)
            j = y * TB
            _pack_rows(b, ldb, j, n, TB, k0, kc, bp)
            for x in range(ta):
                _micro_nt(kv, ap, x * TA * KB, bp, 0, acc,
                          (y * ta + x) * TA * TB * _V if blocks > 1 else 0, k0 == 0,
                          k0 + kc == k, c, x * TA * ldc + j, ldc, min(TA, m - x * TA),
                          min(TB, n - j), add)


@_jit
def _chunk(lo, hi, chunk, q):
    """Images of the q-th of the equal chunks (at most ``chunk`` images) of lo..hi, as
    ``conv._Geometry.chunks`` cuts them."""
    parts = (hi - lo + chunk - 1) // chunk
    return lo + (hi - lo) * q // parts, lo + (hi - lo) * (q + 1) // parts


@_jit
def conv_forward_part(x, wg, bias, lo, hi, chunk, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow,
                      hp, wp, cols, y, out):
    """Images lo..hi of a float32 convolution, all in compiled code (a part holds the GIL
    only to start): per chunk, im2col into ``cols``, W @ columns into ``y`` per group (wg
    is (G, Og, K)), then plus ``bias`` (O,) into ``out`` (N, O, OH, OW)."""
    g, og, k = wg.shape
    o = g * og
    ohw = oh * ow
    of = out.reshape(-1)
    for q in range((hi - lo + chunk - 1) // chunk):
        n0, n1 = _chunk(lo, hi, chunk, q)
        p = (n1 - n0) * ohw
        conv_im2col(x, n0, n1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, hp, wp, cols)
        for i in range(g):
            _nn(wg[i], cols[i * k * p:], p, y[i * og * p:], p, p, False)
        for c in range(o):
            bc = bias[c]
            for n in range(n1 - n0):
                s = c * p + n * ohw
                d = ((n0 + n) * o + c) * ohw
                for t in range(ohw):
                    of[_u(d + t)] = y[_u(s + t)] + bc


@_jit
def conv_backward_part(x, dout, wt, lo, hi, chunk, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow,
                       hp, wp, need_dx, need_dw, cols, d, dwp, dbp, dx):
    """The gradients of images lo..hi of a float32 convolution, in compiled code: per chunk,
    dout (N, O, OH, OW; any strides, a broadcast too) into ``d`` laid out (O, nc*OH*OW),
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
        for c in range(o):
            total = 0.0
            for n in range(n1 - n0):
                r = c * p + n * ohw
                for a in range(oh):
                    for b in range(ow):
                        v = dout[_u(n0 + n), _u(c), _u(a), _u(b)]
                        d[_u(r + a * ow + b)] = v
                        total += v
            if dbp.size:
                dbp[c] += total
        if need_dw:
            conv_im2col(x, n0, n1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, hp, wp, cols)
            for i in range(g):
                _nt(d[i * og * p:], p, og, cols[i * k * p:], p, k, p, dwp[i * og * k:], k,
                    True)
        if need_dx:
            for i in range(g):
                _nn(wt[i], d[i * og * p:], p, cols[i * k * p:], p, p, False)
            conv_col2im(cols, n0, n1 - n0, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, hp, wp, dx)


@_jit
def pointwise_forward_part(x, wg, bias, lo, hi, out):
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
            _nn(wg[j], xf[(i * c + j * cg) * hw:], hw, of[(i * o + j * og) * hw:], hw, hw,
                False)
        if bias.size:
            for ch in range(o):
                base = (i * o + ch) * hw
                for t in range(hw):
                    of[_u(base + t)] += bias[ch]


@_jit
def pointwise_backward_part(x, dout, wt, lo, hi, need_dx, need_dw, d, dwp, dx):
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
                _nt(d[j * og * hw:], hw, og, xf[(i * c + j * cg) * hw:], hw, cg, hw,
                    dwp[j * og * cg:], cg, True)
            if need_dx:
                _nn(wt[j], d[j * og * hw:], hw, dxf[(i * c + j * cg) * hw:], hw, hw, False)


def _flat(x: np.ndarray) -> tuple[np.ndarray, int]:
    """A 1-D view of 2-D ``x`` (unit column stride) from its first element to its last, and
    its row stride in elements."""
    if x.dtype != np.float32 or x.ndim != 2 or (x.shape[1] > 1 and x.strides[1] != 4):
        raise ValueError(f"expected a 2-D float32 array with unit column stride, got "
                         f"{x.dtype} {x.shape} strides {x.strides}")
    rows, cols = x.shape
    ld = x.strides[0] // 4 if rows > 1 else cols
    span = (rows - 1) * ld + cols if rows and cols else 0
    return np.lib.stride_tricks.as_strided(x, shape=(span,), strides=(4,)), ld


def nn(a: np.ndarray, b: np.ndarray, out: np.ndarray, add: bool = False) -> np.ndarray:
    """``out`` (+)= a @ b for float32 ``a`` (M, K) of any strides, ``b`` (K, N) and ``out``
    (M, N) with unit column strides; ``add`` False overwrites ``out``. Runs in the calling
    thread (the convolutions split their batch over the cores themselves)."""
    m, k = a.shape
    n = b.shape[1]
    if k == 0 or m == 0 or n == 0:
        if not add:
            out[...] = 0
        return out
    bf, ldb = _flat(b)
    cf, ldc = _flat(out)
    _nn(a, bf, ldb, cf, ldc, n, add)
    return out


def nt(a: np.ndarray, b: np.ndarray, out: np.ndarray, add: bool = False) -> np.ndarray:
    """``out`` (+)= a @ b.T for float32 ``a`` (M, K), ``b`` (N, K) and ``out`` (M, N), all
    with unit column strides; ``add`` False overwrites ``out``. Runs in the calling thread."""
    m, k = a.shape
    n = b.shape[0]
    if k == 0 or m == 0 or n == 0:
        if not add:
            out[...] = 0
        return out
    af, lda = _flat(a)
    bf, ldb = _flat(b)
    cf, ldc = _flat(out)
    _nt(af, lda, m, bf, ldb, n, k, cf, ldc, add)
    return out
