"""The fast CIFAR-10 recipe's building blocks (models/airbench.py and the TrainConfig
settings it uses): dirac init, the triangle schedule, batch norm biases' own learning
rate, reflected translation, whitening the first conv from the data and freezing it,
and test-time augmentation of the last validation; each against a hand computation."""

import tempfile

import numpy as np
import pytest
from conftest import needs_torch

import convnetpy as cp
from convnetpy import models, nn
from convnetpy.data import DataLoader, get_dataset
from convnetpy.data.dataset import ArrayDataset
from convnetpy.io import load_checkpoint
from convnetpy.train import TrainConfig, evaluate, fit, preset
from convnetpy.train.recipe import initialise, make_optimizer, make_scheduler, transforms_for


def test_dirac_makes_a_same_padded_conv_the_identity_on_its_first_channels():
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 7)).astype(np.float32)
    out = conv(cp.tensor(x)).numpy()
    np.testing.assert_array_equal(out[:, :3], x)
    np.testing.assert_array_equal(out[:, 3:], 0)
    grouped = cp.zeros(4, 2, 3, 3)
    nn.init.dirac_(grouped, groups=2)  # filters 0, 1 and 2, 3 pass channels 0, 1
    centre = grouped.numpy()[:, :, 1, 1]
    np.testing.assert_array_equal(centre, [[1, 0], [0, 1], [1, 0], [0, 1]])
    with pytest.raises(ValueError, match="cannot be split into 3 groups"):
        nn.init.dirac_(cp.zeros(4, 2, 3, 3), groups=3)
    with pytest.raises(ValueError, match="convolution weight"):
        nn.init.dirac_(cp.zeros(4, 2))


@needs_torch
def test_dirac_matches_torch():
    import torch

    for shape, groups in (((6, 4, 3, 3), 1), ((6, 3, 5, 5), 2), ((4, 6, 3, 3), 1)):
        w = cp.zeros(*shape)
        nn.init.dirac_(w, groups=groups)
        t = torch.empty(shape)
        torch.nn.init.dirac_(t, groups=groups)
        np.testing.assert_array_equal(w.numpy(), t.numpy())


def _torch_airbench(widths):
    """The same network written in torch.nn (the test's own twin, for the parity check)."""
    import torch
    from torch import nn as tnn

    class Group(tnn.Module):
        def __init__(self, a, b):
            super().__init__()
            self.conv1, self.pool = tnn.Conv2d(a, b, 3, padding=1, bias=False), tnn.MaxPool2d(2)
            self.norm1 = tnn.BatchNorm2d(b, eps=1e-12)
            self.conv2 = tnn.Conv2d(b, b, 3, padding=1, bias=False)
            self.norm2 = tnn.BatchNorm2d(b, eps=1e-12)

        def forward(self, x):
            x = torch.relu(self.norm1(self.pool(self.conv1(x))))
            return torch.relu(self.norm2(self.conv2(x)))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            w1, w2, w3 = widths
            self.whiten = tnn.Conv2d(3, 24, 2)
            self.layers = tnn.Sequential(tnn.ReLU(), Group(24, w1), Group(w1, w2), Group(w2, w3),
                                         tnn.MaxPool2d(3), tnn.Flatten())
            self.head = tnn.Linear(w3, 10, bias=False)

        def forward(self, x):
            return self.head(self.layers(self.whiten(x))) / 9

    return Net().double()


@pytest.mark.slow
@needs_torch
def test_the_recipe_trains_as_in_torch():
    """Network, loss, both optimizer groups, the triangle schedule and the running
    statistics against a torch twin on the same weights, 6 steps in float64."""
    import torch

    net = models.get("airbench", widths=(8, 16, 16))
    for t in list(net.parameters()) + list(net.buffers()):
        if t.data.dtype == np.float32:
            t.data = t.data.astype(np.float64)
    twin = _torch_airbench((8, 16, 16))
    twin.load_state_dict({k: torch.tensor(v.numpy()) for k, v in net.state_dict().items()})
    for model, frozen in ((net, "whiten.weight"), (twin, "whiten.weight")):
        for name, p in model.named_parameters():
            if name == frozen or ("norm" in name and name.endswith("weight")):
                p.requires_grad_(False)
    cfg = TrainConfig(lr=1.27, weight_decay=1.5e-3, momentum=0.85, schedule="triangle",
                      pct_start=0.2, bn_bias_lr_factor=64.0, label_smoothing=0.2)
    opt, total = make_optimizer(cfg, net), 10
    sched = make_scheduler(cfg, opt, total)
    named = list(twin.named_parameters())
    topt = torch.optim.SGD(
        [{"params": [p for n, p in named if "norm" not in n and p.requires_grad]},
         {"params": [p for n, p in named if "norm" in n and p.requires_grad], "lr": 1.27 * 64,
          "weight_decay": 1.5e-3 / 64}], lr=1.27, weight_decay=1.5e-3, momentum=0.85,
        nesterov=True)
    tsched = torch.optim.lr_scheduler.LambdaLR(
        topt, lambda i: float(np.interp(i, [0, 2, total], [0.2, 1.0, 0.0])))
    rng = np.random.default_rng(0)
    theirs = dict(twin.named_parameters())
    for _ in range(6):
        x, y = rng.standard_normal((6, 3, 32, 32)), rng.integers(0, 10, 6)
        loss = cp.nn.functional.cross_entropy(net(cp.tensor(x)), cp.tensor(y),
                                              label_smoothing=0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tloss = torch.nn.functional.cross_entropy(twin(torch.tensor(x)), torch.tensor(y),
                                                  label_smoothing=0.2)
        topt.zero_grad()
        tloss.backward()
        topt.step()
        tsched.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx(
            [g["lr"] for g in topt.param_groups], rel=1e-12)
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.numpy(), theirs[name].detach().numpy(), rtol=1e-9,
                                   atol=1e-11, err_msg=name)
    buffers = dict(twin.named_buffers())
    for name, b in net.named_buffers():
        np.testing.assert_allclose(b.numpy(), buffers[name].numpy(), rtol=1e-9, atol=1e-11)
    net.eval()
    twin.eval()
    x = rng.standard_normal((4, 3, 32, 32))
    np.testing.assert_allclose(net(cp.tensor(x)).numpy(), twin(torch.tensor(x)).detach().numpy(),
                               rtol=1e-9, atol=1e-11)


def test_airbench_net_counts_its_parameters_by_the_formula():
    for widths in ((64, 256, 256), (32, 64, 128)):
        net = models.get("airbench", widths=widths)
        w1, w2, w3 = widths
        # whitening conv (24 filters of 3x2x2 + bias), per block two bias-free 3x3 convs
        # and two batch norms (scale and shift each), the bias-free head
        expect = 24 * 12 + 24 + sum(9 * a * b + 9 * b * b + 4 * b
                                    for a, b in ((24, w1), (w1, w2), (w2, w3))) + 10 * w3
        assert sum(p.numel() for p in net.parameters()) == expect
        frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
        assert frozen and all(n.endswith("weight") and "norm" in n for n in frozen)
    with pytest.raises(ValueError, match="three positive block widths"):
        models.get("airbench", widths=(8, 8))
    with pytest.raises(ValueError, match="activation must be 'gelu' or 'relu', got 'elu'"):
        models.get("airbench", activation="elu")
    gelu = models.get("airbench", widths=(8, 8, 8), activation="gelu")
    assert sum(isinstance(m, nn.GELU) for m in gelu.modules()) == 4  # whiten + 3 blocks


@pytest.mark.parametrize("end", [0.0, 0.07])
def test_triangle_schedule_rises_then_falls_to_its_end(end):
    total, peak = 50, 10
    cfg = TrainConfig(lr=2.0, schedule="triangle", pct_start=0.2, lr_start_factor=0.25,
                      lr_end_factor=end)
    opt = make_optimizer(cfg, nn.Linear(2, 2))
    sched = make_scheduler(cfg, opt, total)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(total):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    expect = [2.0 * (0.25 + 0.75 * t / peak) if t <= peak
              else 2.0 * (1 - (1 - end) * (t - peak) / (total - peak))
              for t in range(total + 1)]
    np.testing.assert_allclose(lrs, expect, rtol=1e-9, atol=1e-12)


def test_batch_norm_biases_get_their_own_learning_rate_and_decay():
    net = models.get("airbench", widths=(8, 8, 8))
    net.whiten.weight.requires_grad_(False)  # frozen, as init="whiten" leaves it
    cfg = TrainConfig(lr=0.5, weight_decay=1e-3, bn_bias_lr_factor=64.0)
    opt = make_optimizer(cfg, net)
    main, norm = opt.param_groups
    biases = {id(m.bias) for m in net.modules() if isinstance(m, nn.BatchNorm2d)}
    assert {id(p) for p in norm["params"]} == biases
    assert norm["lr"] == 32.0 and norm["weight_decay"] == pytest.approx(1e-3 / 64)
    assert main["lr"] == 0.5 and main["weight_decay"] == 1e-3
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == trainable
    assert id(net.whiten.weight) not in trainable
    onecycle = TrainConfig(lr=0.5, bn_bias_lr_factor=64.0, schedule="onecycle")
    opt = make_optimizer(onecycle, net)
    make_scheduler(onecycle, opt, 10)
    assert [g["max_lr"] for g in opt.param_groups] == [0.5, 32.0]  # each group its own peak
    single = make_optimizer(TrainConfig(), net).param_groups
    assert len(single) == 1 and {id(p) for p in single[0]["params"]} == trainable


def test_translate_is_a_shift_of_the_reflected_image():
    cfg = TrainConfig(augment=["translate"], crop_padding=2)
    tf = transforms_for(cfg, (1, 6, 6), [0.0], [1.0], train=True)
    x = np.arange(4 * 36, dtype=np.float32).reshape(4, 1, 6, 6)
    out = tf(x, np.random.default_rng(3))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    for i in range(4):
        windows = [padded[i, 0, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(out[i, 0], w) for w in windows)


def test_whiten_init_decorrelates_the_first_layer_and_freezes_it():
    rng = np.random.default_rng(0)
    # correlated pixels: a smooth image plus a little noise, so whitening has work to do
    base = rng.integers(0, 200, (300, 3, 1, 1))
    images = np.clip(base + rng.integers(0, 40, (300, 3, 12, 12)), 0, 255).astype(np.uint8)
    ds = ArrayDataset(images, rng.integers(0, 2, 300), ["a", "b"])
    net = nn.Sequential(nn.Conv2d(3, 24, 2), nn.ReLU(), nn.Flatten(), nn.Linear(24 * 121, 2))
    mean = (images / 255.0).mean(axis=(0, 2, 3))
    std = (images / 255.0).std(axis=(0, 2, 3))
    initialise(TrainConfig(init="whiten"), net, ds, mean, std)
    assert not net[0].weight.requires_grad
    x = ((images / 255.0 - mean[:, None, None]) / std[:, None, None]).astype(np.float32)
    out = net[0](cp.tensor(x)).numpy() - net[0].bias.numpy()[:, None, None]
    first = out[:, :12].transpose(0, 2, 3, 1).reshape(-1, 12).astype(np.float64)
    cov = first.T @ first / len(first)
    np.testing.assert_allclose(cov, np.eye(12), atol=0.05)
    untouched = nn.Sequential(nn.Conv2d(3, 24, 2))
    initialise(TrainConfig(), untouched, ds, mean, std)  # init="default": nothing happens
    assert untouched[0].weight.requires_grad
    with pytest.raises(ValueError, match="init='whiten' on the first convolution of Sequential: "
                                         "whiten_: the weight's 10 filters"):
        initialise(TrainConfig(init="whiten"), nn.Sequential(nn.Conv2d(3, 10, 1)), ds, mean, std)
    with pytest.raises(ValueError, match="needs a model with a Conv2d"):
        initialise(TrainConfig(init="whiten"), nn.Linear(2, 2), ds, mean, std)


@pytest.mark.slow
def test_the_last_epoch_is_validated_with_tta_too():
    cfg = TrainConfig(**{**preset("cifar10-quick"), "data": "synthetic:300", "epochs": 2,
                         "batch_size": 100, "model_kwargs": {"widths": [8, 8, 8]},
                         "progress": False, "out": tempfile.mkdtemp()})
    lines = []
    res = fit(config=cfg, log=lines.append)
    first, last = res["history"]
    assert "val_acc_tta" not in first and last["tta"] == "flip-translate"
    assert res["val_acc_tta"] == last["val_acc_tta"]
    assert "with TTA flip-translate" in lines[-1]
    # the same number by hand: the TTA module over the run's validation split
    model, meta = res["model"], load_checkpoint(res["run_dir"]).meta
    _, val = get_dataset("synthetic:300", 32).split(cfg.val_fraction, cfg.seed)
    loader = DataLoader(val, 64, transform=transforms_for(cfg, val.image_shape, meta["mean"],
                                                          meta["std"], train=False))
    by_hand = evaluate(nn.TTA(model, "flip-translate"), loader, 10)
    assert by_hand["acc"] == last["val_acc_tta"]
    assert by_hand["loss"] == pytest.approx(last["val_loss_tta"], rel=1e-6)


@pytest.mark.slow
def test_the_recipe_resumes_exactly(tmp_path):
    """Whitening, frozen weights, two parameter groups, the triangle schedule, Lookahead's
    slow weights and the alternating flips all come back from a checkpoint: a run stopped
    mid-epoch and resumed ends where a straight run does, bit for bit."""
    quick = preset("cifar10-quick")
    base = {**quick, "data": "synthetic:400", "epochs": 2, "batch_size": 60,
            "model_kwargs": {**quick["model_kwargs"], "widths": [8, 8, 8]},
            "augment": ["altflip", "translate"], "progress": False, "out": str(tmp_path),
            "tta": "none"}
    assert quick["lookahead_k"] and quick["lookahead_ramp"]
    straight = fit(config=TrainConfig(**base, run_id="straight"), log=lambda line: None)
    fit(config=TrainConfig(**base, run_id="split", max_steps=4), log=lambda line: None)
    fit(resume=tmp_path / "split", overrides={"max_steps": 0}, log=lambda line: None)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    assert a.meta["step"] == b.meta["step"] == straight["step"] == 12
    for k in a.model_state:
        np.testing.assert_array_equal(a.model_state[k], b.model_state[k], err_msg=k)
    assert [g["lr"] for g in a.optimizer_state["param_groups"]] == \
        [g["lr"] for g in b.optimizer_state["param_groups"]]


@pytest.mark.parametrize("widths", [(64, 256, 256), (32, 64, 128)])
def test_the_benchmarks_twin_has_the_presets_layers(widths):
    # benchmarks/run.py --nets airbench times models/portable.py's airbench in both
    # libraries: it must hold the preset network's parameters and buffers, shape for shape
    from convnetpy.models import portable

    def shapes(net):
        return sorted(tuple(v.shape) for v in net.state_dict().values())

    net = models.get("airbench", widths=widths, activation="gelu")
    twin = portable.airbench(nn, widths)
    assert shapes(twin) == shapes(net)
    x = cp.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    assert twin(x).shape == net(x).shape == (2, 10)


@pytest.mark.parametrize("field, value, message", [
    ("schedule", "triangles", "schedule must be one of"),
    ("lr_start_factor", 0.0, r"lr_start_factor must be in \(0, 1\]"),
    ("bn_bias_lr_factor", 0.0, "bn_bias_lr_factor must be positive"),
    ("lr_end_factor", 1.5, r"lr_end_factor must be in \[0, 1\]"),
    ("lookahead_alpha", 0.0, r"lookahead_alpha must be in \(0, 1\]"),
    ("lookahead_k", -1, "lookahead_k must be >= 0"),
    ("lookahead_ramp", True, "set lookahead_k"),
    ("init", "orthogonal", "init must be one of"),
    ("tta", "rotate", "tta must be one of"),
    ("augment", ["shift"], "augment must be a list of"),
    ("augment", ["flip", "altflip"], "two ways of flipping; choose one"),
])
def test_new_settings_are_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})
