"""Live parity with PyTorch (runs when torch is importable): layers with copied weights,
forward and backward; whole networks; optimizer steps; LR schedules."""

import numpy as np
import pytest
from conftest import HAVE_TORCH, assert_ref, needs_torch, rel_fro

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import nn, optim
from convnetpy.models import portable as nets

# with the compiled loops and with the pure-NumPy code
pytestmark = [needs_torch, pytest.mark.torch, pytest.mark.usefixtures("every_path")]
if HAVE_TORCH:
    import torch
    import torch.nn.functional as TF

    torch.set_num_threads(2)


def to_torch_state(model):
    return {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}


def compare(ours, theirs, x, dtype=np.float64, tol=1e-10, train=True, target=None):
    """Copy our weights into the torch twin, run forward+backward on both, compare.

    float64: elementwise to ``tol``. float32: our float32 run against the torch twin run in
    float64 on the same (float32-valued) weights and input, relative Frobenius error <= 1e-5.
    The reference is float64 because torch's own float32 path is not that close to it
    everywhere (seen: ResNet-20 in eval mode, input grad 9.8e-5 from the float64 result,
    where ours is 2e-7)."""
    ours.to(dtype)
    theirs.to(torch.float64)
    theirs.load_state_dict(to_torch_state(ours))
    ours.train(train)
    theirs.train(train)
    xa = cp.tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x.astype(dtype).astype(np.float64), requires_grad=True)
    ya, yt = ours(xa), theirs(xt)
    proj = np.random.default_rng(1).standard_normal(yt.shape).astype(dtype)
    (ya * cp.tensor(proj)).sum().backward()
    (yt * torch.from_numpy(proj.astype(np.float64))).sum().backward()
    pairs = [("output", ya.numpy(), yt.detach().numpy()),
             ("input grad", xa.grad.numpy(), xt.grad.numpy())]
    tgrads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        pairs.append((f"{name}.grad", p.grad.numpy(), tgrads[name].grad.numpy()))
    tstate = theirs.state_dict()
    for name, b in ours.named_buffers():
        pairs.append((name, b.numpy(), tstate[name].numpy()))
    for what, a, b in pairs:
        assert a.dtype == dtype or a.dtype.kind != "f", f"{what}: dtype {a.dtype}"
        if dtype == np.float64:
            assert_ref(a, b, tol=tol, what=what)
        else:
            assert rel_fro(a, b) <= 1e-5, f"{what}: relative error {rel_fro(a, b):.3g}"
    return ya


LAYER_PAIRS = [
    ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1)),
    ("Conv2d", dict(in_channels=4, out_channels=6, kernel_size=(3, 2), padding="same",
                    dilation=(1, 2), groups=2, padding_mode="reflect")),
    ("Conv2d", dict(in_channels=4, out_channels=4, kernel_size=4, padding="same",
                    groups=4, bias=False, padding_mode="circular")),
    ("Conv2d", dict(in_channels=4, out_channels=2, kernel_size=3, padding=2,
                    padding_mode="replicate")),
    ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=1)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("MaxPool2d", dict(kernel_size=2, dilation=2)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False,
                       ceil_mode=True)),
    ("AdaptiveAvgPool2d", dict(output_size=(3, 2))),
    ("AdaptiveMaxPool2d", dict(output_size=(4, 3))),
    ("BatchNorm2d", dict(num_features=4)),
    ("BatchNorm2d", dict(num_features=4, momentum=None)),
    ("BatchNorm2d", dict(num_features=4, affine=False, track_running_stats=False)),
    ("BatchNorm2d", dict(num_features=4, bias=False)),
    ("LeakyReLU", dict(negative_slope=0.3)),
    ("Softmax", dict(dim=1)),
    ("LogSoftmax", dict(dim=1)),
]


@pytest.mark.parametrize("name,kw", LAYER_PAIRS, ids=[n for n, _ in LAYER_PAIRS])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_layer_parity(name, kw, train):
    cin = kw.get("in_channels", kw.get("num_features", 4))
    x = np.random.default_rng(0).standard_normal((2, cin, 7, 6))
    ours, theirs = getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw)
    compare(ours, theirs, x, train=train)
    # buffers keep matching over further steps (running stats, num_batches_tracked)
    compare(ours, theirs, x * 2 + 1, train=train)


def test_batchnorm1d_and_linear_parity():
    x = np.random.default_rng(0).standard_normal((5, 3, 4))
    compare(nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), x)
    compare(nn.Linear(4, 2), torch.nn.Linear(4, 2), x)


def test_state_dict_keys_match_torch():
    for ours, theirs in ((nets.convnetjs_cifar10(nn), nets.convnetjs_cifar10(torch.nn)),
                         (nets.resnet20(nn, F), nets.resnet20(torch.nn, TF)),
                         (nets.airbench(nn, (8, 16, 16)), nets.airbench(torch.nn, (8, 16, 16)))):
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
            assert a.shape == tuple(b.shape), k
            assert a.dtype == b.numpy().dtype, k
        # and torch's weights load into ours
        ours.load_state_dict(theirs.state_dict())
        for k, v in theirs.state_dict().items():
            np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("net", ["convnetjs", "resnet20"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_network_parity(net, dtype):
    cp.manual_seed(0)
    torch.manual_seed(0)
    if net == "convnetjs":
        ours, theirs = nets.convnetjs_cifar10(nn), nets.convnetjs_cifar10(torch.nn)
    else:
        ours, theirs = nets.resnet20(nn, F), nets.resnet20(torch.nn, TF)
    x = np.random.default_rng(3).standard_normal((4, 3, 32, 32))
    compare(ours, theirs, x, dtype=dtype, train=True)
    compare(ours, theirs, x, dtype=dtype, train=False)


@pytest.mark.slow
@pytest.mark.parametrize("net", ["convnetjs", "resnet20"])
def test_fifty_sgd_steps_match_torch(net):
    """50 steps of SGD (momentum, weight decay) on a fixed batch, float64: same losses."""
    cp.manual_seed(1)
    if net == "convnetjs":
        ours, theirs = nets.convnetjs_cifar10(nn), nets.convnetjs_cifar10(torch.nn)
    else:
        ours, theirs = nets.resnet20(nn, F), nets.resnet20(torch.nn, TF)
    ours.double()
    theirs.double().load_state_dict(to_torch_state(ours))
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((8, 3, 32, 32)), rng.integers(0, 10, 8)
    kw = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt_a, opt_t = optim.SGD(ours.parameters(), **kw), torch.optim.SGD(theirs.parameters(), **kw)
    xa, ya = cp.tensor(x), cp.tensor(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses_a, losses_t = [], []
    for _ in range(50):
        opt_a.zero_grad()
        la = F.cross_entropy(ours(xa), ya)
        la.backward()
        opt_a.step()
        opt_t.zero_grad()
        lt = TF.cross_entropy(theirs(xt), yt)
        lt.backward()
        opt_t.step()
        losses_a.append(la.item())
        losses_t.append(lt.item())
    np.testing.assert_allclose(losses_a, losses_t, rtol=1e-8, atol=0)
    assert losses_a[-1] < losses_a[0]  # it learned something


@pytest.mark.parametrize("name,kw", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.01)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
])
@pytest.mark.slow
def test_optimizer_steps_and_state_dict_match_torch(name, kw):
    cp.manual_seed(0)
    ours = nets.convnetjs_cifar10(nn).double()
    theirs = nets.convnetjs_cifar10(torch.nn).double()
    theirs.load_state_dict(to_torch_state(ours))
    groups_a = [{"params": list(ours[0].parameters()), "lr": kw["lr"] / 2},
                {"params": [p for i, m in enumerate(ours) if i > 0 for p in m.parameters()]}]
    groups_t = [{"params": list(theirs[0].parameters()), "lr": kw["lr"] / 2},
                {"params": [p for i, m in enumerate(theirs) if i > 0 for p in m.parameters()]}]
    opt_a, opt_t = getattr(optim, name)(groups_a, **kw), getattr(torch.optim, name)(groups_t, **kw)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 3, 32, 32)), rng.integers(0, 10, 4)
    for _ in range(5):
        for model, opt, lib, f in ((ours, opt_a, cp, F), (theirs, opt_t, torch, TF)):
            opt.zero_grad()
            f.cross_entropy(model(lib.tensor(x)), lib.tensor(y)).backward()
            opt.step()
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert_ref(a.numpy(), b.numpy(), tol=1e-9, what=k)
    sa, st = opt_a.state_dict(), opt_t.state_dict()
    assert [g["params"] for g in sa["param_groups"]] == [g["params"] for g in st["param_groups"]]
    for idx, entry in st["state"].items():
        for key, val in entry.items():
            assert_ref(np.asarray(sa["state"][idx][key], dtype=np.float64),
                       val.numpy() if hasattr(val, "numpy") else val, tol=1e-9, what=key)


def test_sequential_lr_matches_torch():
    def run(lib_optim, params):
        opt = lib_optim.SGD(params, lr=0.1)
        s = lib_optim.lr_scheduler
        sched = s.SequentialLR(opt, [s.LinearLR(opt, start_factor=0.1, total_iters=3),
                                     s.CosineAnnealingLR(opt, T_max=6)], milestones=[4])
        lrs = []
        for _ in range(12):
            lrs.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return lrs

    ours = run(optim, [nn.Parameter(np.zeros(1))])
    theirs = run(torch.optim, [torch.nn.Parameter(torch.zeros(1))])
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weighted_mse_matches_torch(reduction):
    rng = np.random.default_rng(0)
    x, t, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.uniform(0, 2, (3, 4))
    proj = rng.standard_normal((3, 4)) if reduction == "none" else np.array(1.3)
    grads = []
    for lib, f in ((cp, F), (torch, TF)):
        xs = [lib.tensor(a, requires_grad=True) for a in (x, t, w)]
        out = f.mse_loss(xs[0], xs[1], reduction=reduction, weight=xs[2])
        (out * lib.tensor(proj)).sum().backward()
        grads.append([out.detach().numpy()] + [a.grad.numpy() for a in xs])
    for a, b in zip(*grads):
        assert_ref(a, b)
