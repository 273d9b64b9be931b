"""The summary's training-memory estimate against the measured peak (tracemalloc) of one
training step: forward, loss, backward and an SGD-momentum update, gradients set to None
before it as ``zero_grad`` does by default."""

import gc
import tracemalloc

import numpy as np
import pytest

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import models, optim
from convnetpy.backend import memory, select

NETS = [("lenet5", (1, 32, 32)), ("convnetjs_cifar10", (3, 32, 32)), ("resnet20", (3, 32, 32))]
BATCH = 32


def measured_peak(name, chw):
    """Parameters, buffers and optimizer state, plus the highest traced allocation of the
    second training step (the first compiles and makes the optimizer state)."""
    net = models.get(name).train()
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = cp.tensor(rng.standard_normal((BATCH,) + chw).astype(np.float32))
    y = cp.tensor(rng.integers(0, 10, BATCH))

    def step():
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    step()
    memory.pool.clear()  # buffers kept from before would be reused untraced
    gc.collect()
    held = sum(p.data.nbytes for p in net.parameters())
    held += sum(b.data.nbytes for b in net.buffers())
    held += sum(v.nbytes for s in opt.state.values() for v in s.values()
                if isinstance(v, np.ndarray))
    tracemalloc.start()
    try:
        step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return net, held + peak


@pytest.mark.slow
@pytest.mark.parametrize("name,chw", NETS, ids=[n for n, _ in NETS])
def test_estimate_within_a_quarter_of_the_measured_peak(name, chw):
    net, peak = measured_peak(name, chw)
    s = cp.summary(net, (BATCH,) + chw, optimizer="momentum")
    assert s.compute_path == select.current()
    assert abs(s.training_bytes - peak) <= 0.25 * peak, (
        f"{name}: estimate {s.training_bytes / 2**20:.2f} MiB, measured "
        f"{peak / 2**20:.2f} MiB ({s.peak})")


@pytest.mark.slow
@pytest.mark.parametrize("name,chw", NETS, ids=[n for n, _ in NETS])
def test_estimate_on_the_numpy_path(name, chw):
    """The numpy path's larger batch chunks make the memory pool's spare buffers visible:
    the estimate counts the arrays a step needs, so the pool's reuse is off here."""
    was, cap = select.use("numpy"), memory.pool.cap
    memory.pool.cap = 0
    try:
        net, peak = measured_peak(name, chw)
        s = cp.summary(net, (BATCH,) + chw, optimizer="momentum")
    finally:
        select.use(was)
        memory.pool.cap = cap
    assert s.compute_path == "numpy"
    assert abs(s.training_bytes - peak) <= 0.25 * peak, (
        f"{name}: estimate {s.training_bytes / 2**20:.2f} MiB, measured "
        f"{peak / 2**20:.2f} MiB ({s.peak})")


def test_the_peak_names_its_place_and_parts():
    s = cp.summary(models.get("lenet5"), (BATCH, 1, 32, 32), optimizer="momentum")
    p = s.peak
    assert p.phase in ("forward", "backward")
    assert p.path in {r["path"] for r in s.rows}
    assert p.bytes == p.activations + p.saved + p.gradients + p.workspace
    line = next(v for v in s.to_text().splitlines() if v.startswith("Training memory"))
    assert f"({s.compute_path} path), in the {p.phase} pass of {p.path} (" in line
