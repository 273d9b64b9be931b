"""conv2d kernel against the loop reference: case table + hypothesis configurations."""

import numpy as np
import pytest
import reference as ref
from conftest import OnPath, assert_ref, our_gemms, spy_threads
from hypothesis import given, settings
from hypothesis import strategies as st

from convnetpy.backend import conv as fast_conv
from convnetpy.kernels import conv as reference_conv

# every test here runs on the reference kernel and on each compute path this CPU runs
pytestmark = pytest.mark.usefixtures("every_path")
kconv = OnPath(reference_conv)
conv2d_forward, conv2d_backward = kconv.conv2d_forward, kconv.conv2d_backward

# (N, C, H, W, O, K(h,w), stride, pads, dilation, groups, bias)
CASES = {
    "batch1_3x3": (1, 2, 5, 5, 3, (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, True),
    "odd_nonsquare": (2, 3, 7, 5, 4, (3, 2), (1, 1), ((1, 1), (0, 0)), (1, 1), 1, True),
    "kernel_equals_input": (2, 2, 4, 3, 3, (4, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, True),
    "stride_leftover": (2, 2, 8, 7, 2, (3, 3), (2, 3), ((0, 0), (0, 0)), (1, 1), 1, True),
    "padding": (1, 3, 5, 6, 2, (5, 5), (1, 1), ((2, 2), (2, 2)), (1, 1), 1, True),
    "asymmetric_same_even": (1, 2, 6, 5, 2, (4, 2), (1, 1), ((1, 2), (0, 1)), (1, 1), 1, False),
    "dilation": (2, 2, 9, 8, 3, (3, 2), (1, 2), ((1, 1), (2, 2)), (2, 3), 1, True),
    "groups": (2, 4, 6, 6, 6, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 2, True),
    "depthwise": (2, 3, 5, 5, 3, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 3, False),
    "depthwise_multiplier": (1, 2, 5, 4, 4, (2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), 2, True),
    "one_by_one": (2, 5, 4, 3, 3, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, True),
    "one_by_one_strided": (2, 3, 5, 5, 2, (1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), 1, True),
    "one_by_one_groups": (3, 6, 4, 3, 4, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 2, True),
    "no_bias": (2, 2, 5, 5, 2, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, False),
    # stride 1 on wide rows: whole padded rows are computed and the extra outputs dropped
    "merged_rows": (3, 2, 5, 12, 3, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, True),
    "merged_rows_dilated": (2, 2, 7, 16, 2, (2, 3), (1, 1), ((0, 1), (2, 0)), (2, 2), 1, True),
    "merged_rows_groups": (3, 4, 4, 10, 4, (2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), 2, False),
}


_LOOP_RESULTS: dict = {}  # loop-reference results by case, shared by the paths


def check(n, c, h, w, o, k, stride, pads, dil, groups, bias, seed=0, dtype=np.float64):
    """Forward and every gradient against the float64 loop reference: each element within
    1e-10 of max(1, |value|) in float64; in float32 within 1e-5 of max(1, the largest
    |value| of that result) (its sums have up to ~900 terms)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // groups) + k).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None

    def agree(got, want, what):
        assert got.dtype == dtype, f"{what}: {got.dtype}"
        if dtype == np.float64:
            assert_ref(got, want, what=what)
        else:
            assert_ref(got / max(1.0, np.abs(want).max()), want / max(1.0, np.abs(want).max()),
                       1e-5, what=what)

    out, cache = conv2d_forward(x, wt, b, stride, pads, dil, groups)
    dout = rng.standard_normal(out.shape).astype(dtype)
    key = (n, c, h, w, o, k, stride, pads, dil, groups, bias, seed, np.dtype(dtype).name)
    if key not in _LOOP_RESULTS:  # the same inputs on every path: the loops run once
        r_out, r_back = ref.conv2d(*(None if a is None else a.astype(np.float64)
                                     for a in (x, wt, b)), stride, pads, dil, groups)
        _LOOP_RESULTS[key] = (r_out, *r_back(dout.astype(np.float64)))
    r_out, rdx, rdw, rdb = _LOOP_RESULTS[key]
    agree(out, r_out, "forward")
    dx, dw, db = conv2d_backward(dout, cache)
    agree(dx, rdx, "dx")
    agree(dw, rdw, "dw")
    if bias:
        agree(db, rdb, "db")
    else:
        assert db is None


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_conv2d_case_table(case):
    check(*CASES[case])


@pytest.fixture
def poisoned_chunks(monkeypatch):
    """One image per chunk, and every buffer the fast convolution takes from the pool
    handed out full of NaN: a result that reads an element the kernel did not write first
    comes out NaN."""
    real = fast_conv.empty

    def poisoned(shape, dtype):
        buf = real(shape, dtype)
        buf[...] = np.nan
        return buf

    monkeypatch.setattr(fast_conv, "CHUNK_BYTES", 1)
    monkeypatch.setattr(fast_conv, "GEMM_CHUNK_BYTES", 1)
    monkeypatch.setattr(fast_conv, "empty", poisoned)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_conv2d_chunked_with_poisoned_buffers(case, poisoned_chunks):
    n, *rest = CASES[case]
    check(n + 2, *rest)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_conv2d_float32_case_table(case):
    check(*CASES[case], dtype=np.float32)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_conv2d_float32_chunked_with_poisoned_buffers(case, poisoned_chunks):
    n, *rest = CASES[case]
    check(n + 2, *rest, dtype=np.float32)


@pytest.mark.parametrize("shape", [
    # (N, C, H, W, O, K, stride, pads): large enough that the batch is split over 2 threads,
    # with ragged edges for the GEMMs (O % 8, pixels % 32)
    (4, 16, 16, 15, 11, (3, 3), (1, 1), ((1, 1), (1, 1))),
    (8, 16, 24, 24, 40, (3, 3), (2, 2), ((1, 1), (1, 1))),
    (4, 64, 24, 23, 9, (1, 1), (1, 1), ((0, 0), (0, 0))),
])
@pytest.mark.slow
def test_conv2d_float32_split_over_threads(shape, every_path, monkeypatch):
    pieces = spy_threads(monkeypatch, fast_conv)
    check(*shape, (1, 1), 1, True, dtype=np.float32)
    # our GEMMs split the batch into pieces for the threads (forward and backward); NumPy's
    # path leaves that to its BLAS
    if our_gemms(every_path):
        assert len(pieces) >= 4 and all(hi > lo for _, lo, hi in pieces)
    else:
        assert not pieces


@pytest.mark.parametrize("case", ["odd_nonsquare", "stride_leftover", "dilation", "groups",
                                  "one_by_one", "one_by_one_groups"])
@pytest.mark.parametrize("need", [(True, False, False), (False, True, True)])
@pytest.mark.parametrize("grad", ["broadcast", "strided"])
def test_conv2d_float32_gradient_views_and_subsets(case, need, grad):
    # the gradient of a sum (one value broadcast) and a strided view, each gradient asked for
    # alone: the same as the reference, and None where not asked for
    n, c, h, w, o, k, stride, pads, dil, groups, bias = CASES[case]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c // groups) + k).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    out, cache = conv2d_forward(x, wt, b, stride, pads, dil, groups)
    if grad == "broadcast":
        dout = np.broadcast_to(np.float32(0.5), out.shape)
    else:
        dout = rng.standard_normal(out.shape[:3] + (2 * out.shape[3],)).astype(np.float32)
        dout = dout[..., ::2]
    got = conv2d_backward(dout, cache, need)
    _, r_back = ref.conv2d(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64),
                           stride, pads, dil, groups)
    for g, want, asked, what in zip(got, r_back(dout.astype(np.float64)), need,
                                    ("dx", "dw", "db")):
        if not asked:
            assert g is None, what
            continue
        scale = max(1.0, np.abs(want).max())
        assert g.dtype == np.float32
        assert_ref(g / scale, want / scale, 1e-5, what=what)


@pytest.mark.parametrize("case", ["padding", "one_by_one", "groups"])
def test_conv2d_float32_forward_float64_gradient(case):
    # a float64 gradient into a float32 forward's backward: computed (in NumPy's GEMMs, as
    # ours take float32 only) and returned in float64, as by the NumPy path
    n, c, h, w, o, k, stride, pads, dil, groups, bias = CASES[case]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c // groups) + k).astype(np.float32)
    out, cache = conv2d_forward(x, wt, None, stride, pads, dil, groups)
    dout = rng.standard_normal(out.shape)
    dx, dw, _ = conv2d_backward(dout, cache)
    _, r_back = ref.conv2d(x.astype(np.float64), wt.astype(np.float64), None, stride, pads,
                           dil, groups)
    rdx, rdw, _ = r_back(dout)
    assert dx.dtype == dw.dtype == np.float64
    assert_ref(dx, rdx, 1e-5, what="dx")
    assert_ref(dw, rdw, 1e-5, what="dw")


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 2))
    og = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = ((draw(st.integers(0, 2)), draw(st.integers(0, 2))),
            (draw(st.integers(0, 2)), draw(st.integers(0, 2))))
    # input at least as large as the dilated kernel after padding
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - sum(pads[0])), 7))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - sum(pads[1])), 7))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return (draw(st.integers(1, 2)), cg * groups, h, w, og * groups, (kh, kw), stride, pads,
            (dh, dw), groups, draw(st.booleans()))


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(cfg=conv_configs(), seed=st.integers(0, 2**16))
def test_conv2d_hypothesis(cfg, seed):
    check(*cfg, seed=seed)
