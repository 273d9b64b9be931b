"""Lookahead and the weight averages (swa_utils.AveragedModel: running mean and EMA),
against hand computations, resumed exactly, and against torch.optim.swa_utils live."""

import numpy as np
import pytest
from conftest import needs_torch

import convnetpy as cp
from convnetpy import nn, optim
from convnetpy.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def grads(step):
    return np.array([np.sin(step), np.cos(2 * step)], dtype=np.float64)


def run_lookahead(steps, start=None, k=3, alpha=0.4):
    w = nn.Parameter(np.zeros(2))
    opt = optim.Lookahead(optim.SGD([w], lr=0.1, momentum=0.9), k=k, alpha=alpha)
    first = 0
    if start is not None:
        w.data[...] = start["w"]
        opt.load_state_dict(start["opt"])
        first = start["step"]
    for s in range(first, steps):
        w.grad = cp.tensor(grads(s))
        opt.step()
    return w, opt


def test_lookahead_matches_the_rule():
    w, _ = run_lookahead(7)
    fast, slow, vel = np.zeros(2), np.zeros(2), np.zeros(2)
    for s in range(7):
        vel = 0.9 * vel + grads(s)
        fast = fast - 0.1 * vel
        if (s + 1) % 3 == 0:
            slow = slow + 0.4 * (fast - slow)
            fast = slow.copy()
    np.testing.assert_allclose(w.numpy(), fast, rtol=1e-12, atol=1e-15)


def test_lookahead_resumes_exactly_and_drives_schedules():
    w_all, _ = run_lookahead(12)
    w, opt = run_lookahead(7)
    state = {"w": w.numpy().copy(), "opt": opt.state_dict(), "step": 7}
    w2, _ = run_lookahead(12, start=state)
    np.testing.assert_array_equal(w2.numpy(), w_all.numpy())
    # parameter indices as strings (a state that went through JSON) load the same
    as_text = {**state, "opt": {**state["opt"],
                                "state": {str(i): e for i, e in state["opt"]["state"].items()}}}
    w3, _ = run_lookahead(12, start=as_text)
    np.testing.assert_array_equal(w3.numpy(), w_all.numpy())
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        optim.Lookahead(optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1), k=0)
    bad = opt.state_dict()
    bad["state"][0]["lookahead_slow"] = np.zeros(3)
    with pytest.raises(ValueError, match="slow weights do not match"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="slow weights do not match"):
        opt.load_state_dict(optim.SGD([w], lr=0.1, momentum=0.9).state_dict())


def test_lookahead_cubic_alpha_is_airbenchs_schedule_and_ends_on_the_slow_weights():
    """alpha = 1 - (1 - end) * (s / T) ** 3 at the syncs (airbench94's decay
    0.95 ** 5 * (s / T) ** 3 is 1 - alpha), then use_slow() drops the unsynced steps."""
    total, k, end = 11, 3, 1 - 0.95 ** 5
    w = nn.Parameter(np.zeros(2))
    opt = optim.Lookahead(optim.SGD([w], lr=0.1, momentum=0.9), k=k,
                          alpha=optim.cubic_alpha(total, end))
    fast, slow, vel = np.zeros(2), np.zeros(2), np.zeros(2)
    for s in range(total):
        w.grad = cp.tensor(grads(s))
        opt.step()
        vel = 0.9 * vel + grads(s)
        fast = fast - 0.1 * vel
        if (s + 1) % k == 0:
            decay = 0.95 ** 5 * ((s + 1) / total) ** 3
            slow = decay * slow + (1 - decay) * fast
            fast = slow.copy()
    np.testing.assert_allclose(w.numpy(), fast, rtol=1e-12, atol=1e-15)
    assert not np.allclose(fast, slow)  # two fast steps since the last sync
    opt.use_slow()
    np.testing.assert_allclose(w.numpy(), slow, rtol=1e-12, atol=1e-15)
    assert optim.cubic_alpha(total, end)(0) == 1.0
    with pytest.raises(ValueError, match="end must be in"):
        optim.cubic_alpha(10, 1.5)
    with pytest.raises(ValueError, match="outside"):
        bad = optim.Lookahead(optim.SGD([w], lr=0.1), k=1, alpha=lambda step: 2.0)
        w.grad = cp.tensor(grads(0))
        bad.step()


def model_sequence(weights):
    """One model whose parameters take 4 values in turn (each appended to ``weights``)."""
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    for t in range(4):
        for i, p in enumerate(net.parameters()):
            p.data[...] = t + i + np.arange(p.data.size).reshape(p.data.shape)
        net[1].running_mean.data[...] = 10 * t
        weights.append([p.numpy().copy() for p in net.parameters()])
        yield net


def test_averaged_model_running_mean_and_ema():
    swa = ema = None
    weights = []
    for net in model_sequence(weights):
        swa = swa or AveragedModel(net)
        ema = ema or AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.75))
        swa.update_parameters(net)
        ema.update_parameters(net)
    for i, p in enumerate(swa.module.parameters()):
        np.testing.assert_allclose(p.numpy(), np.mean([w[i] for w in weights], axis=0))
    want = [w.copy() for w in weights[0]]
    for ws in weights[1:]:
        want = [0.75 * a + 0.25 * b for a, b in zip(want, ws)]
    for p, w in zip(ema.module.parameters(), want):
        np.testing.assert_allclose(p.numpy(), w, rtol=1e-6)
    # buffers: copied from the model unless use_buffers averages them too
    assert swa.module[1].running_mean.numpy().tolist() == [30.0, 30.0]
    assert int(swa.n_averaged.item()) == 4
    avg = None
    for net in model_sequence([]):
        avg = avg or AveragedModel(net, use_buffers=True)
        avg.update_parameters(net)
    assert avg.module[1].running_mean.numpy().tolist() == [15.0, 15.0]
    with pytest.raises(ValueError, match="the model this average was made from"):
        swa.update_parameters(nn.Linear(3, 3))


@needs_torch
def test_ema_matches_torch_swa_utils():
    import torch

    from convnetpy.models import portable

    ours_net = portable.convnetjs_cifar10(nn)
    torch_net = portable.convnetjs_cifar10(torch.nn)
    ours = AveragedModel(ours_net, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    theirs = torch.optim.swa_utils.AveragedModel(
        torch_net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    rng = np.random.default_rng(0)
    for _ in range(3):
        state = {k: rng.standard_normal(v.shape).astype(np.float32)
                 for k, v in ours_net.state_dict().items()}
        ours_net.load_state_dict(state)
        torch_net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        ours.update_parameters(ours_net)
        theirs.update_parameters(torch_net)
    for (k, a), b in zip(ours.module.state_dict().items(), theirs.module.state_dict().values()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
