"""Autograd and module state are per thread: a model can be probed from a second thread (as
the dashboard does with its copy) while training steps run, and neither changes the other's
numbers or its error messages."""

import copy
import threading

import numpy as np
import pytest

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import nn, optim
from convnetpy.viz import probe


def _net():
    cp.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 8 * 8, 4))


def _train(net, steps, during=None):
    rng = np.random.default_rng(1)
    opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        x = cp.tensor(rng.standard_normal((16, 3, 16, 16)).astype(np.float32))
        y = cp.tensor(rng.integers(0, 4, 16))
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if during is not None:
            during()
    return losses


def test_probing_a_copy_from_another_thread_changes_no_training_step():
    alone = _train(_net(), 12)
    net = _net()
    viewer = copy.deepcopy(net).eval()  # as the dashboard's copy: no running stats move
    image = np.random.default_rng(2).standard_normal((3, 16, 16)).astype(np.float32)
    expected = [p.output for p in probe.probe(viewer, image)]
    results, stop, errors = [], threading.Event(), []

    def keep_probing():
        try:
            while not stop.is_set():
                results.append([p.output for p in probe.probe(viewer, image)])
                with cp.no_grad():  # grad mode is per thread: training keeps recording
                    viewer(cp.tensor(image[None]))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=keep_probing)
    t.start()
    try:
        together = _train(net, 12, during=lambda: cp.is_grad_enabled() or errors.append(
            "grad mode leaked into the training thread"))
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    assert together == alone  # bit for bit
    assert results, "the probing thread never ran"
    for outs in results:
        for a, b in zip(outs, expected):
            np.testing.assert_array_equal(a, b)


def test_a_shape_error_names_its_layer_while_another_thread_is_inside_a_module():
    inside, release = threading.Event(), threading.Event()

    class Blocking(nn.Module):
        def forward(self, x):
            inside.set()
            release.wait(10)
            return x

    t = threading.Thread(target=lambda: nn.Sequential(Blocking())(cp.zeros(1, 2)))
    t.start()
    try:
        assert inside.wait(10)
        bad = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(10, 2))
        with pytest.raises(cp.ShapeError, match=r"Linear\(in_features=10.* at 2:"):
            bad(cp.zeros(1, 3, 8, 8))
    finally:
        release.set()
        t.join()
