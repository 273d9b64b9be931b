"""Our float32 GEMMs (backend/gemm.py) against float64 NumPy products, for the micro-kernels
of every ISA this CPU runs: ragged edges, long K, strided operands and outputs,
accumulation, blockings other than the detected one. The convolutions' split of a batch
over threads is tested in test_kernels_conv.py."""

import numpy as np
import pytest

from convnetpy.backend import cpu

pytest.importorskip("numba", reason="numba is not installed (pip install -e '.[fast]')")
from convnetpy.backend.gemm import Gemm  # noqa: E402
from convnetpy.backend.microkernels import TILES, Blocking, blocking  # noqa: E402


@pytest.fixture(params=sorted(TILES))
def gemm(request):
    """Our GEMMs for one ISA, with the blocking from this CPU's caches."""
    why_not = cpu.runnable(request.param, cpu.detect())
    if why_not:
        pytest.skip(f"{request.param}: {why_not}")
    info = cpu.detect()
    return Gemm(request.param, blocking(request.param, info.l1d, info.l2))

SHAPES = [  # (M, K, N)
    (1, 1, 1), (5, 7, 3), (8, 32, 32), (9, 17, 33), (33, 100, 77), (16, 75, 1000),
    (64, 576, 256), (576, 64, 96), (17, 600, 50), (3, 3000, 7),
]


def close(got, want):
    scale = np.abs(want).max() if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * max(scale, 1.0))


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_nn_matches_numpy(m, k, n, gemm):
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    want = a.astype(np.float64) @ b
    out = np.full((m, n), np.nan, np.float32)  # overwritten, never read
    gemm.nn(a, b, out)
    close(out, want)
    # accumulate into a strided window of a larger array, A read through a transpose
    big = np.ones((m, n + 9), np.float32)
    at = np.ascontiguousarray(a.T).T
    gemm.nn(at, b, big[:, 4:4 + n], add=True)
    close(big[:, 4:4 + n], want + 1)
    assert (big[:, :4] == 1).all() and (big[:, 4 + n:] == 1).all()


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_nt_matches_numpy(m, k, n, gemm):
    rng = np.random.default_rng(m * 1000 + k + n + 1)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32)
    want = a.astype(np.float64) @ b.T.astype(np.float64)
    out = np.full((m, n), np.nan, np.float32)
    gemm.nt(a, b, out)
    close(out, want)
    # rows of A and B strided (every other row of larger arrays), output accumulated
    a2 = np.zeros((2 * m, k + 3), np.float32)
    a2[::2, :k] = a
    b2 = np.zeros((2 * n, k + 5), np.float32)
    b2[::2, :k] = b
    big = np.ones((m, n + 2), np.float32)
    gemm.nt(a2[::2, :k], b2[::2, :k], big[:, 1:1 + n], add=True)
    close(big[:, 1:1 + n], want + 1)
    assert (big[:, 0] == 1).all() and (big[:, -1] == 1).all()


def test_empty_products(gemm):
    out = np.full((3, 4), 7.0, np.float32)
    gemm.nn(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), out)
    assert (out == 0).all()
    out[...] = 7
    gemm.nt(np.zeros((3, 0), np.float32), np.zeros((4, 0), np.float32), out, add=True)
    assert (out == 7).all()


def test_operands_must_be_float32_with_unit_column_stride(gemm):
    a = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="float32 array with unit column stride"):
        gemm.nn(a, np.ones((4, 4)), np.empty((4, 4), np.float32))
    with pytest.raises(ValueError, match="unit column stride"):
        gemm.nn(a, np.ones((4, 8), np.float32)[:, ::2], np.empty((4, 4), np.float32))


@pytest.mark.parametrize("m,k,n", [(33, 700, 77), (7, 3000, 40), (70, 50, 1000), (40, 100, 512)])
def test_small_blockings_split_k_and_n_into_many_blocks(m, k, n, gemm):
    # blocks far smaller than any cache: many K blocks (C accumulated between them), many
    # column blocks of B, the nt sums kept between K blocks
    # B always copied first / always read in place / copied when its rows alias
    for pack in ((1, 1 << 30, 0), (1 << 30, 0, 0), (1 << 30, 0, 1)):
        small = Gemm(gemm.isa, Blocking(64, 64 * 4 * 64, TILES[gemm.isa].lanes * 4, *pack))
        check_small(small, m, k, n)


def check_small(small, m, k, n):
    rng = np.random.default_rng(k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    out = np.empty((m, n), np.float32)
    close(small.nn(a, b, out), a.astype(np.float64) @ b)
    bt = np.ascontiguousarray(b.T)
    close(small.nt(a, bt, out), a.astype(np.float64) @ b)


def test_blocking_follows_the_caches():
    for isa, tile in TILES.items():
        small, large = blocking(isa, 32 << 10, 512 << 10), blocking(isa, 48 << 10, 2 << 20)
        assert small.kc <= large.kc and small.b_bytes < large.b_bytes
        # nn's B strip of kc rows and nt's TB rows of kb elements fit in L1
        assert small.kc * tile.nr * 4 <= 32 << 10 and small.kb * tile.tb * 4 <= 32 << 10
