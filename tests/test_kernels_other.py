"""Linear, activation, batch-norm, softmax, loss and dropout kernels against the loop
references."""

import math

import numpy as np
import pytest
import reference as ref
from conftest import OnPath, assert_ref, our_gemms, spy_threads
from hypothesis import given, settings
from hypothesis import strategies as st

from convnetpy.backend import linear as fast_linear
from convnetpy.kernels import activation, dropout, linear, loss, normalization

# every test here runs on the reference kernels and on each compute path this CPU runs
pytestmark = pytest.mark.usefixtures("every_path")
ka, kd, kl = OnPath(activation), OnPath(dropout), OnPath(linear)
kloss, kn = OnPath(loss), OnPath(normalization)


# ---------------------------------------------------------------- linear
def check_linear(lead, fin, fout, bias, seed=0):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(lead + (fin,)), rng.standard_normal((fout, fin))
    b = rng.standard_normal(fout) if bias else None
    out, cache = kl.linear_forward(x, w, b)
    r_out, r_back = ref.linear(x, w, b)
    assert_ref(out, r_out)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(kl.linear_backward(dout, cache), r_back(dout)):
        if want is None:
            assert got is None
        else:
            assert_ref(got, want)


@pytest.mark.parametrize("lead,fin,fout,bias", [
    ((1,), 3, 2, True), ((4,), 7, 5, True), ((2, 3), 4, 3, False), ((5,), 1, 1, True),
])
def test_linear_case_table(lead, fin, fout, bias):
    check_linear(lead, fin, fout, bias)


@settings(max_examples=200, deadline=None)
@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
       fin=st.integers(1, 6), fout=st.integers(1, 6), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_linear_hypothesis(lead, fin, fout, bias, seed):
    check_linear(lead, fin, fout, bias, seed)


@pytest.mark.parametrize("lead,fin,fout,bias,views", [
    ((1,), 3, 2, True, False), ((5, 3), 7, 5, False, True),
    ((37,), 40, 11, True, True),  # ragged edges for the GEMM tiles
    ((400,), 700, 12, True, False),  # large enough to be split over two threads
])
@pytest.mark.slow
def test_linear_float32(lead, fin, fout, bias, views, every_path, monkeypatch):
    # every result within 1e-5 of the float64 reference (scaled by its largest value), for
    # contiguous inputs and for strided views, each gradient alone and all together
    rng = np.random.default_rng(5)
    x = rng.standard_normal(lead + (fin,)).astype(np.float32)
    w = rng.standard_normal((fout, fin)).astype(np.float32)
    if views:  # the same values behind other strides
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, -1, 0)), 0, -1)
        w = np.repeat(w, 2, axis=1)[:, ::2]
    b = rng.standard_normal(fout).astype(np.float32) if bias else None
    dout = rng.standard_normal(lead + (fout,)).astype(np.float32)
    pieces = spy_threads(monkeypatch, fast_linear)
    out, cache = kl.linear_forward(x, w, b)
    r_out, r_back = ref.linear(*(None if a is None else a.astype(np.float64) for a in (x, w, b)))
    wants = [r_out] + list(r_back(dout.astype(np.float64)))
    gots = [out] + list(kl.linear_backward(dout, cache))
    for need in ([True, False, False], [False, True, False], [False, False, True]):
        alone = kl.linear_backward(dout, cache, need)
        gots += [g for g, n in zip(alone, need) if n]
        wants += [wt for wt, n in zip(wants[1:4], need) if n]
        assert all(g is None for g, n in zip(alone, need) if not n)
    for k, (got, want) in enumerate(zip(gots, wants)):
        if want is None:
            assert got is None
            continue
        assert got.dtype == np.float32 and got.shape == want.shape, k
        scale = max(1.0, np.abs(want).max())
        assert_ref(got / scale, want / scale, 1e-5, what=f"result {k}")
    if our_gemms(every_path) and fin == 700:
        assert len(pieces) > 3  # the product's rows (columns for dW) split for the threads
    elif not our_gemms(every_path):
        assert not pieces  # NumPy's BLAS does its own threading


# ---------------------------------------------------------------- activations
ACTS = {
    "relu": (ka.relu_forward, ka.relu_backward, {}),
    "leaky_relu": (ka.leaky_relu_forward, ka.leaky_relu_backward, {"negative_slope": 0.2}),
    "sigmoid": (ka.sigmoid_forward, ka.sigmoid_backward, {}),
    "tanh": (ka.tanh_forward, ka.tanh_backward, {}),
    "gelu": (ka.gelu_forward, ka.gelu_backward, {}),
    "gelu_tanh": (ka.gelu_forward, ka.gelu_backward, {"approximate": "tanh"}),
}


def check_act(name, x, seed=0):
    fwd, bwd, kw = ACTS[name]
    out, cache = fwd(x, **kw)
    r_out, r_back = ref.elementwise(name, x, slope=0.2)
    assert_ref(out, r_out)
    dout = np.random.default_rng(seed).standard_normal(x.shape)
    assert_ref(bwd(dout, cache), r_back(dout))


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_case_table(name):
    x = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0], [-30.0, 30.0, 1e-8, -1e-8, 2.0]])
    check_act(name, x)


@pytest.mark.parametrize("name", list(ACTS))
@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**16),
       shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple))
@pytest.mark.slow
def test_activation_hypothesis(name, seed, shape):
    check_act(name, 4 * np.random.default_rng(seed).standard_normal(shape), seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_takes_broadcast_gradients(dtype):
    # the gradient of a sum arrives as one value broadcast, a bias-like one as a row; big
    # enough that the work is split over the threads
    rng = np.random.default_rng(0)
    out, _ = ka.relu_forward(rng.standard_normal((64, 48, 50)).astype(dtype))
    for g in (np.array(1.5, dtype), rng.standard_normal((1, 48, 1)).astype(dtype)):
        want = np.broadcast_to(g, out.shape) * (out > 0)
        got = ka.relu_backward(np.broadcast_to(g, out.shape), out)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_float32_gelu_is_within_its_erf_approximation_of_exact():
    # float32 GELU runs its own vectorised erf and exp on the compiled paths: forward and
    # backward stay within 2e-6 of the exact values (scaled by max(1, |value|), as
    # assert_ref), over the range where the approximation changes and beyond; special values
    # as the reference: NaN stays NaN, -inf gives NaN (-inf * 0), huge |x| gives x or 0 (the
    # reference path's NumPy warns of those: wanted here)
    grid = np.concatenate([np.linspace(-12, 12, 40001), [-1e30, -88.0, -6.0, -0.0, 0.0,
                                                          1e-40, 3e19, 1e30]])
    x = grid.astype(np.float32)
    out, cache = ka.gelu_forward(x)
    dx = ka.gelu_backward(np.ones_like(x), cache)
    assert out.dtype == dx.dtype == np.float32
    r_out, r_back = ref.elementwise("gelu", x.astype(np.float64))
    assert_ref(out, r_out, tol=2e-6, what="forward")
    assert_ref(dx, r_back(np.ones(x.shape)), tol=2e-6, what="backward")
    special = np.array([np.nan, np.inf, -np.inf], np.float32)
    out, cache = ka.gelu_forward(special)
    dx = ka.gelu_backward(np.ones_like(special), cache)
    want_out, want_cache = activation.gelu_forward(special.astype(np.float64))
    want_dx = activation.gelu_backward(np.ones(3), want_cache)
    np.testing.assert_array_equal(out, want_out.astype(np.float32))
    np.testing.assert_array_equal(dx, want_dx.astype(np.float32))


def test_sum_all_is_accurate_and_repeatable():
    from convnetpy.kernels import reduce

    sum_all = OnPath(reduce).sum_all_forward

    x = np.random.default_rng(1).standard_normal(1 << 18).astype(np.float32) + 100
    exact = math.fsum(x.astype(np.float64))
    got = sum_all(x)
    assert got.dtype == np.float32 and got.shape == ()
    assert abs(float(got) - exact) <= 1e-6 * abs(exact)
    assert sum_all(x) == got  # fixed parts, fixed order
    assert sum_all(x.reshape(512, 512)[:, ::2]) == np.float32(x.reshape(512, 512)[:, ::2].sum())
    ints = np.arange(1000, dtype=np.int16)  # NumPy's own sum and result type
    assert sum_all(ints) == 499500 and sum_all(ints).dtype == np.sum(ints).dtype


def test_float16_runs_through_the_numpy_code():
    # the compiled loops take float32/float64 only; float16 must not reach them
    from convnetpy.kernels import conv as kconv
    from convnetpy.kernels import pooling as kpool

    conv, pooling = OnPath(kconv), OnPath(kpool)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float16)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)
    out, cache = conv.conv2d_forward(x, w, None, padding=((1, 1), (1, 1)))
    dx, dw, _ = conv.conv2d_backward(np.ones_like(out), cache)
    want, want_cache = conv.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None,
                                           padding=((1, 1), (1, 1)))
    want_dx, want_dw, _ = conv.conv2d_backward(np.ones(want.shape), want_cache)
    for got, exact in ((out, want), (dx, want_dx), (dw, want_dw)):
        assert got.dtype == np.float16
        np.testing.assert_allclose(got, exact, rtol=1e-2, atol=2e-2)
    r, r_cache = ka.relu_forward(out)
    assert r.dtype == np.float16 and ka.relu_backward(r, r_cache).dtype == np.float16
    p, p_cache = pooling.max_pool2d_forward(r, (2, 2), (2, 2))
    assert pooling.max_pool2d_backward(p, p_cache).dtype == np.float16
    bn, bn_cache = kn.batch_norm_forward(out, None, None, None, None, True, 0.1, 1e-5)
    assert bn.dtype == np.float16
    assert kn.batch_norm_backward(bn, bn_cache)[0].dtype == np.float16


def test_sigmoid_does_not_overflow():
    with np.errstate(over="raise"):
        out, _ = ka.sigmoid_forward(np.array([-1000.0, 1000.0]))
    assert out.tolist() == [0.0, 1.0]


# ---------------------------------------------------------------- batch norm
def check_bn(shape, seed=0, eps=1e-5):
    rng = np.random.default_rng(seed)
    x = 3 * rng.standard_normal(shape) + 1
    c = shape[1]
    g, b = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = np.zeros(c), np.ones(c)
    out, cache = kn.batch_norm_forward(x, g, b, rm, rv, True, 0.1, eps)
    r_out, r_back = ref.batch_norm_train(x, g, b, eps)
    assert_ref(out, r_out, what="forward")
    dout = rng.standard_normal(shape)
    for got, want, what in zip(kn.batch_norm_backward(dout, cache), r_back(dout),
                               ("dx", "dgamma", "dbeta")):
        assert_ref(got, want, what=what)
    # running statistics: momentum 0.1 on the batch mean and the unbiased variance
    axes = (0,) + tuple(range(2, len(shape)))
    n = x.size // c
    assert_ref(rm, 0.1 * x.mean(axis=axes))
    assert_ref(rv, 0.9 + 0.1 * x.var(axis=axes) * n / (n - 1))
    # evaluation uses the running statistics
    out_e, cache_e = kn.batch_norm_forward(x, g, b, rm, rv, False, 0.1, eps)
    bs = (1, c) + (1,) * (len(shape) - 2)
    want = (x - rm.reshape(bs)) / np.sqrt(rv.reshape(bs) + eps) * g.reshape(bs) + b.reshape(bs)
    assert_ref(out_e, want)
    dx_e = kn.batch_norm_backward(dout, cache_e)[0]
    assert_ref(dx_e, dout * (g / np.sqrt(rv + eps)).reshape(bs))


@pytest.mark.parametrize("shape", [(2, 3), (5, 2, 4), (2, 3, 4, 5), (1, 2, 3, 3), (4, 1, 1, 1)])
def test_batch_norm_case_table(shape):
    check_bn(shape)


@settings(max_examples=200, deadline=None)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4),
                       st.integers(1, 4)).filter(lambda s: s[0] * s[2] * s[3] > 1),
       seed=st.integers(0, 2**16))
def test_batch_norm_hypothesis(shape, seed):
    check_bn(shape, seed)


def test_batch_norm_single_value_per_channel_is_rejected_in_training():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        kn.batch_norm_forward(np.zeros((1, 3)), None, None, None, None, True, 0.1, 1e-5)


# ---------------------------------------------------------------- softmax, losses
def check_softmax(shape, dim, seed=0):
    rng = np.random.default_rng(seed)
    x = 5 * rng.standard_normal(shape)
    dout = rng.standard_normal(shape)
    xm = np.moveaxis(x, dim, -1)
    for fwd, bwd, rfn in ((kloss.log_softmax_forward, kloss.log_softmax_backward,
                           ref.log_softmax_rows),
                          (kloss.softmax_forward, kloss.softmax_backward, ref.softmax_rows)):
        out, cache = fwd(x, dim)
        r_out, r_back = rfn(xm)
        assert_ref(out, np.moveaxis(r_out, -1, dim))
        assert_ref(bwd(dout, cache), np.moveaxis(r_back(np.moveaxis(dout, dim, -1)), -1, dim))


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
       data=st.data(), seed=st.integers(0, 2**16))
def test_softmax_hypothesis(shape, data, seed):
    check_softmax(shape, data.draw(st.integers(0, len(shape) - 1)), seed)


def test_log_softmax_is_stable_for_huge_logits():
    out, _ = kloss.log_softmax_forward(np.array([[1000.0, 0.0, -1000.0]]), 1)
    assert np.isfinite(out).all()
    assert_ref(out, [[0.0, -1000.0, -2000.0]])


def check_ce(n, c, extra, weighted, ignore, reduction, smoothing, seed=0):
    rng = np.random.default_rng(seed)
    logits = 3 * rng.standard_normal((n, c) + extra)
    target = rng.integers(0, c, (n,) + extra)
    if ignore and target.size > 1:
        target.flat[0] = -100
    weight = rng.uniform(0.2, 2.0, c) if weighted else None
    logp, lcache = kloss.log_softmax_forward(logits, 1)
    loss, cache = kloss.nll_loss_forward(logp, target, weight, -100, reduction, smoothing)
    r_loss, r_back = ref.cross_entropy(logits, target, weight, -100, reduction, smoothing)
    assert_ref(loss, r_loss, what="loss")
    dout = rng.standard_normal(np.shape(r_loss)) if reduction == "none" else np.array(1.7)
    dlogits = kloss.log_softmax_backward(kloss.nll_loss_backward(dout, cache), lcache)
    assert_ref(dlogits, r_back(dout), what="dlogits")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted,ignore,smoothing", [
    (False, False, 0.0), (True, False, 0.0), (False, True, 0.0), (True, True, 0.1),
    (False, False, 0.3),
])
def test_cross_entropy_case_table(reduction, weighted, ignore, smoothing):
    check_ce(4, 5, (), weighted, ignore, reduction, smoothing)
    check_ce(2, 3, (2, 3), weighted, ignore, reduction, smoothing)  # (N, C, d1, d2)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 5),
       extra=st.sampled_from([(), (2,), (2, 3)]), weighted=st.booleans(),
       ignore=st.booleans(), reduction=st.sampled_from(["mean", "sum", "none"]),
       smoothing=st.sampled_from([0.0, 0.1, 0.5]), seed=st.integers(0, 2**16))
@pytest.mark.slow
def test_cross_entropy_hypothesis(n, c, extra, weighted, ignore, reduction, smoothing, seed):
    check_ce(n, c, extra, weighted, ignore, reduction, smoothing, seed)


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
       reduction=st.sampled_from(["mean", "sum", "none"]), weighted=st.booleans(),
       seed=st.integers(0, 2**16))
def test_mse_hypothesis(shape, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    x, t = rng.standard_normal(shape), rng.standard_normal(shape)
    w = rng.uniform(0.1, 2.0, shape) if weighted else None
    out, cache = kloss.mse_loss_forward(x, t, reduction, w)
    r_out, r_back = ref.mse(x, t, reduction, w)
    assert_ref(out, r_out)
    dout = rng.standard_normal(np.shape(r_out))
    dx, dt, dw = kloss.mse_loss_backward(dout, cache)
    rdx, rdw = r_back(dout)
    assert_ref(dx, rdx)
    assert_ref(dt, -rdx)
    if weighted:
        assert_ref(dw, rdw)
    else:
        assert dw is None


# ---------------------------------------------------------------- dropout
@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
       p=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_dropout_hypothesis(shape, p, seed):
    x = np.random.default_rng(seed).standard_normal(shape) + 5.0  # never exactly zero
    out, mask = kd.dropout_forward(x, p, np.random.default_rng(seed))
    kept = out != 0
    if p < 1:
        assert_ref(out[kept], x[kept] / (1 - p))
    else:
        assert not kept.any()
    dout = np.random.default_rng(seed + 1).standard_normal(shape)
    assert_ref(kd.dropout_backward(dout, mask), np.where(kept, dout / (1 - p) if p < 1 else 0,
                                                         0))

@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_dropout_is_inverted_and_seeded(p):
    x = np.random.default_rng(1).standard_normal((200, 50))
    out, mask = kd.dropout_forward(x, p, np.random.default_rng(7))
    out2, _ = kd.dropout_forward(x, p, np.random.default_rng(7))
    np.testing.assert_array_equal(out, out2)
    kept = mask != 0
    if p < 1:
        assert_ref(out[kept], x[kept] / (1 - p))
        assert abs(kept.mean() - (1 - p)) < 0.02
    else:
        assert not kept.any()
    assert (out[~kept] == 0).all()
    dout = np.ones_like(x)
    assert_ref(kd.dropout_backward(dout, mask), mask)
