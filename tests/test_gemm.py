"""Our float32 GEMMs (kernels/_gemm.py) against float64 NumPy products: ragged edges, long
K, strided operands and outputs, accumulation. They run here whatever the CPU (without
AVX-512 LLVM splits the vectors: slower, same results); the convolutions' split of a batch
over threads is tested in test_kernels_conv.py."""

import numpy as np
import pytest

from convnetpy.kernels import _compiled

gemm = pytest.importorskip("convnetpy.kernels._gemm",
                           reason="numba is not installed (pip install -e '.[fast]')")

SHAPES = [  # (M, K, N)
    (1, 1, 1), (5, 7, 3), (8, 32, 32), (9, 17, 33), (33, 100, 77), (16, 75, 1000),
    (64, 576, 256), (576, 64, 96), (17, 600, 50), (3, 3000, 7),
]


def close(got, want):
    scale = np.abs(want).max() if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * max(scale, 1.0))


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_nn_matches_numpy(m, k, n):
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
def test_nt_matches_numpy(m, k, n):
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


def test_empty_products():
    out = np.full((3, 4), 7.0, np.float32)
    gemm.nn(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), out)
    assert (out == 0).all()
    out[...] = 7
    gemm.nt(np.zeros((3, 0), np.float32), np.zeros((4, 0), np.float32), out, add=True)
    assert (out == 7).all()


def test_operands_must_be_float32_with_unit_column_stride():
    a = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="float32 array with unit column stride"):
        gemm.nn(a, np.ones((4, 4)), np.empty((4, 4), np.float32))
    with pytest.raises(ValueError, match="unit column stride"):
        gemm.nn(a, np.ones((4, 8), np.float32)[:, ::2], np.empty((4, 4), np.float32))


def test_switch():
    was = _compiled.use_gemm(False)
    try:
        assert _compiled.gemm() is None
        _compiled.use_gemm(True)
        assert (_compiled.gemm() is gemm) == (_compiled.loops() is not None)
        loops_were = _compiled.use_compiled(False)
        try:
            assert _compiled.gemm() is None  # they need the compiled loops
            assert _compiled.describe() == "NumPy only"
        finally:
            _compiled.use_compiled(loops_were)
        _compiled.use_gemm(None)  # where the CPU has AVX-512
        assert (_compiled.gemm() is gemm) == gemm.available()
        assert ("AVX-512 GEMM" in _compiled.describe()) == gemm.available()
    finally:
        _compiled.use_gemm(was)


def test_switch_by_environment_and_runtime():
    import os
    import subprocess
    import sys

    from convnetpy import runtime

    assert runtime.use_gemm is _compiled.use_gemm
    code = "from convnetpy import runtime; print(runtime.compiled_loops())"
    env = {k: v for k, v in os.environ.items() if k not in ("CONVNETPY_COMPILED",)}
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**env, "CONVNETPY_GEMM": "0"}).stdout.strip()
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        check=True, env={**env, "CONVNETPY_GEMM": "1"}).stdout.strip()
    assert not off.endswith("AVX-512 GEMM")
    assert on == off + ", AVX-512 GEMM"
