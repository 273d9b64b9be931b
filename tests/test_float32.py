"""The float32 path: every op's float32 result (forward and gradients) within a relative
Frobenius error of 1e-5 of the float64 result on the same inputs."""

import numpy as np
import pytest
from conftest import rel_fro

import convnetpy as cp
import convnetpy.functional as F

# every test here runs on the reference kernels and on each compute path this CPU runs
pytestmark = pytest.mark.usefixtures("every_path")

OPS = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=2),
               [(4, 4, 13, 11), (6, 2, 3, 3), (6,)]),
    "conv2d_1x1": (lambda x, w: F.conv2d(x, w), [(4, 8, 9, 9), (16, 8, 1, 1)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [(4, 3, 11, 9)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                   [(4, 3, 11, 9)]),
    "adaptive_avg": (lambda x: F.adaptive_avg_pool2d(x, (3, 4)), [(4, 3, 11, 9)]),
    "adaptive_max": (lambda x: F.adaptive_max_pool2d(x, (3, 4)), [(4, 3, 11, 9)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), [(16, 50), (20, 50), (20,)]),
    "activations": (lambda x: F.relu(x) + F.leaky_relu(x, 0.1) + F.sigmoid(x) + F.tanh(x),
                    [(8, 50)]),
    "gelu": (lambda x: F.gelu(x), [(8, 50)]),
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                   [(8, 6, 5, 5), (6,), (6,)]),
    "softmax": (lambda x: F.softmax(x, 1) * F.log_softmax(x, 1), [(8, 10)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, cp.tensor(np.arange(8) % 10),
                                                label_smoothing=0.1), [(8, 10)]),
    "mse": (lambda x, t: F.mse_loss(x, t), [(8, 10), (8, 10)]),
    "pad_reflect": (lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"), [(2, 3, 5, 6)]),
}


@pytest.mark.parametrize("name", list(OPS))
def test_float32_close_to_float64(name):
    fn, shapes = OPS[name]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    results = {}
    for dtype in (np.float64, np.float32):
        ts = [cp.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        out = fn(*ts)
        assert out.dtype == dtype, f"{name} returned {out.dtype} for {dtype.__name__} input"
        proj = rng.standard_normal(out.shape) if dtype == np.float64 else results["proj"]
        results["proj"] = proj
        (out * cp.tensor(proj.astype(dtype))).sum().backward()
        results[dtype] = [out.numpy()] + [t.grad.numpy() for t in ts]
        assert all(g.dtype == dtype for g in results[dtype])
    for k, (a, b) in enumerate(zip(results[np.float32], results[np.float64])):
        assert rel_fro(a, b) <= 1e-5, f"{name} result {k}: {rel_fro(a, b):.3g}"
