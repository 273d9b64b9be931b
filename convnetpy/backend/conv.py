"""2-D convolution, fast: the same numbers as the reference (kernels/conv.py).

The input is copied once into a zero-padded, channel-major buffer; the batch is then taken in
chunks whose im2col columns fit in the CPU cache, each unfolded with one copy per kernel
offset into a recycled buffer (memory.py) and multiplied by the weights in a single GEMM. With
stride 1 the columns cover whole padded rows, so every copy moves long contiguous runs; the
few extra outputs per row are dropped. The backward pass unfolds again instead of keeping
the columns (memory), and folds the column gradient back (col2im) with one strided add per
kernel offset, so no Python loop runs over pixels or batch items, only over chunks.
With the compiled loops (every path but numpy) im2col and col2im run one image plane at a
time in cache; on the avx512 and avx2 paths float32 GEMMs are our own (gemm.py) and the
batch is split over the cores, each part one compiled call that unfolds, multiplies and
folds its own images (conv_parts.py).

Shape: as the reference (kernels/conv.py).

>>> import numpy as np
>>> x = np.ones((1, 3, 32, 32), dtype=np.float32)
>>> w = np.ones((10, 3, 5, 5), dtype=np.float32)
>>> out, _ = conv2d_forward(x, w, None, padding=((2, 2), (2, 2)))
>>> out.shape, float(out[0, 0, 16, 16])
((1, 10, 32, 32), 75.0)
"""

from __future__ import annotations

import numpy as np

from ..kernels.conv import conv2d_output_shape
from .memory import empty
from .select import gemm, loops
from .threads import parallel_for, split_plan

Pad2 = tuple[tuple[int, int], tuple[int, int]]
CHUNK_BYTES = 4 << 20  # batch chunks sized so that one chunk's columns take about this
# ... with our GEMMs, whose pieces run a chunk's steps without Python in between: columns
# that stay in L2 from im2col to the GEMM pay more than longer GEMMs
GEMM_CHUNK_BYTES = 1 << 20
SHORT_ROWS = 8  # stride-1 output rows this short are computed whole (see _Geometry)


class _Geometry:
    """Sizes of one convolution, and how its columns are laid out (see conv2d_forward)."""

    def __init__(self, xshape, wshape, stride, padding, dilation, groups, dtype):
        self.n, self.c, self.h, self.w = xshape
        self.o, self.cg, self.kh, self.kw = wshape
        self.g, self.og = groups, self.o // groups
        (self.pt, self.pb), (self.pl, self.pr) = padding
        self.sh, self.sw = stride
        self.dh, self.dw = dilation
        self.hp, self.wp = self.h + self.pt + self.pb, self.w + self.pl + self.pr
        self.oh = (self.hp - self.dh * (self.kh - 1) - 1) // self.sh + 1
        self.ow = (self.wp - self.dw * (self.kw - 1) - 1) // self.sw + 1
        # stride 1: compute whole padded rows (owx = wp) so that each kernel offset's
        # columns are one contiguous run per channel and image; the extra wp - ow outputs
        # per row are computed and dropped. Worth it while they are at most a quarter, or
        # when rows are so short that copying them one by one costs more (even with 50%
        # extra GEMM work). The compiled loops copy row by row cheaply, so they never
        # merge. lp is fixed here so that a backward pass unfolds the way its forward did;
        # they take float32/float64 only.
        self.lp = loops() if dtype in (np.float32, np.float64) else None
        self.gm = gemm() if self.lp and dtype == np.float32 else None  # our GEMMs
        merged = self.sh == self.sw == 1 and not self.lp and (
            4 * self.wp <= 5 * self.ow or self.ow <= SHORT_ROWS)
        self.owx = self.wp if merged else self.ow
        self.k = self.cg * self.kh * self.kw  # one group's column height
        self.tail = (self.kh - 1) * self.dh * self.wp + (self.kw - 1) * self.dw
        per_image = self.c * self.kh * self.kw * self.oh * self.owx * np.dtype(dtype).itemsize
        limit = GEMM_CHUNK_BYTES if self.gm else CHUNK_BYTES
        self.chunk = max(1, min(self.n, limit // max(per_image, 1)))
        self.loop_args = (self.kh, self.kw, self.sh, self.sw, self.dh, self.dw, self.pt,
                          self.pl, self.oh, self.owx, self.hp, self.wp)

    def with_numpy_gemms(self) -> "_Geometry":
        """The same geometry with NumPy's matmul for the GEMMs (a copy)."""
        other = object.__new__(_Geometry)
        other.__dict__.update(self.__dict__, gm=None)
        return other

    @property
    def pointwise(self) -> bool:
        """1x1, stride 1, no padding: the input itself is the column matrix."""
        return (self.kh, self.kw, self.sh, self.sw) == (1, 1, 1, 1) and not (
            self.pt or self.pb or self.pl or self.pr)

    def padded(self, dtype) -> np.ndarray:
        """Flat scratch for the padded batch, channel-major (see ``grid``), plus a tail of
        ``self.tail`` elements that lets ``offset_view`` reshape a shifted slice."""
        return empty((self.c * self.n * (self.hp + 1) * self.wp + self.tail,), dtype)

    def grid(self, flat: np.ndarray, off: int = 0) -> np.ndarray:
        """(C, N, HP + 1, WP) view of ``flat`` starting ``off`` elements in. The extra row
        keeps every merged run (stride 1, OWX = WP) inside its own image."""
        size = self.c * self.n * (self.hp + 1) * self.wp
        return flat[off: off + size].reshape(self.c, self.n, self.hp + 1, self.wp)

    def fill(self, flat: np.ndarray, x: np.ndarray) -> None:
        """Copy ``x`` (N, C, H, W) into the grid of ``flat`` and zero everything around it.

        NOTE: the copies here stay on one core: split over threads they ran slower, as
        OpenBLAS's worker threads spin for a while after each GEMM."""
        buf, pt, pl, h, w = self.grid(flat), self.pt, self.pl, self.h, self.w
        buf[:, :, :pt] = 0
        buf[:, :, pt + h:] = 0
        buf[:, :, pt: pt + h, :pl] = 0
        buf[:, :, pt: pt + h, pl + w:] = 0
        buf[:, :, pt: pt + h, pl: pl + w] = x.transpose(1, 0, 2, 3)

    def crop(self, flat: np.ndarray) -> np.ndarray:
        """(N, C, H, W) view of the unpadded pixels of the grid of ``flat``."""
        buf, pt, pl = self.grid(flat), self.pt, self.pl
        return buf[:, :, pt: pt + self.h, pl: pl + self.w].transpose(1, 0, 2, 3)

    def offset_view(self, flat: np.ndarray, i: int, j: int, n0: int, n1: int) -> np.ndarray:
        """(C, n1 - n0, OH, OWX): the padded pixels kernel offset (i, j) meets in images
        n0..n1, a strided view of the shifted grid (slicing: cheaper than ``as_strided``)."""
        g = self.grid(flat, i * self.dh * self.wp + j * self.dw)
        return g[:, n0:n1, : self.sh * (self.oh - 1) + 1: self.sh,
                 : self.sw * (self.owx - 1) + 1: self.sw]

    def source(self, x: np.ndarray) -> np.ndarray:
        """What ``im2col`` reads: ``x`` itself for the compiled loop (which pads each image
        plane in cache as it goes), else the padded grid filled from ``x``."""
        if self.lp:
            return np.ascontiguousarray(x)
        flat = self.padded(x.dtype)
        self.fill(flat, x)
        return flat

    def im2col(self, src: np.ndarray, n0: int, n1: int) -> np.ndarray:
        """Scratch columns (G, Cg*KH*KW, nc*OH*OWX) of images n0..n1 of ``source(x)``."""
        shape = (self.c, self.kh, self.kw, n1 - n0, self.oh, self.owx)
        cols = empty(shape, src.dtype)
        if self.lp:
            self.lp.conv_im2col(src, n0, n1, *self.loop_args, cols.reshape(-1),
                                (n1 - n0) * self.oh * self.owx)
        else:
            for i in range(self.kh):
                for j in range(self.kw):
                    cols[:, i, j] = self.offset_view(src, i, j, n0, n1)
        return cols.reshape(self.g, self.k, -1)

    def split(self, part) -> None:
        """``part(lo, hi)`` over the batch. With our GEMMs the images are split over the
        cores (each part unfolds, multiplies and folds its own images); NumPy's BLAS
        threads its GEMMs itself and is given the whole batch in one part (its threads
        spin after each GEMM, so work of ours beside them would be slowed)."""
        if self.gm:
            parallel_for(part, self.n, self.k * self.oh * self.ow * self.g)
        else:
            part(0, self.n)

    def chunks(self, lo: int, hi: int):
        """(n0, n1) ranges of images lo..hi, of equal sizes (to one image), each with at
        most about CHUNK_BYTES (GEMM_CHUNK_BYTES) of columns."""
        parts = -(-(hi - lo) // self.chunk)
        return ((lo + (hi - lo) * i // parts, lo + (hi - lo) * (i + 1) // parts)
                for i in range(parts))


def _sum_parts(parts: dict) -> np.ndarray:
    """The weight gradients of a batch's parts (by first image) added in batch order, so
    that the result is fixed for a thread count."""
    total = None
    for lo in sorted(parts):
        total = parts[lo] if total is None else total + parts[lo]
    return total


def _parts():
    """conv_parts, imported when our GEMMs run (it needs numba)."""
    from . import conv_parts

    return conv_parts


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

    The batch is processed in chunks whose columns take about CHUNK_BYTES, so the columns
    live in the CPU cache and in recycled buffers: per chunk, the input is copied
    channel-major into a padded buffer, unfolded with one copy per kernel offset into
    (C*KH*KW, nc*OH*OWX), multiplied by W (C_out, C*KH*KW) in a single GEMM, and cropped
    (plus bias) into the NCHW output. Nothing but the input is kept for the backward pass,
    which unfolds again. A 1x1 convolution with stride 1 and no padding multiplies the
    input directly. With our GEMMs (float32) the batch is split over the cores and each
    piece runs all of that as one compiled call (``conv_parts.conv_forward_part``).
    """
    n, o, oh, ow = conv2d_output_shape(x.shape, w.shape, None if b is None else b.shape,
                                       stride, padding, dilation, groups)
    geo = _Geometry(x.shape, w.shape, stride, padding, dilation, groups, x.dtype)
    cache = (x, w, geo, b is not None)
    if geo.pointwise:
        # (G, Og, Cg) @ (N, G, Cg, H*W) -> (N, G, Og, H*W), already NCHW
        src = np.ascontiguousarray(x)
        cols = src.reshape(n, groups, geo.cg, oh * ow)
        out = empty((n, o, oh, ow), np.result_type(w, x))
        wg, y = w.reshape(groups, geo.og, geo.cg), out.reshape(n, groups, geo.og, oh * ow)

        if geo.gm and out.dtype == np.float32:  # one compiled call a part
            wc = np.ascontiguousarray(wg)
            bias = np.empty(0, np.float32) if b is None else np.ascontiguousarray(b, np.float32)
            geo.split(lambda lo, hi: _parts().pointwise_forward_part(
                *geo.gm.args, src, wc, bias, lo, hi, out))
        else:
            np.matmul(wg, cols, out=y)
            if b is not None:
                out += b.reshape(1, o, 1, 1)
        return out, cache
    out = empty((n, o, oh, ow), x.dtype)
    wg = w.reshape(groups, geo.og, geo.k)
    src = geo.source(x)
    if geo.gm:  # each part is one compiled call: the threads meet at the GIL only to start
        wc = np.ascontiguousarray(wg, np.float32)
        bias = np.zeros(o, np.float32) if b is None else np.ascontiguousarray(b, np.float32)

        def compiled(lo: int, hi: int) -> None:
            m = min(geo.chunk, hi - lo) * oh * ow
            ld = m + 32  # at least conv_parts.row_stride of any chunk's columns
            _parts().conv_forward_part(
                *geo.gm.args, src, wc, bias, lo, hi, geo.chunk, *geo.loop_args,
                empty((geo.c * geo.kh * geo.kw * ld,), np.float32),
                empty((o * m,), np.float32), out)

        geo.split(compiled)
        return out, cache

    def part(lo: int, hi: int) -> None:
        for n0, n1 in geo.chunks(lo, hi):
            cols = geo.im2col(src, n0, n1)  # (G, Cg*KH*KW, nc*OH*OWX)
            y = empty((groups, geo.og, cols.shape[2]), x.dtype)
            np.matmul(wg, cols, out=y)  # (G, Og, Cg*KH*KW) @ (G, Cg*KH*KW, nc*OH*OWX)
            y = y.reshape(o, -1)
            if b is not None:  # along whole rows: a broadcast add into the crop is 2x slower
                y += b[:, None]
            out[n0:n1] = y.reshape(o, n1 - n0, oh, geo.owx)[:, :, :, :ow].transpose(1, 0, 2, 3)

    geo.split(part)
    return out, cache


def conv2d_backward(
    dout: np.ndarray, cache: tuple, need: tuple[bool, bool, bool] = (True, True, True)
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients (dx, dw, db) of ``conv2d_forward``; entries not in ``need`` are None.

    Per chunk: unfold the input again (for dW), spread dout into the columns' layout, then
    dW += dout_cols @ cols^T and dcols = W^T @ dout_cols, folded back (col2im) with one
    strided add per kernel offset into a zeroed padded buffer, and cropped into dx (the
    compiled col2im sums and crops one image plane at a time, in cache).
    """
    x, w, geo, has_bias = cache
    if geo.gm and dout.dtype != np.float32:  # our GEMMs take float32 only: NumPy's here
        geo = geo.with_numpy_gemms()
    n, o, oh, ow = dout.shape
    g, og, k = geo.g, geo.og, geo.k
    want_db = need[2] and has_bias
    # with our GEMMs each part of the (not 1x1) backward sums it as it reads dout (below)
    in_parts = want_db and geo.gm and not geo.pointwise and (need[0] or need[1])
    db = np.einsum("nchw->c", dout) if want_db and not in_parts else None  # 3x dout.sum
    if not (need[0] or need[1]):
        return None, None, db
    if geo.pointwise:
        wt = np.ascontiguousarray(w.reshape(g, og, geo.cg).transpose(0, 2, 1))
        if geo.gm and dout.dtype == x.dtype == w.dtype == np.float32:  # a compiled call a part
            src, none = np.ascontiguousarray(x), np.empty(0, np.float32)
            dx = empty(x.shape, np.float32) if need[0] else none.reshape(0, 0, 0, 0)
            dws = {}

            def images(lo: int, hi: int) -> None:
                dwp = dws[lo] = np.zeros(g * og * geo.cg, np.float32) if need[1] else none
                _parts().pointwise_backward_part(
                    *geo.gm.args, src, dout, wt, lo, hi, need[0], need[1],
                    empty((o * oh * ow,), np.float32), dwp, dx)

            geo.split(images)
            dw = _sum_parts(dws).reshape(w.shape) if need[1] else None
            return (dx if need[0] else None), dw, db
        d = dout
        if not dout.flags.c_contiguous:  # a broadcast gradient (of a sum), say
            d = empty(dout.shape, dout.dtype)
            d[...] = dout
        d = d.reshape(n, g, og, oh * ow)
        cols = np.ascontiguousarray(x).reshape(n, g, geo.cg, oh * ow) if need[1] else None
        dx = empty(x.shape, np.result_type(w, d)) if need[0] else None
        dw = None
        if need[1]:  # per image (G, Og, HW) @ (G, HW, Cg), summed over the batch
            dw = np.matmul(d, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
        if need[0]:
            np.matmul(wt, d, out=dx.reshape(n, g, geo.cg, oh * ow))
        return dx, dw, db
    wg = w.reshape(g, og, k)
    if geo.gm:  # each part is one compiled call, as in the forward pass (W^T: (G, K, Og))
        wtc = np.ascontiguousarray(wg.transpose(0, 2, 1), np.float32)
        src, none = geo.source(x), np.empty(0, np.float32)
        dx = empty(x.shape, np.float32) if need[0] else none.reshape(0, 0, 0, 0)
        dws, dbs = {}, {}  # by part: the bias gradient is summed there too (float64)

        def compiled(lo: int, hi: int) -> None:
            ld = min(geo.chunk, hi - lo) * oh * ow + 32  # >= conv_parts.row_stride
            dwp = dws[lo] = np.zeros(g * og * k, np.float32) if need[1] else none
            dbp = dbs[lo] = np.zeros(o) if in_parts else none.astype(np.float64)
            _parts().conv_backward_part(
                *geo.gm.args, src, dout, wtc, lo, hi, geo.chunk, *geo.loop_args, need[0],
                need[1], empty((g * k * ld,), np.float32), empty((o * ld,), np.float32),
                dwp, dbp, dx)

        geo.split(compiled)
        dw = _sum_parts(dws).reshape(w.shape) if need[1] else None
        db = _sum_parts(dbs).astype(np.float32) if in_parts else None
        return (dx if need[0] else None), dw, db
    # W^T made contiguous (a tiny copy): with a transposed view NumPy's batched matmul
    # can leave BLAS for a loop many times slower
    wt = np.ascontiguousarray(wg.transpose(0, 2, 1)) if need[0] else None
    # dout in the columns' layout (C_out, N, OH, OWX); the dropped outputs get no gradient
    dfull = empty((o, n, oh, geo.owx), dout.dtype)
    src = geo.source(x) if need[1] else None
    dx = dflat = None
    if need[0] and geo.lp:  # each chunk's images are written whole by the compiled col2im
        dx = empty(x.shape, dout.dtype)
    elif need[0]:
        dflat = geo.padded(dout.dtype)
        dflat[...] = 0
    dws = {}  # weight gradient of each part, by its first image

    def part(lo: int, hi: int) -> None:
        dfull[:, lo:hi, :, :ow] = dout[lo:hi].transpose(1, 0, 2, 3)
        dfull[:, lo:hi, :, ow:] = 0
        dw = dws[lo] = np.zeros((g, og, k), dtype=dout.dtype) if need[1] else None
        for n0, n1 in geo.chunks(lo, hi):
            d = dfull[:, n0:n1].reshape(g, og, -1)  # rows strided by N*OH*OWX: BLAS takes it
            if need[1]:
                cols = geo.im2col(src, n0, n1)
                if g == 1:  # 2-D GEMMs take the transposed operand inside BLAS; as
                    # (cols @ d^T)^T the long inner dimension suits OpenBLAS better
                    dw[0] += (cols[0] @ d[0].T).T
                else:
                    dw += np.matmul(d, cols.transpose(0, 2, 1))
            if need[0]:  # the columns are used up: their buffer goes back for dcols
                cols = None
                dcols = empty((g, k, d.shape[2]), dout.dtype)
                np.matmul(wt, d, out=dcols)
                if geo.lp:
                    geo.lp.conv_col2im(dcols.reshape(-1), n0, n1 - n0, *geo.loop_args, dx,
                                       d.shape[2])
                    continue
                dcols = dcols.reshape(geo.c, geo.kh, geo.kw, n1 - n0, oh, geo.owx)
                for i in range(geo.kh):  # col2im: one strided add per kernel offset
                    for j in range(geo.kw):
                        geo.offset_view(dflat, i, j, n0, n1)[...] += dcols[:, i, j]

    geo.split(part)
    dw = _sum_parts(dws) if need[1] else None
    if dflat is not None:
        dx = np.ascontiguousarray(geo.crop(dflat))
    if dw is not None:
        dw = dw.reshape(w.shape)
    return dx, dw, db


def conv2d_memory(x, w, b, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                  groups=1, *, needs=(True, True, True)) -> tuple[int, int, int]:
    """(saved, forward workspace, backward workspace) in bytes of ``conv2d_forward`` and
    ``conv2d_backward`` as they run here, read off the same geometry from the shapes of the
    arguments alone: what the summary's training-memory estimate counts. Nothing new is
    saved (the input is kept, not its columns); the workspace is the columns, the GEMM's
    output block and, on the backward pass, the weight gradient of every piece."""
    geo = _Geometry(x.shape, w.shape, stride, padding, dilation, groups, x.dtype)
    item = np.dtype(x.dtype).itemsize
    n, o, oh, ow = geo.n, geo.o, geo.oh, geo.ow
    rows = geo.g * geo.k  # the columns' height, every group
    dw = int(np.prod(w.shape)) * item if needs[1] else 0
    if geo.gm:  # per thread its piece's buffers, per piece its weight gradient
        threads, pieces = split_plan(n, geo.k * oh * ow * geo.g)
        if geo.pointwise:
            return 0, 0, threads * o * oh * ow * item + (pieces + 1) * dw
        m = min(geo.chunk, -(-n // pieces)) * oh * ow
        ld = m + 32
        forward = threads * (rows * ld + o * m) * item
        backward = threads * (rows + o) * ld * item + (pieces + 1) * dw
        return 0, forward, backward + (int(np.prod(w.shape)) * item if needs[0] else 0)
    if geo.pointwise:  # the per-image weight gradients, then their sum
        return 0, 0, (n + 1) * dw
    padded = (geo.c * n * (geo.hp + 1) * geo.wp + geo.tail) * item
    parts = -(-n // geo.chunk)
    per_image = oh * geo.owx * item
    nc = -(-n // parts)
    cols, y = rows * nc * per_image, o * nc * per_image
    # a chunk's new columns are made before the last chunk's are let go
    forward = (0 if geo.lp else padded) + (2 if parts > 1 else 1) * (cols + y)
    backward = (o * n * per_image + 2 * dw + cols * (2 if parts > 1 else 1)
                + (padded if needs[1] and not geo.lp else 0)
                + (padded if needs[0] and not geo.lp else 0)
                + (int(np.prod(w.shape)) * item if needs[0] else 0))
    return 0, forward, backward
