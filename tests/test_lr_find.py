"""The learning-rate range test: the swept rates and recorded losses against a hand loop, the
exact restore of the model, optimizer, modes and random generator, the suggestion on curves
whose answer is known, the early stops, the run's own setup, and ``convnetpy lr-find``."""

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from convnetpy import F, nn, optim
from convnetpy.cli import build_parser, main
from convnetpy.data import DataLoader, synthetic
from convnetpy.random import get_rng_state, manual_seed
from convnetpy.tensor import Tensor
from convnetpy.train import TrainConfig, fit
from convnetpy.train.lr_find import lr_find, lr_find_config, suggest


def formula(start, end, steps):
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


def test_rates_and_losses_match_a_hand_loop():
    manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 5)), rng.integers(0, 3, 12)
    opt = optim.SGD(net.parameters(), lr=0.5)
    res = lr_find(net, opt, [(x, y)], start_lr=1e-3, end_lr=3.0, steps=15, smooth=0.9,
                  diverge=0)
    assert res.reason == "completed" and not res.stopped_early
    np.testing.assert_allclose(res.lrs, formula(1e-3, 3.0, 15), rtol=1e-13)
    # the same steps by hand, on the model lr_find gave back (so restoring is checked too)
    losses = []
    for lr in formula(1e-3, 3.0, 15):
        opt.param_groups[0]["lr"] = lr
        loss = F.cross_entropy(net(Tensor(x)), Tensor(y))
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(res.losses, losses, rtol=1e-12)
    assert losses[-1] < losses[0] - 0.1  # it did train: the comparison is not of constants
    avg, smoothed = 0.0, []
    for i, v in enumerate(losses):
        avg = 0.9 * avg + 0.1 * v
        smoothed.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(res.smoothed, smoothed, rtol=1e-12)
    assert res.smoothed[0] == res.losses[0]  # bias correction: no pull towards 0


def _snapshot(model, opt):
    state = {k: (v.numpy().copy(), v.numpy().dtype) for k, v in model.state_dict().items()}
    return state, opt.state_dict(), [m.training for m in model.modules()], get_rng_state()


def _same_optimizer_state(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert sorted(a["state"]) == sorted(b["state"])
    for idx, entry in a["state"].items():
        assert sorted(entry) == sorted(b["state"][idx])
        for key, v in entry.items():
            w = b["state"][idx][key]
            assert np.asarray(v).dtype == np.asarray(w).dtype
            assert np.array_equal(v, w), (idx, key)


def _conv_net():
    manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Dropout(0.3), nn.Flatten(), nn.Linear(4 * 8 * 8, 4))


@pytest.mark.parametrize("fail_at", [None, 3], ids=["completed", "error-mid-sweep"])
def test_model_optimizer_modes_and_rng_are_restored_bitwise(fail_at):
    net = _conv_net()
    bn = net[1]
    groups = [{"params": [p for p in net.parameters() if p is not bn.bias]},
              {"params": [bn.bias], "lr": 0.2}]
    opt = optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    data = synthetic(20, shape=(1, 8, 8))
    loader = DataLoader(data, 8, shuffle=True, seed=0)  # 3 batches: cycled over 12 steps
    # a run in progress: momentum buffers, moved batch-norm statistics, a gradient, mixed modes
    net.train()
    out = net(Tensor(data.images[:8].astype(np.float32) / 255))
    F.cross_entropy(out, Tensor(data.labels[:8])).backward()
    opt.step()
    net.eval()
    net[3].train()
    manual_seed(7)
    grad = net[0].weight.grad.numpy().copy()
    before = _snapshot(net, opt)
    seen = {"ratios": [], "calls": 0}

    def loss_fn(out, y):
        seen["calls"] += 1
        if seen["calls"] == fail_at:
            raise RuntimeError("boom")
        seen["ratios"].append(opt.param_groups[1]["lr"] / opt.param_groups[0]["lr"])
        seen["modes"] = [m.training for m in net.modules()]
        seen["running_mean"] = bn.running_mean.numpy().copy()
        return F.cross_entropy(out, y)

    if fail_at:
        with pytest.raises(RuntimeError, match="boom"):
            lr_find(net, opt, loader, loss_fn, start_lr=1e-4, end_lr=1.0, steps=12)
    else:
        res = lr_find(net, opt, loader, loss_fn, start_lr=1e-4, end_lr=1.0, steps=12)
        assert len(res.lrs) == 12 and res.reason == "completed"
        assert seen["ratios"] == pytest.approx([2.0] * 12, rel=1e-12)  # bn bias group keeps x2
        assert all(seen["modes"])  # swept in training mode
    # it did change the model during the sweep, so what follows checks a real restore
    assert not np.array_equal(seen["running_mean"], before[0]["1.running_mean"][0])
    after = _snapshot(net, opt)
    assert sorted(after[0]) == sorted(before[0])
    for key, (value, dtype) in before[0].items():  # parameters and buffers, bit for bit
        assert after[0][key][1] == dtype and np.array_equal(after[0][key][0], value), key
    assert int(before[0]["1.num_batches_tracked"][0]) == 1
    _same_optimizer_state(before[1], after[1])
    assert after[2] == before[2] and after[3] == before[3]  # modes, the global generator
    np.testing.assert_array_equal(net[0].weight.grad.numpy(), grad)


class Knob(nn.Module):
    """A model whose loss is a chosen function of the current learning rate."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.zeros(1))

    def forward(self, x):
        return x * self.w


def _sweep(curve, **kw):
    net = Knob()
    opt = optim.SGD(net.parameters(), lr=1.0)

    def loss_fn(out, y):
        return (out * 0.0).sum() + float(curve(math.log10(opt.param_groups[0]["lr"])))

    batches = [(np.ones(1), np.zeros(1))]
    return lr_find(net, opt, batches, loss_fn, smooth=0.0, **kw), net


def test_the_suggestion_is_the_steepest_fall_before_the_lowest_loss():
    # a valley: falls fastest at lr 1e-3 (u = -3), lowest near 1e-1, then rises
    def f(u):
        return 2 - np.tanh(u + 3) + np.exp(3 * u)

    res, _ = _sweep(f, start_lr=1e-6, end_lr=1.0, steps=121)  # 20 rates a decade
    assert res.reason == "completed"
    np.testing.assert_allclose(res.losses, [f(math.log10(lr)) for lr in res.lrs], rtol=1e-12)
    u = np.linspace(-6, 0, 600001)  # the answer from the analytic curve, finely
    df = -1 / np.cosh(u + 3) ** 2 + 3 * np.exp(3 * u)
    steep, lowest = u[np.argmin(df)], u[np.argmin(f(u))]
    assert abs(steep + 3) < 1e-3 and -1.5 < lowest < -0.5
    assert abs(math.log10(res.suggested_lr) - steep) <= 0.05 / 2 + 1e-9  # half a grid step
    assert abs(math.log10(res.min_loss_lr) - lowest) <= 0.05 / 2 + 1e-9
    # a noisy first tenth is not read; a curve that never falls has no suggestion
    assert suggest([1e-3, 1e-2, 1e-1, 1.0], [3.0, 2.0, 2.5, 2.6], skip_start=1) == (None, 0.01)
    assert suggest([1e-3, 1e-2, 1e-1, 1.0], [1.0, 1.5, 2.0, 4.0]) == (None, 1e-3)


def test_divergence_stops_the_sweep_with_the_reason():
    def f(u):
        return 1 + np.exp(3 * u)

    res, net = _sweep(f, start_lr=1e-6, end_lr=100.0, steps=81)
    lrs = np.array(formula(1e-6, 100.0, 81))
    values = f(np.log10(lrs))
    first = next(i for i in range(1, 81) if values[i] > 4 * values[:i].min())
    assert res.stopped_early and res.reason.startswith("diverged: the smoothed loss")
    assert len(res.lrs) == first + 1  # the diverging step is recorded, then it stops
    assert f"at lr {lrs[first]:.3g} (step {first})" in res.reason
    assert net.w.numpy().tolist() == [0.0]


def test_a_non_finite_loss_or_the_end_of_the_batches_stops_it():
    def f(u):
        return np.nan if u > -1.95 else 1.0

    res, _ = _sweep(f, start_lr=1e-6, end_lr=1.0, steps=61)
    assert res.stopped_early and res.reason.startswith("the loss was nan at lr")
    assert len(res.lrs) == 41 and max(res.lrs) == pytest.approx(1e-2, rel=1e-12)
    net = nn.Linear(2, 2)
    once = iter([(np.ones((1, 2), np.float32), np.zeros(1, np.int64))] * 5)
    res = lr_find(net, optim.SGD(net.parameters(), lr=0.1), once, steps=20)
    assert res.reason == "the batches ran out after 5 steps" and len(res.losses) == 5


@pytest.mark.parametrize("kw, message", [
    (dict(start_lr=1.0, end_lr=0.1), r"end_lr \(0.1\) must be larger than start_lr \(1\)"),
    (dict(start_lr=0.0), "start_lr must be a positive number"),
    (dict(steps=5), "steps must be an integer of at least 10"),
    (dict(smooth=1.0), "smooth must be in"),
])
def test_bad_settings_are_named(kw, message):
    net = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=message):
        lr_find(net, optim.SGD(net.parameters(), lr=0.1), [], **kw)


def test_one_pair_instead_of_batches_is_named():
    net = nn.Linear(2, 2)
    x, y = np.ones((1, 2), np.float32), np.zeros(1, np.int64)
    with pytest.raises(TypeError, match=r"batches is one \(x, y\) pair; pass a list"):
        lr_find(net, optim.SGD(net.parameters(), lr=0.1), (x, y))


def test_the_config_sweep_is_fits_setup(tmp_path):
    """The first loss (before any step) is fit's first: the same model, data order,
    augmentation, normalisation and label smoothing; no folder is written without out."""
    values = dict(model="lenet5", data="synthetic:96", batch_size=16, model_kwargs={},
                  label_smoothing=0.1, augment=["crop", "flip"], progress=False,
                  log_steps=True, seed=4)
    lines = []
    fit(TrainConfig.from_dict({**values, "max_steps": 1, "out": str(tmp_path / "fit")}),
        log=lines.append)
    first = float(next(x for x in lines if x.startswith("step 1 ")).split()[3])
    cfg = TrainConfig.from_dict({**values, "out": str(tmp_path / "lf")})
    rng = get_rng_state()
    res = lr_find_config(cfg, steps=10, log=lambda line: None)
    assert res.losses[0] == pytest.approx(first, abs=1e-6)
    assert res.config == cfg.to_dict() and len(res.lrs) == 10
    assert not (tmp_path / "lf").exists() and get_rng_state() == rng


def test_the_config_sweep_leaves_lookahead_out():
    # Lookahead pulls the weights back every k steps, which is no effect of the rate: the
    # sweep of a config with it is the sweep of the same config without it
    values = dict(model="lenet5", data="synthetic:96", batch_size=8, model_kwargs={},
                  progress=False, seed=2)
    plain = lr_find_config(TrainConfig.from_dict(values), steps=10, log=lambda line: None)
    ahead = lr_find_config(TrainConfig.from_dict({**values, "lookahead_k": 2,
                                                  "lookahead_ramp": True}),
                           steps=10, log=lambda line: None)
    assert ahead.losses == plain.losses


@pytest.mark.slow
def test_cli_writes_json_and_png_and_prints_the_suggestion(tmp_path, capsys):
    out = tmp_path / "lf"
    assert main(["lr-find", "--data", "synthetic:64", "--model", "convnetjs_cifar10",
                 "--batch-size", "16", "--steps", "20", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    saved = json.loads((out / "lr_find.json").read_text())
    n = len(saved["lrs"])
    assert 10 <= n <= 20 and len(saved["losses"]) == len(saved["smoothed"]) == n
    np.testing.assert_allclose(saved["lrs"], formula(1e-7, 10.0, 20)[:n], rtol=1e-12)
    assert saved["config"]["model"] == "convnetjs_cifar10" and saved["rule"]
    sug = saved["suggested_lr"]
    assert sug is not None and f"suggested lr: {sug:.3g}" in text
    assert (f"train with it: convnetpy train --model convnetjs_cifar10 --data synthetic:64 "
            f"--batch-size 16 --lr {sug:.3g}") in text
    assert f"wrote {out / 'lr_find.json'}, {out / 'lr_find.png'}" in text
    with Image.open(out / "lr_find.png") as img:
        assert img.format == "PNG" and img.width > 300 and img.height > 200
    # without -o: a fresh lr-find-<time> folder under --out; --quiet drops the progress lines
    assert main(["lr-find", "--data", "synthetic:32", "--model", "convnetjs_cifar10",
                 "--batch-size", "8", "--steps", "10", "--out", str(tmp_path / "runs"),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    made = list((tmp_path / "runs").iterdir())
    assert len(made) == 1 and made[0].name.startswith("lr-find-")
    assert (made[0] / "lr_find.json").is_file() and "lr-find: step" not in text


@pytest.mark.parametrize("argv, message", [
    (["--steps", "5"], "--steps must be an integer of at least 10"),
    (["--start-lr", "1", "--end-lr", "0.1"], r"--end-lr \(0.1\) must be larger than"),
    (["--start-lr", "-1"], "--start-lr must be a positive number"),
    (["--preset", "nope"], "unknown preset 'nope'"),
])
def test_cli_bad_values_exit_2_with_a_message(argv, message, capsys):
    assert main(["lr-find", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convnetpy lr-find: error:")
    assert re.search(message, err), err


def _options(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def test_train_keeps_its_options_and_lr_find_offers_only_what_applies(capsys):
    assert _options("train") == {
        "-h", "--help", "--preset", "--model", "--data", "--epochs", "--batch-size", "--lr",
        "--out", "--resume", "--set", "--quiet", "--distributed", "--dashboard", "--port",
        "--tensorboard", "--detect-anomaly",
        "--host", "--allow-remote"}
    assert _options("lr-find") == {
        "-h", "--help", "--preset", "--model", "--data", "--batch-size", "--out", "--set",
        "--start-lr", "--end-lr", "--steps", "-o", "--output", "--quiet"}
    with pytest.raises(SystemExit) as e:
        main(["lr-find", "--epochs", "3"])
    assert e.value.code == 2 and "unrecognized arguments: --epochs" in capsys.readouterr().err
