"""Anomaly mode (``convnetpy.autograd.detect_anomaly``, ``train --detect-anomaly``): the first op
whose forward output or backward gradient is not finite raises, naming the op, its layer and
the pass; off, nothing is checked and NumPy's floating-point warnings never reach the user."""

import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import convnetpy as cp
from convnetpy import models, nn
from convnetpy.autograd import AnomalyError, detect_anomaly, set_detect_anomaly
from convnetpy.cli import main
from convnetpy.io import checkpoint as ck
from convnetpy.train import TrainConfig, TrainingError, fit


class Log(nn.Module):
    def forward(self, x):
        return x.log()


class Root(nn.Module):
    def forward(self, x):
        return x ** 0.5


def lenet_input(poison=None):
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 28, 28)).astype(np.float32)
    if poison is not None:
        x[1, 0, 5, 7] = poison
    return cp.tensor(x)


def test_an_input_holding_inf_raises_at_the_first_layer():
    net = models.get("lenet5", num_classes=10, padding=2)
    out = net(lenet_input(np.inf))  # off: the inf flows through silently
    assert not np.isfinite(out.numpy()[1]).all() and np.isfinite(out.numpy()[0]).all()
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        net(lenet_input(np.inf))
    e = info.value
    assert (e.op, e.phase, e.path, type(e.layer).__name__) == ("Conv2d", "forward",
                                                                "features.0", "Conv2d")
    assert e.layer is net.features[0]
    assert str(e).startswith("detect_anomaly: the forward output of Conv2d in layer features.0 "
                             "(Conv2d(1, 6, kernel_size=(5, 5)")
    assert "its input 0 already held 1 non-finite value (inf)" in str(e)


def test_the_op_that_makes_finite_values_non_finite_is_named():
    cp.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.ReLU(), Log()), nn.Linear(3, 2))
    x = cp.tensor(np.array([[1.0, -2.0, 0.5, 3.0]], dtype=np.float32))
    net[0].weight.data[...] = 0  # the ReLU gives exact zeros, whose log is -inf
    net[0].bias.data[...] = 0
    with detect_anomaly(), pytest.raises(AnomalyError, match=r"the forward output of Log in "
                                         r"layer 1\.1 \(Log\(\)\) holds 3 non-finite values "
                                         r"\(-inf\) of 3; its inputs were finite"):
        net(x)
    with detect_anomaly(), pytest.raises(AnomalyError, match="Mul outside any layer"):
        cp.tensor(np.float32(3e38)) * 10.0  # an op called outside any module


def test_a_non_finite_gradient_is_named_with_its_layer_and_pass():
    net = nn.Sequential(nn.ReLU(), Root())
    x = cp.tensor(np.array([[0.0, 4.0]]), requires_grad=True)
    with detect_anomaly():
        y = net(x).sum()  # sqrt(0) = 0 is finite, its gradient is not
        with pytest.raises(AnomalyError) as info:
            y.backward()
    e = info.value
    assert (e.op, e.phase, e.path) == ("Pow", "backward", "1")
    assert str(e) == ("detect_anomaly: the backward of Pow in layer 1 (Root()) sends input 0 a "
                      "gradient holding 1 non-finite value (inf) of 2; the gradient it received "
                      "was finite, so this op's backward produced them")


def test_a_gradient_for_a_parameter_names_it():
    lin = nn.Linear(1, 1, bias=False)
    lin.weight.data[...] = 1e-30
    x = cp.tensor(np.array([[3e38]], dtype=np.float32))
    with detect_anomaly():
        loss = (lin(x) * 10.0).sum()  # forward 3e9; the weight's gradient 3e39 overflows
        with pytest.raises(AnomalyError, match=r"the backward of Linear in Linear\(in_features="
                                               r"1, out_features=1, bias=False\) sends input 1 "
                                               r"\(weight\) a gradient holding 1 non-finite"):
            loss.backward()


def test_off_it_checks_nothing_and_is_restored_after_an_error():
    net = nn.Sequential(nn.Linear(2, 2))
    bad = cp.tensor([[np.inf, 1.0]])
    with pytest.raises(AnomalyError):
        with detect_anomaly():
            net(bad)
    net(bad)  # the mode ended with the block, even though it raised
    set_detect_anomaly(True)
    try:
        with pytest.raises(AnomalyError):
            net(bad)
    finally:
        set_detect_anomaly(False)
    net(bad)


def test_the_mode_is_per_thread():
    net = nn.Sequential(nn.Linear(2, 2))
    seen = []
    with detect_anomaly():
        t = threading.Thread(target=lambda: seen.append(net(cp.tensor([[np.inf, 1.0]]))))
        t.start()
        t.join()
    assert len(seen) == 1  # the other thread ran unchecked


@pytest.mark.slow
def test_numpy_warnings_do_not_reach_the_console():
    net = models.get("lenet5", num_classes=10, padding=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = lenet_input(np.inf)
        x.requires_grad = True
        out = net(x)
        out.sum().backward()
        cp.F.conv2d(x, net.features[0].weight)  # an F op called on its own
        cp.tensor([1e38], dtype="float32") * 1e10
    assert [str(w.message) for w in caught] == []
    # and in a fresh process, as a user's script (NumPy's own default filters)
    code = ("import numpy as np, convnetpy as cp\n"
            "x = np.ones((1, 3, 8, 8), np.float32); x[0, 0, 0, 0] = np.inf\n"
            "net = cp.models.get('convnetjs_cifar10', num_classes=10)\n"
            "y = cp.tensor(np.zeros(3, np.float32)) / 0.0\n"
            "print(np.isinf(cp.F.conv2d(cp.tensor(x), cp.ones(2, 3, 3, 3)).numpy()).any(),"
            " np.isnan(y.numpy()).all())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"] and proc.stderr == ""


def test_a_diverging_run_under_the_cli_flag_stops_naming_the_op(tmp_path, capsys):
    args = ["train", "--model", "lenet5", "--data", "synthetic:64", "--epochs", "3", "--lr",
            "1e30", "--batch-size", "16", "--quiet", "--out", str(tmp_path), "--set",
            "checkpoint_every=1", "--set", "schedule=constant", "--set", "momentum=0"]
    assert main(args + ["--detect-anomaly"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convnetpy train: error: detect_anomaly: the ") and err.count("\n") == 1
    assert " in layer " in err and "non-finite" in err
    # without the flag the trainer's own check stops it, with its message
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "training stopped (try a lower lr" in err and "--detect-anomaly" in err
    runs = list(tmp_path.iterdir())
    assert len(runs) == 2
    for run in runs:  # whatever each run left behind loads
        for p in ck.step_checkpoints(run / "checkpoints"):
            ck.load_checkpoint(p)


def test_fit_under_the_mode_trains_as_without_it(tmp_path):
    def run(out):
        cfg = TrainConfig(model="lenet5", data="synthetic:64", epochs=1, batch_size=16,
                          progress=False, out=str(out), health_every=0)
        return fit(cfg, log=lambda line: None)

    plain = run(tmp_path / "a")
    with detect_anomaly():
        checked = run(tmp_path / "b")
    def untimed(history):
        return [{k: h[k] for k in ("epoch", "step", "loss", "acc", "val_loss", "val_acc", "lr")}
                for h in history]

    assert untimed(plain["history"]) == untimed(checked["history"])  # the checks change nothing
    for (name, a), b in zip(plain["model"].state_dict().items(),
                            checked["model"].state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_training_error_still_names_the_loss(tmp_path):
    cfg = TrainConfig(model="lenet5", data="synthetic:64", epochs=1, batch_size=16, lr=1e30,
                      momentum=0.0, schedule="constant", progress=False, out=str(tmp_path))
    with pytest.raises(TrainingError, match=r"step \d+: (the loss is|the (gradient|weight))"):
        fit(cfg, log=lambda line: None)
