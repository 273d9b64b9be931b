"""The register tiles of each ISA and the GEMM micro-kernels generated for them in LLVM IR.

One source serves every ISA: each compiled function takes an *ISA token* first, a 0-length
array whose record dtype names the ISA and its tile (``token("avx2")``). Its type is part of the
function's signature, so numba compiles (and caches) one specialisation per ISA, and the
intrinsics here read the register tile from it at compile time (``TILES``: BLIS's per-ISA
kernels are the model). Cache blocking is not compiled in: ``Blocking`` is derived from the
detected cache sizes and passed at run time, so a cached kernel stays right on a CPU with
other caches. numba's cache keys its entries by the host CPU's name and features, so a
changed CPU recompiles instead of running code built for another.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


class Tile(NamedTuple):
    """An ISA's register tiles: ``lanes`` float32 per vector; nn keeps MR x NR of C in
    MR * NR / lanes accumulators (plus NR / lanes for B and one broadcast), nt keeps TA x TB
    vector accumulators (plus TA for A and one for B); both within the register file."""
    lanes: int
    mr: int
    nr: int
    ta: int
    tb: int


TILES = {
    "avx512": Tile(16, 8, 32, 4, 6),  # 32 zmm: 16 + 2 + 1 (nn), 24 + 4 + 1 (nt)
    # 16 ymm: 12 + 3 + 1 (nn), 12 + 3 + 1 (nt); 4 rows (not BLIS's 6x16) divide the channel
    # counts of CNN layers (16, 20, 32, 64, ...), so no A panel is partial
    "avx2": Tile(8, 4, 24, 3, 4),
}


class Blocking(NamedTuple):
    """Cache blocking, from the cache sizes (``blocking``): ``kc`` rows of B's NR-wide strip
    stay in L1 while every A panel passes over it; nn's packed block of B (kc rows) takes
    up to ``b_bytes`` (L2); ``kb`` elements of TB rows of nt's B stay in L1. nn reads B in
    place unless A has at least ``pack_rows`` rows and the K block is at most ``pack_k``
    long, or (``pack_aliased``) B's rows are a multiple of 1 KiB apart and more than one A
    panel reads them (such rows fall into a few cache sets): then B is copied first, its
    strips contiguous."""
    kc: int
    b_bytes: int
    kb: int
    pack_rows: int
    pack_k: int
    pack_aliased: int


# when nn copies B first, per ISA (pack_rows, pack_k, pack_aliased), what paid where each
# was measured: on AVX-512 for short K blocks from 32 rows on, on AVX2 only for aliased rows
# (the convolutions' columns never are: conv_parts.row_stride)
_PACKING = {"avx512": (32, 64, 0), "avx2": (1 << 30, 0, 1)}


def blocking(isa: str, l1d: int, l2: int) -> Blocking:
    """Blocking for the ISA's tiles and a core's L1d and L2 sizes in bytes."""
    t = TILES[isa]
    kc = max(64, min(512, (l1d * 3 // 4) // (t.nr * 4) // 64 * 64))
    kb = max(256, min(2048, (l1d // 2) // (t.tb * 4) // t.lanes * t.lanes))
    return Blocking(kc, max(64 << 10, l2 // 2), kb, *_PACKING[isa])


@functools.cache
def token(isa: str) -> np.ndarray:
    """The ISA token the compiled functions take first (see the module docstring). Its
    field's name spells the tile out ("avx2:8:4:24:3:4"), so that a changed tile is a new
    signature: numba's cache, keyed by signatures and each function's own source file,
    would otherwise load code built for the old one."""
    if isa not in TILES:
        raise ValueError(f"no GEMM micro-kernels for {isa!r}; known: {sorted(TILES)}")
    return np.empty(0, np.dtype([(":".join([isa, *map(str, TILES[isa])]), "u1")]))


def _tile(tok) -> Tile:
    """The Tile spelled in an ISA token's numba type."""
    return Tile(*map(int, next(iter(tok.dtype.fields)).split(":")[1:]))


_f32 = ir.FloatType()
_i32 = ir.IntType(32)
_i64 = ir.IntType(64)


def _const(value):
    return ir.Constant(_i64, value)


def _constant_intrinsic(field: str):
    """An intrinsic ``f(isa)`` that is the ISA's Tile field as a compile-time int64."""

    def typer(typingctx, tok):
        value = getattr(_tile(tok), field)

        def codegen(context, builder, signature, args):
            return _const(value)

        return types.int64(tok), codegen

    typer.__name__ = f"_{field}"
    return intrinsic(typer)


_lanes, _mr, _nr, _ta, _tb = (_constant_intrinsic(f) for f in ("lanes", "mr", "nr", "ta", "tb"))


def _vector(lanes):
    return ir.VectorType(_f32, lanes)


def _vec_ptr(builder, base, offset, lanes):
    return builder.bitcast(builder.gep(base, [offset]), _vector(lanes).as_pointer())


def _fma(builder, lanes):
    vec = _vector(lanes)
    return cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{lanes}f32")


@intrinsic
def _micro_nn(typingctx, isa, kc, ap, aoff, b, boff, ldb, c, coff, ldc, add):
    """C[coff + r*ldc + t] (+)= sum_k ap[aoff + k*MR + r] * b[boff + k*ldb + t] for the
    MR x NR tile (r < MR, t < NR); ``add`` False overwrites C."""
    sig = types.void(isa, kc, ap, aoff, b, boff, ldb, c, coff, ldc, add)
    lanes, mr, nr = _tile(isa).lanes, _tile(isa).mr, _tile(isa).nr
    vec = _vector(lanes)

    def codegen(context, builder, signature, args):
        _, kc, ap, aoff, b, boff, ldb, c, coff, ldc, add = args
        a_ptr = context.make_array(signature.args[2])(context, builder, ap).data
        b_ptr = context.make_array(signature.args[4])(context, builder, b).data
        c_ptr = context.make_array(signature.args[7])(context, builder, c).data
        fma = _fma(builder, lanes)
        nv = nr // lanes
        acc = [[cgutils.alloca_once_value(builder, ir.Constant(vec, None))
                for _ in range(nv)] for _ in range(mr)]
        undef = ir.Constant(vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(_i32, lanes), [0] * lanes)
        with cgutils.for_range(builder, kc) as loop:
            k = loop.index
            b0 = builder.add(boff, builder.mul(k, ldb))
            bv = [builder.load(_vec_ptr(builder, b_ptr, builder.add(b0, _const(lanes * j)),
                                        lanes), align=4) for j in range(nv)]
            a0 = builder.add(aoff, builder.mul(k, _const(mr)))
            for r in range(mr):
                a = builder.load(builder.gep(a_ptr, [builder.add(a0, _const(r))]))
                av = builder.shuffle_vector(
                    builder.insert_element(undef, a, ir.Constant(_i32, 0)), undef, splat)
                for j in range(nv):
                    builder.store(builder.call(fma, [av, bv[j], builder.load(acc[r][j])]),
                                  acc[r][j])
        for r in range(mr):
            row = builder.add(coff, builder.mul(ldc, _const(r)))
            for j in range(nv):
                p = _vec_ptr(builder, c_ptr, builder.add(row, _const(lanes * j)), lanes)
                v = builder.load(acc[r][j])
                with builder.if_else(add) as (then, otherwise):
                    with then:
                        builder.store(builder.fadd(builder.load(p, align=4), v), p, align=4)
                    with otherwise:
                        builder.store(v, p, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _micro_nt(typingctx, isa, kv, kb, ap, aoff, bp, boff, acc, accoff, first, last, c, coff,
              ldc, nr, ns, add):
    """For r < TA, s < TB, with lane-wide partial sums over v < kv of
    ap[aoff + r*kb + L*v + lane] * bp[boff + s*kb + L*v + lane] (L lanes; the rows sit kb
    apart, so two base pointers address them all): started from zero (``first``) or from
    acc[accoff + (r*TB + s)*L + lane], and either kept there or (``last``) summed over the
    lanes into C[coff + r*ldc + s] for r < nr, s < ns (``add``: added to it)."""
    sig = types.void(isa, kv, kb, ap, aoff, bp, boff, acc, accoff, first, last, c, coff, ldc,
                     nr, ns, add)
    lanes, ta, tb = _tile(isa).lanes, _tile(isa).ta, _tile(isa).tb
    vec = _vector(lanes)

    def codegen(context, builder, signature, args):
        _, kv, kb, ap, aoff, bp, boff, acc, accoff, first, last, c, coff, ldc, nr, ns, add = args
        a_ptr = context.make_array(signature.args[3])(context, builder, ap).data
        b_ptr = context.make_array(signature.args[5])(context, builder, bp).data
        acc_ptr = context.make_array(signature.args[7])(context, builder, acc).data
        c_ptr = context.make_array(signature.args[11])(context, builder, c).data
        fma = _fma(builder, lanes)
        slots = [[_vec_ptr(builder, acc_ptr, builder.add(accoff, _const((r * tb + s) * lanes)),
                           lanes) for s in range(tb)] for r in range(ta)]
        regs = [[cgutils.alloca_once(builder, vec) for s in range(tb)] for r in range(ta)]
        with builder.if_else(first) as (then, otherwise):
            with then:
                for r in range(ta):
                    for s in range(tb):
                        builder.store(ir.Constant(vec, None), regs[r][s])
            with otherwise:
                for r in range(ta):
                    for s in range(tb):
                        builder.store(builder.load(slots[r][s], align=4), regs[r][s])
        with cgutils.for_range(builder, kv) as loop:
            off = builder.mul(loop.index, _const(lanes))
            a0 = builder.add(aoff, off)
            b0 = builder.add(boff, off)
            av = [builder.load(_vec_ptr(builder, a_ptr, builder.add(
                a0, builder.mul(kb, _const(r))), lanes), align=4) for r in range(ta)]
            for s in range(tb):
                bv = builder.load(_vec_ptr(builder, b_ptr, builder.add(
                    b0, builder.mul(kb, _const(s))), lanes), align=4)
                for r in range(ta):
                    builder.store(builder.call(fma, [av[r], bv, builder.load(regs[r][s])]),
                                  regs[r][s])
        undef = ir.Constant(vec, ir.Undefined)
        with builder.if_else(last) as (then, otherwise):
            with then:
                for r in range(ta):
                    for s in range(tb):
                        v = builder.load(regs[r][s])
                        width = lanes // 2
                        while width:  # lanes summed pairwise, as a tree
                            mask = ir.Constant(ir.VectorType(_i32, lanes),
                                               [(i + width) % lanes for i in range(lanes)])
                            v = builder.fadd(v, builder.shuffle_vector(v, undef, mask))
                            width //= 2
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
                for r in range(ta):
                    for s in range(tb):
                        builder.store(builder.load(regs[r][s]), slots[r][s], align=4)
        return context.get_dummy_value()

    return sig, codegen
