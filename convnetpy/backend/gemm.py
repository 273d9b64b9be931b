"""Float32 GEMMs of our own, with micro-kernels generated for the CPU's vector width (AVX-512:
16 lanes, AVX2+FMA: 8 lanes), compiled by numba; used through ``select`` (the paths
``avx512`` and ``avx2``; elsewhere the kernels call NumPy's matmul).

Why: NumPy's OpenBLAS may be held to narrower kernels than the CPU has (some machines set
OPENBLAS_CORETYPE), its threads spin on the cores our own threads use, and the library never
changes a user's BLAS settings. The inner kernels below are written in LLVM IR with vectors
of the ISA's width, so they run at the CPU's full width whatever the BLAS does.

Every compiled function takes an ISA token and a Blocking first (microkernels.py): one
source, one specialisation per ISA.

Two shapes of product, the two a convolution needs, both over row-contiguous operands:
- ``nn``: C (+)= A @ B, A small (weights). As in BLIS, A is packed into panels of MR rows
  (each k's MR values side by side) that stay in L2; B is read in place (copied first when
  K is short and many A panels use it), one strip of NR columns at a time (its KC x NR
  block stays in L1 while every A panel passes over it), and the micro-kernel keeps an
  MR x NR tile of C in vector registers. Ragged edges go through a zero-padded copy of
  B's last strip and a small tile buffer.
- ``nt``: C (+)= A @ B^T with a long K (a weight gradient: dout times the im2col columns,
  summed over every pixel). Per K block of KB, rows of both are copied KB apart (zero-padded
  to whole vectors), and a tile of TA x TB vector accumulators (one per entry of C) runs
  along them; it starts from zero, waits in a buffer between K blocks when K is longer than
  one, and is summed across its lanes into C on the last.
Both run in the calling thread: the convolutions split their batch over the cores (each
part unfolds, multiplies and folds its own images), which also keeps every sum in a fixed
order. The convolution parts that chain them with im2col and col2im
are in conv_parts.py.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import uint64 as _u

from .microkernels import Blocking, _lanes, _micro_nn, _micro_nt, _mr, _nr, _ta, _tb, token

_jit = numba.njit(nogil=True, cache=True, boundscheck=False)


@_jit
def _pack_a(isa, a, k0, kc, ap):
    """Columns k0..k0+kc of ``a`` (M x K, any strides) as panels of MR rows:
    ap[(p*kc + k)*MR + r] = a[p*MR + r, k0 + k], zero past the last row."""
    mr = _mr(isa)
    m = a.shape[0]
    for p in range((m + mr - 1) // mr):
        base = p * kc * mr
        for r in range(mr):
            i = p * mr + r
            if i < m:
                for k in range(kc):
                    ap[_u(base + k * mr + r)] = a[_u(i), _u(k0 + k)]
            else:
                for k in range(kc):
                    ap[_u(base + k * mr + r)] = 0


@_jit
def _pack_b(isa, b, ldb, k0, kc, j0, nc, bp):
    """Rows k0..k0+kc of B's columns j0..j0+nc as strips of NR columns, each strip's kc rows
    of NR side by side: bp[(s*kc + k)*NR + t] = b[(k0 + k)*ldb + j0 + s*NR + t], zero past
    column nc. B's rows are read in long runs (the prefetchers follow them; NR-wide columns
    read in place, ldb apart, fall into few cache sets when ldb is a power of two)."""
    nr = _nr(isa)
    strips = (nc + nr - 1) // nr
    for k in range(kc):
        src = (k0 + k) * ldb + j0
        for q in range(strips):
            d = (q * kc + k) * nr
            w = min(nr, nc - q * nr)
            if w == nr:
                for t in range(nr):
                    bp[_u(d + t)] = b[_u(src + q * nr + t)]
            else:
                for t in range(nr):
                    bp[_u(d + t)] = b[_u(src + q * nr + t)] if t < w else 0


@_jit
def _nn(isa, blk, a, b, ldb, c, ldc, n, add):
    """c[i*ldc + j] (+)= sum_k a[i, k] * b[k*ldb + j] for j < n and every row i of ``a``
    (M x K); ``b`` and ``c`` are flat, ``add`` False overwrites; ``blk`` is the Blocking.

    As BLIS: per block of NC columns and KC rows, A's KC columns are packed into MR-row
    panels and B is read in place or packed into NR-wide strips (see Blocking; the block
    stays in L2, each strip in L1 while every A panel passes over it); C's tiles take one
    micro-kernel call per (strip, panel), the edge tiles through a small buffer, and the
    last, partial strip of B is always packed (zero-padded)."""
    mr, nr = _mr(isa), _nr(isa)
    m, k = a.shape
    mp = (m + mr - 1) // mr
    kb = min(blk[0], k)
    nblocks = (k + kb - 1) // kb
    kb = (k + nblocks - 1) // nblocks  # equal blocks
    ncb = max(nr, blk[1] // (kb * 4) // nr * nr)  # columns per B block: kb x ncb in a_bytes
    ap = np.empty(mp * mr * kb, np.float32)
    bp = np.empty(kb * ncb, np.float32)
    tile = np.empty(mr * nr, np.float32)
    for jc in range(0, n, ncb):
        nc = min(ncb, n - jc)
        for kk in range(0, k, kb):
            kc = min(kb, k - kk)
            more = kk > 0 or add
            in_place = (m < blk[3] or kc > blk[4]) and not (  # else B is copied first
                blk[5] and ldb % 256 == 0 and m > mr)  # (see Blocking)
            _pack_a(isa, a, kk, kc, ap)
            if not in_place:
                _pack_b(isa, b, ldb, kk, kc, jc, nc, bp)
            for q in range((nc + nr - 1) // nr):
                jj = jc + q * nr
                nj = min(nr, n - jj)
                src, boff, ld = bp, q * kc * nr, nr
                if in_place and nj == nr:
                    src, boff, ld = b, kk * ldb + jj, ldb
                elif in_place:
                    _pack_b(isa, b, ldb, kk, kc, jj, nj, bp)
                    boff = 0
                for p in range(mp):
                    i = p * mr
                    if nj == nr and i + mr <= m:
                        _micro_nn(isa, kc, ap, p * kc * mr, src, boff, ld, c, i * ldc + jj,
                                  ldc, more)
                        continue
                    _micro_nn(isa, kc, ap, p * kc * mr, src, boff, ld, tile, 0, nr, False)
                    for r in range(min(mr, m - i)):
                        row = (i + r) * ldc + jj
                        for t in range(nj):
                            if more:
                                c[_u(row + t)] += tile[r * nr + t]
                            else:
                                c[_u(row + t)] = tile[r * nr + t]


@_jit
def _pack_rows(isa, x, ld, r0, r1, rows, k0, kc, kb, xp):
    """Rows r0..r0+rows of flat ``x`` (row stride ``ld``), elements k0..k0+kc, into ``xp``
    kb apart, zero-padded to whole vectors and for rows at or past r1."""
    lanes = _lanes(isa)
    kp = (kc + lanes - 1) // lanes * lanes
    for r in range(rows):
        d = r * kb
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
def _nt(isa, blk, a, lda, m, b, ldb, n, k, c, ldc, add):
    """c[i*ldc + s] (+)= sum over t < k of a[i*lda + t] * b[s*ldb + t] for i < m and
    s < n (all flat); ``add`` False overwrites. With K longer than one block the
    tiles' vector sums wait in ``acc`` between blocks."""
    lanes, ta, tb, kb = _lanes(isa), _ta(isa), _tb(isa), blk[2]
    na = (m + ta - 1) // ta
    nb = (n + tb - 1) // tb
    blocks = (k + kb - 1) // kb
    acc = np.empty(na * nb * ta * tb * lanes if blocks > 1 else lanes, np.float32)
    ap = np.empty(na * ta * kb, np.float32)
    bp = np.empty(tb * kb, np.float32)
    for k0 in range(0, k, kb):
        kc = min(kb, k - k0)
        kv = (kc + lanes - 1) // lanes
        _pack_rows(isa, a, lda, 0, m, na * ta, k0, kc, kb, ap)
        for y in range(nb):  # B's TB rows stay in L1 while all of A's block passes (L2)
            j = y * tb
            _pack_rows(isa, b, ldb, j, n, tb, k0, kc, kb, bp)
            for x in range(na):
                _micro_nt(isa, kv, kb, ap, x * ta * kb, bp, 0, acc,
                          (y * na + x) * ta * tb * lanes if blocks > 1 else 0, k0 == 0,
                          k0 + kc == k, c, x * ta * ldc + j, ldc, min(ta, m - x * ta),
                          min(tb, n - j), add)


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


class Gemm:
    """The GEMMs of one ISA with one blocking. Every call runs in the calling thread (the
    convolutions split their batch over the cores themselves)."""

    def __init__(self, isa: str, blk: Blocking) -> None:
        self.isa, self.blocking = isa, blk
        # what every compiled function takes first (conv_parts' too)
        self.args = (token(isa), tuple(int(v) for v in blk))

    def __repr__(self) -> str:
        return f"Gemm({self.isa!r}, {self.blocking})"

    def nn(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, add: bool = False):
        """``out`` (+)= a @ b for float32 ``a`` (M, K) of any strides, ``b`` (K, N) and
        ``out`` (M, N) with unit column strides; ``add`` False overwrites ``out``."""
        m, k = a.shape
        n = b.shape[1]
        if k == 0 or m == 0 or n == 0:
            if not add:
                out[...] = 0
            return out
        bf, ldb = _flat(b)
        cf, ldc = _flat(out)
        _nn(*self.args, a, bf, ldb, cf, ldc, n, add)
        return out

    def nt(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, add: bool = False):
        """``out`` (+)= a @ b.T for float32 ``a`` (M, K), ``b`` (N, K) and ``out`` (M, N),
        all with unit column strides; ``add`` False overwrites ``out``."""
        m, k = a.shape
        n = b.shape[0]
        if k == 0 or m == 0 or n == 0:
            if not add:
                out[...] = 0
            return out
        af, lda = _flat(a)
        bf, ldb = _flat(b)
        cf, ldc = _flat(out)
        _nt(*self.args, af, lda, m, bf, ldb, n, k, cf, ldc, add)
        return out
