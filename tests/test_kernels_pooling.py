"""Pooling and padding kernels against the loop references."""

import numpy as np
import pytest
import reference as ref
from conftest import OnPath, assert_ref
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convnetpy.kernels import padding, pooling
from convnetpy.shape import ShapeError

# every test here runs on the reference kernels and on each compute path this CPU runs
pytestmark = pytest.mark.usefixtures("every_path")
kp, kpool = OnPath(padding), OnPath(pooling)

# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = {
    "batch1_2x2": (1, 1, 4, 4, (2, 2), (2, 2), (0, 0), (1, 1), False),
    "odd_nonsquare": (2, 3, 7, 5, (3, 2), (2, 1), (1, 0), (1, 1), False),
    "kernel_equals_input": (2, 2, 3, 4, (3, 4), (1, 1), (0, 0), (1, 1), False),
    "stride_leftover": (1, 2, 7, 8, (2, 3), (3, 2), (0, 0), (1, 1), False),
    "padding": (2, 2, 5, 5, (3, 3), (2, 2), (1, 1), (1, 1), False),
    "dilation": (1, 2, 9, 8, (2, 3), (1, 2), (1, 1), (3, 2), False),
    "ceil_mode": (2, 1, 5, 7, (2, 3), (2, 2), (0, 1), (1, 1), True),
    "ceil_mode_drop_last": (1, 1, 6, 6, (3, 3), (3, 3), (1, 1), (1, 1), True),
    "overlap": (2, 2, 6, 6, (3, 3), (1, 1), (0, 0), (1, 1), False),
    "one_by_one": (1, 2, 4, 3, (1, 1), (2, 2), (0, 0), (1, 1), False),
}


def check_max(n, c, h, w, k, s, p, d, ceil, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (n, c, h, w)).astype(float) if ties else rng.standard_normal(
        (n, c, h, w))
    out, cache = kpool.max_pool2d_forward(x, k, s, p, d, ceil)
    r_out, r_idx, r_back = ref.max_pool2d(x, k, s, p, d, ceil)
    assert_ref(out, r_out, what="forward")
    # a window lying wholly in the padding has no maximum (-inf) and no meaningful index
    real = np.isfinite(r_out)
    np.testing.assert_array_equal(kpool.max_pool2d_indices(cache)[real], r_idx[real])
    dout = rng.standard_normal(out.shape)
    assert_ref(kpool.max_pool2d_backward(dout, cache), r_back(dout), what="dx")


@pytest.mark.parametrize("case", list(MAX_CASES), ids=list(MAX_CASES))
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_max_pool_case_table(case, ties):
    check_max(*MAX_CASES[case], ties=ties)


@st.composite
def pool_configs(draw, dilation=True):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    p = (draw(st.integers(0, (d[0] * (k[0] - 1) + 1) // 2)),
         draw(st.integers(0, (d[1] * (k[1] - 1) + 1) // 2)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    h = draw(st.integers(max(1, d[0] * (k[0] - 1) + 1 - 2 * p[0]), 8))
    w = draw(st.integers(max(1, d[1] * (k[1] - 1) + 1 - 2 * p[1]), 8))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w, k, s, p, d,
            draw(st.booleans()))


@settings(max_examples=200, deadline=None)
@given(cfg=pool_configs(), seed=st.integers(0, 2**16), ties=st.booleans())
def test_max_pool_hypothesis(cfg, seed, ties):
    check_max(*cfg, seed=seed, ties=ties)


def check_avg(n, c, h, w, k, s, p, ceil, cip, div, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    out, cache = kpool.avg_pool2d_forward(x, k, s, p, ceil, cip, div)
    r_out, r_back = ref.avg_pool2d(x, k, s, p, ceil, cip, div)
    assert_ref(out, r_out, what="forward")
    dout = rng.standard_normal(out.shape)
    assert_ref(kpool.avg_pool2d_backward(dout, cache), r_back(dout), what="dx")


AVG_CASES = {
    "batch1_2x2": (1, 1, 4, 4, (2, 2), (2, 2), (0, 0), False, True, None),
    "odd_nonsquare": (2, 3, 7, 5, (3, 2), (2, 1), (1, 0), False, True, None),
    "exclude_pad": (2, 2, 5, 5, (3, 3), (2, 2), (1, 1), False, False, None),
    "ceil_include_pad": (1, 2, 5, 7, (3, 3), (2, 2), (1, 1), True, True, None),
    "ceil_exclude_pad": (1, 2, 5, 7, (3, 3), (2, 2), (1, 1), True, False, None),
    "divisor_override": (2, 1, 6, 6, (2, 3), (2, 2), (1, 1), False, True, 5),
    "kernel_equals_input": (2, 2, 3, 4, (3, 4), (1, 1), (0, 0), False, True, None),
    "stride_leftover": (1, 2, 7, 8, (2, 3), (3, 2), (0, 0), False, True, None),
}


@pytest.mark.parametrize("case", list(AVG_CASES), ids=list(AVG_CASES))
def test_avg_pool_case_table(case):
    check_avg(*AVG_CASES[case])


@settings(max_examples=200, deadline=None)
@given(cfg=pool_configs(dilation=False), seed=st.integers(0, 2**16), cip=st.booleans(),
       div=st.sampled_from([None, None, 3]))
@pytest.mark.slow
def test_avg_pool_hypothesis(cfg, seed, cip, div):
    n, c, h, w, k, s, p, _, ceil = cfg
    check_avg(n, c, h, w, k, s, p, ceil, cip, div, seed)


def check_adaptive(n, c, h, w, oh, ow, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (n, c, h, w)).astype(float) if ties else rng.standard_normal(
        (n, c, h, w))
    dout = rng.standard_normal((n, c, oh, ow))
    out, cache = kpool.adaptive_avg_pool2d_forward(x, (oh, ow))
    r_out, r_back = ref.adaptive_avg_pool2d(x, (oh, ow))
    assert_ref(out, r_out, what="avg forward")
    assert_ref(kpool.adaptive_avg_pool2d_backward(dout, cache), r_back(dout), what="avg dx")
    out, cache = kpool.adaptive_max_pool2d_forward(x, (oh, ow))
    r_out, r_idx, r_back = ref.adaptive_max_pool2d(x, (oh, ow))
    assert_ref(out, r_out, what="max forward")
    np.testing.assert_array_equal(cache[0], r_idx)
    assert_ref(kpool.adaptive_max_pool2d_backward(dout, cache), r_back(dout), what="max dx")


@pytest.mark.parametrize("shape", [
    (1, 1, 4, 4, 2, 2), (2, 3, 5, 7, 3, 3), (2, 2, 7, 5, 4, 2),  # overlapping bins
    (1, 2, 6, 6, 1, 1), (2, 1, 3, 3, 5, 4),  # output larger than input
    (1, 1, 10, 9, 7, 7),
])
def test_adaptive_case_table(shape):
    check_adaptive(*shape)
    check_adaptive(*shape, ties=True)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9),
       oh=st.integers(1, 6), ow=st.integers(1, 6), seed=st.integers(0, 2**16),
       ties=st.booleans())
def test_adaptive_hypothesis(n, c, h, w, oh, ow, seed, ties):
    check_adaptive(n, c, h, w, oh, ow, seed, ties)


def test_global_avg_pool_matches_adaptive_1x1():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    out, cache = kpool.global_avg_pool2d_forward(x)
    r_out, r_back = ref.adaptive_avg_pool2d(x, (1, 1))
    assert_ref(out, r_out)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    assert_ref(kpool.global_avg_pool2d_backward(dout, cache), r_back(dout))


# ---------------------------------------------------------------- padding
def check_pad(shape, p, mode, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    out, cache = kp.pad_forward(x, p, mode, 0.5 if mode == "constant" else 0.0)
    r_out, r_back = ref.pad(x, p, mode, 0.5)
    assert_ref(out, r_out, what="forward")
    dout = rng.standard_normal(out.shape)
    assert_ref(kp.pad_backward(dout, cache), r_back(dout), what="dx")


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("p", [(1, 1, 1, 1), (2, 0, 1, 3), (0, 0, 0, 0), (3, 2, 2, 1)])
def test_pad_case_table(mode, p):
    check_pad((2, 2, 4, 5), p, mode)


@settings(max_examples=200, deadline=None)
@given(mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       h=st.integers(1, 6), w=st.integers(1, 6), p=st.tuples(*[st.integers(0, 5)] * 4),
       seed=st.integers(0, 2**16))
def test_pad_hypothesis(mode, h, w, p, seed):
    left, right, top, bottom = p
    if mode == "reflect":
        assume(max(left, right) < w and max(top, bottom) < h)
    if mode == "circular":
        assume(max(left, right) <= w and max(top, bottom) <= h)
    check_pad((1, 2, h, w), p, mode, seed)


def test_constant_negative_padding_crops():
    x = np.arange(20.0).reshape(1, 1, 4, 5)
    out, cache = kp.pad_forward(x, (-1, 2, 0, -2), "constant", 0.0)
    r_out = np.pad(x[:, :, :2, 1:], ((0, 0), (0, 0), (0, 0), (0, 2)))
    assert_ref(out, r_out)
    dx = kp.pad_backward(np.ones(out.shape), cache)
    assert dx.sum() == 2 * 4 and dx[0, 0, :2, 1:].sum() == 8


def test_reflect_pad_too_large_is_rejected():
    with pytest.raises(ShapeError, match="reflect padding .* must be smaller than the input"):
        kp.pad_forward(np.zeros((1, 1, 3, 3)), (3, 0, 0, 0), "reflect")


@pytest.mark.parametrize("case", ["padding", "overlap", "batch1_2x2"])
def test_max_pool_backward_float32_views_broadcast_and_threads(case):
    # float32, an input that is a transposed view, a broadcast gradient (of a sum), and a
    # batch large enough to be split over two threads
    from convnetpy.backend import threads as _parallel

    _, _, h, w, k, s, p, d, ceil = MAX_CASES[case]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 64, w, h)).astype(np.float32).transpose(0, 1, 3, 2)
    assert not x.flags.c_contiguous
    was = _parallel.get_num_threads()
    _parallel.set_num_threads(2)
    try:
        out, cache = kpool.max_pool2d_forward(x, k, s, p, d, ceil)
        r_out, _, r_back = ref.max_pool2d(x.astype(np.float64), k, s, p, d, ceil)
        assert_ref(out, r_out, what="forward")
        for dout in (rng.standard_normal(out.shape).astype(np.float32),
                     np.broadcast_to(np.float32(0.5), out.shape)):
            got = kpool.max_pool2d_backward(dout, cache)
            assert got.dtype == np.float32
            assert_ref(got, r_back(dout.astype(np.float64)), 1e-6, what="dx")
    finally:
        _parallel.set_num_threads(was)


@pytest.mark.parametrize("case", ["padding", "overlap", "batch1_2x2", "dilation"])
def test_max_pool_backward_nan_windows_same_in_both_codes(case):
    # NaN windows send their gradient to the window's last NaN (the loop reference does not
    # model NaN): the compiled loop and the NumPy code must agree (to the order in which
    # overlapping windows' gradients are added)
    from convnetpy.backend import cpu, dispatch

    n, c, h, w, k, s, p, d, ceil = MAX_CASES[case]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, c, h, w))
    x[0, 0, 0, :2] = np.nan
    x[-1, -1, -1, -1] = np.nan
    out, cache = kpool.max_pool2d_forward(x, k, s, p, d, ceil)
    assert np.isnan(out).any()
    dout = rng.standard_normal(out.shape)
    if cpu.runnable("generic", cpu.detect()):
        pytest.skip("numba is not installed: no compiled loop to compare")
    got = [dispatch.table(path)["max_pool2d"].backward(dout, cache)
           for path in ("generic", "reference")]
    np.testing.assert_allclose(got[0], got[1], rtol=1e-12, atol=1e-15)


def test_max_pool_2x2_ties_and_nans_in_every_position():
    # every pattern of ties and NaN in a 2x2 window, one window each: the first maximum (or
    # the last NaN) gets the gradient, on the vectorised 2x2 loop as in the reference
    import itertools

    from convnetpy.backend import cpu, dispatch

    if cpu.runnable("generic", cpu.detect()):
        pytest.skip("numba is not installed: no compiled loop to compare")
    windows = list(itertools.product([0.0, 1.0, np.nan], repeat=4))
    x = np.zeros((1, 1, 2, 2 * len(windows)), np.float32)
    for i, (a, b, c, d) in enumerate(windows):
        x[0, 0, :, 2 * i: 2 * i + 2] = [[a, b], [c, d]]
    out, cache = dispatch.table("generic")["max_pool2d"].forward(x, (2, 2), (2, 2))
    want_out, _ = dispatch.table("reference")["max_pool2d"].forward(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(out, want_out)  # NaN where the window holds one
    dout = np.arange(1, out.size + 1, dtype=np.float32).reshape(out.shape)
    got = dispatch.table("generic")["max_pool2d"].backward(dout, cache)
    want = dispatch.table("reference")["max_pool2d"].backward(dout, cache)
    np.testing.assert_array_equal(got, want)
    assert (got != 0).sum() == len(windows)  # one winner per window
