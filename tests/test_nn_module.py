"""Module behaviour: registration, traversal, state_dict, modes, dtypes, hooks, repr,
initialisation statistics."""

import math

import numpy as np
import pytest
from conftest import needs_torch

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import nn
from convnetpy.models import portable as nets


def test_registration_and_traversal():
    net = nets.resnet20(nn, F)
    names = [n for n, _ in net.named_parameters()]
    assert names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer2.0.shortcut.0.weight" in names
    assert "layer1.0.shortcut.0.weight" not in names  # identity shortcut
    assert [n for n, _ in net.named_children()] == ["conv1", "bn1", "layer1", "layer2",
                                                    "layer3", "linear"]
    assert sum(p.numel() for p in net.parameters()) == 272_474
    bufs = dict(net.named_buffers())
    assert bufs["bn1.num_batches_tracked"].dtype == np.int64


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(net.parameters())) == 2
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_train_eval_propagates():
    net = nn.Sequential(nn.Dropout(), nn.Sequential(nn.BatchNorm1d(2)))
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_to_dtype_converts_params_buffers_but_not_counters():
    bn = nn.BatchNorm2d(3).double()
    assert bn.weight.dtype == np.float64 and bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    with pytest.raises(TypeError, match="floating point dtypes"):
        bn.to(np.int32)


def test_state_dict_shares_memory_and_round_trips():
    a, b = nets.convnetjs_cifar10(nn), nets.convnetjs_cifar10(nn)
    sd = a.state_dict()
    assert sd["0.weight"].numpy() is a[0].weight.numpy()
    b.load_state_dict(sd)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    # loading copies in place: the optimizer's references stay valid
    ref = b[0].weight
    b.load_state_dict(nets.convnetjs_cifar10(nn).state_dict())
    assert b[0].weight is ref


def test_load_state_dict_names_every_problem_and_changes_nothing():
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    before = net[0].weight.numpy().copy()
    sd = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    sd["0.weight"] = np.zeros((3, 5))
    del sd["1.running_var"]
    sd["2.weight"] = np.zeros(3)
    with pytest.raises(nn.StateDictError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "1.running_var"' in msg
    assert 'Unexpected key(s) in state_dict: "2.weight"' in msg
    assert ("size mismatch for 0.weight: copying a param with shape (3, 5) from checkpoint, "
            "the shape in current model is (3, 4).") in msg
    np.testing.assert_array_equal(net[0].weight.numpy(), before)
    # non-strict ignores missing/unexpected keys but never a shape mismatch
    sd["0.weight"] = np.ones((3, 4))
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["1.running_var"] and res.unexpected_keys == ["2.weight"]
    assert net[0].weight.numpy().sum() == 12
    sd["0.weight"] = np.zeros((4, 4))
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
        net.load_state_dict(sd, strict=False)


def test_load_state_dict_rejects_non_numeric_values():
    net = nn.Linear(2, 2)
    with pytest.raises(ValueError, match='While copying the parameter named "weight"'):
        net.load_state_dict({"weight": np.array([["a", "b"], ["c", "d"]]),
                             "bias": np.zeros(2)})
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        net.load_state_dict([1, 2])


def test_assigning_a_non_parameter_to_a_parameter_slot_is_rejected():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign 'ndarray' as parameter 'weight'"):
        lin.weight = np.zeros((2, 2))
    lin.bias = None
    assert "bias" not in lin.state_dict()


def test_zero_grad_and_requires_grad():
    lin = nn.Linear(2, 2)
    lin(cp.ones(1, 2)).sum().backward()
    assert lin.weight.grad is not None
    lin.zero_grad(set_to_none=False)
    assert lin.weight.grad.numpy().sum() == 0
    lin.zero_grad()
    assert lin.weight.grad is None
    lin.requires_grad_(False)
    assert not lin(cp.ones(1, 2)).requires_grad


def test_forward_hooks_and_apply():
    net = nets.convnetjs_cifar10(nn)
    shapes = []
    handles = [m.register_forward_hook(lambda m, i, o: shapes.append(o.shape))
               for m in net if isinstance(m, nn.Conv2d)]
    with cp.no_grad():
        net(cp.zeros(1, 3, 32, 32))
    assert shapes == [(1, 16, 32, 32), (1, 20, 16, 16), (1, 20, 8, 8)]
    for h in handles:
        h.remove()
    net(cp.zeros(1, 3, 32, 32))
    assert len(shapes) == 3
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Sequential" and seen.count("Conv2d") == 3


def test_containers():
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    ml.append(nn.Sigmoid())
    assert len(ml) == 3 and isinstance(ml[-1], nn.Sigmoid)
    md = nn.ModuleDict({"a": nn.Linear(2, 2)})
    md["b"] = nn.Linear(2, 1)
    assert list(md.keys()) == ["a", "b"] and "b" in md
    holder = nn.Module()
    holder.blocks = md
    assert list(holder.state_dict()) == ["blocks.a.weight", "blocks.a.bias", "blocks.b.weight",
                                         "blocks.b.bias"]
    seq = nn.Sequential(nn.ReLU(), nn.Tanh(), nn.Sigmoid())
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    with pytest.raises(IndexError, match="out of range"):
        seq[3]


def test_repr_is_torch_like():
    net = nn.Sequential(nn.Conv2d(3, 16, 5, padding=2, bias=False), nn.BatchNorm2d(16),
                        nn.Dropout(0.2), nn.Linear(10, 2))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Conv2d(3, 16, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2), bias=False)\n"
        "  (1): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, bias=True, "
        "track_running_stats=True)\n"
        "  (2): Dropout(p=0.2, inplace=False)\n"
        "  (3): Linear(in_features=10, out_features=2, bias=True)\n"
        ")")


@needs_torch
def test_repr_equals_torch_repr():
    import torch
    import torch.nn.functional as TF

    pairs = [(nets.convnetjs_cifar10(nn), nets.convnetjs_cifar10(torch.nn)),
             (nets.resnet20(nn, F), nets.resnet20(torch.nn, TF))]
    kw = dict(in_channels=4, out_channels=8, kernel_size=3, padding="same", dilation=2,
              groups=2, padding_mode="reflect")
    pairs.append((nn.Conv2d(**kw), torch.nn.Conv2d(**kw)))
    for layer in ("MaxPool2d", "AvgPool2d"):
        pairs.append((getattr(nn, layer)(3, 2, 1), getattr(torch.nn, layer)(3, 2, 1)))
    pairs += [(nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3))),
              (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (nn.Softmax(1), torch.nn.Softmax(1)),
              (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss())]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("layer,fan_in", [(lambda: nn.Conv2d(8, 64, 3), 72),
                                          (lambda: nn.Linear(200, 300), 200),
                                          (lambda: nn.Conv2d(8, 64, 3, groups=4), 18)])
def test_default_initialisation_is_pytorchs(layer, fan_in):
    cp.manual_seed(0)
    m = layer()
    bound = 1 / math.sqrt(fan_in)
    w, b = m.weight.numpy(), m.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound  # U(-a, a) has std a/sqrt(3)
    assert np.abs(b).max() <= bound
    assert w.dtype == np.float32


def test_init_functions():
    t = cp.zeros(64, 32, 3, 3)
    nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    assert abs(t.numpy().std() - math.sqrt(2 / (64 * 9))) < 0.01
    nn.init.xavier_uniform_(t)
    assert np.abs(t.numpy()).max() <= math.sqrt(6 / (32 * 9 + 64 * 9))
    nn.init.trunc_normal_(t, std=1.0, a=-0.5, b=0.5)
    assert np.abs(t.numpy()).max() <= 0.5
    nn.init.constant_(t, 0.3)
    assert np.all(t.numpy() == np.float32(0.3))
    assert np.all(nn.init.ones_(t).numpy() == 1) and np.all(nn.init.zeros_(t).numpy() == 0)
    cp.manual_seed(0)
    nn.init.xavier_normal_(t, gain=2.0)
    assert abs(t.numpy().std() - 2.0 * math.sqrt(2 / (32 * 9 + 64 * 9))) < 0.005
    assert nn.init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(cp.zeros(3))


def test_manual_seed_makes_initialisation_reproducible():
    cp.manual_seed(42)
    a = nn.Conv2d(3, 4, 3).weight.numpy().copy()
    cp.manual_seed(42)
    b = nn.Conv2d(3, 4, 3).weight.numpy()
    np.testing.assert_array_equal(a, b)


def test_unbatched_input_is_accepted_like_torch():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    assert conv(cp.zeros(3, 8, 8)).shape == (4, 8, 8)
    assert nn.MaxPool2d(2)(cp.zeros(3, 8, 8)).shape == (3, 4, 4)
    out, idx = F.max_pool2d(cp.zeros(3, 8, 8), 2, return_indices=True)
    assert idx.shape == (3, 4, 4)


def test_tta_averages_the_views_it_names():
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)

    def run(a):
        return net(cp.tensor(np.ascontiguousarray(a))).numpy()

    mirrored = lambda a: (run(a) + run(a[:, :, :, ::-1])) / 2  # noqa: E731
    np.testing.assert_allclose(nn.TTA(net, "flip")(cp.tensor(x)).numpy(), mirrored(x),
                               rtol=1e-5, atol=1e-6)
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    want = mirrored(x) / 2 + (mirrored(p[:, :, :6, :6]) + mirrored(p[:, :, 2:, 2:])) / 4
    np.testing.assert_allclose(nn.TTA(net, "flip-translate")(cp.tensor(x)).numpy(), want,
                               rtol=1e-5, atol=1e-6)
    assert nn.TTA(net, "flip-translate").passes == 6
    np.testing.assert_array_equal(nn.TTA(net, "none")(cp.tensor(x)).numpy(), run(x))
    with pytest.raises(ValueError, match="must be one of none, flip, flip-translate"):
        nn.TTA(net, "rotate")


def test_whiten_makes_the_first_convs_outputs_white():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((200, 1, 10, 10))
    imgs = np.concatenate([base, 0.5 * base + 0.1 * rng.standard_normal(base.shape),
                           3 * rng.standard_normal(base.shape)], axis=1).astype(np.float32)
    conv = nn.Conv2d(3, 24, 2, bias=False)
    nn.init.whiten_(conv.weight, imgs, eps=1e-9)
    out = conv(cp.tensor(imgs)).numpy()
    first = out[:, :12].transpose(0, 2, 3, 1).reshape(-1, 12).astype(np.float64)
    np.testing.assert_allclose(first.T @ first / len(first), np.eye(12), atol=2e-3)
    np.testing.assert_array_equal(out[:, 12:], -out[:, :12])
    with pytest.raises(ValueError, match="even number, at most 2 \\* C\\*KH\\*KW = 24"):
        nn.init.whiten_(nn.Conv2d(3, 26, 2).weight, imgs)
    with pytest.raises(ValueError, match=r"images must be \(N, 3, H, W\)"):
        nn.init.whiten_(conv.weight, imgs[:, :1])
