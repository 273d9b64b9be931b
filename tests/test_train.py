"""Training: the run folder, config validation, NaN/Inf guards, exact resume in a fresh
process (mid-epoch and at an epoch boundary), SIGKILL at random moments, Ctrl-C, and the
CLI end to end on tiny data."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import default_sigint

from convnetpy.cli import main
from convnetpy.data import synthetic
from convnetpy.io import checkpoint as ck
from convnetpy.train import TrainConfig, TrainingError, fit, load_trained

TINY = dict(model="lenet5", data="synthetic:320", epochs=2, batch_size=32, lr=0.02,
            val_fraction=0.2, progress=False, augment=["crop"], model_kwargs={})


def cfg(tmp_path, **kw):
    return TrainConfig.from_dict({**TINY, "out": str(tmp_path), **kw})


def quiet(*a):
    pass


@pytest.mark.slow
def test_fit_learns_and_writes_the_run_folder(tmp_path):
    r = fit(cfg(tmp_path, epochs=3, lr=0.02), log=quiet)
    run = tmp_path / os.path.basename(r["run_dir"])
    assert r["status"] == "completed" and r["val_acc"] > 0.9  # 4 classes: chance is 0.25
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.json",
                                                     "curves.png", "health.jsonl",
                                                     "metrics.jsonl", "summary.txt"]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    assert json.loads((run / "config.json").read_text())["model"] == "lenet5"
    assert "Forward MACs" in (run / "summary.txt").read_text()
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "best" in names and len([n for n in names if n.startswith("step-")]) == 2
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_validation():
    with pytest.raises(ValueError, match="unknown setting\\(s\\) learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="lr must be positive"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="batch_size must be an integer, got '32'"):
        TrainConfig(batch_size="32")
    with pytest.raises(ValueError, match="augment must be a list of"):
        TrainConfig(augment=["rotate"])
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="linear")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_a_diverging_run_stops_naming_the_step_and_tensor(tmp_path):
    c = cfg(tmp_path, lr=1e30, momentum=0.0, weight_decay=0.0, schedule="constant")
    with pytest.raises(TrainingError, match=r"step \d+: (the loss is (nan|inf)|the (gradient|"
                                            r"weight) of \S+ holds NaN or Inf)"):
        fit(c, log=quiet)
    for run in tmp_path.iterdir():  # no checkpoint holds non-finite values
        for p in ck.step_checkpoints(run / "checkpoints"):
            ck.load_checkpoint(p)


def test_non_finite_loss_from_the_data_is_named(tmp_path, monkeypatch):
    import convnetpy.train.loop as loop

    real = loop.F.cross_entropy
    calls = {"n": 0}

    def poisoned(out, y, **kw):
        calls["n"] += 1
        loss = real(out, y, **kw)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(loop.F, "cross_entropy", poisoned)
    with pytest.raises(TrainingError, match=r"step 4: the loss is nan \(epoch 1, batch 4\)"):
        fit(cfg(tmp_path, checkpoint_every=2), log=quiet)
    run = next(tmp_path.iterdir())
    assert [ck.load_checkpoint(p).meta["step"] for p in ck.step_checkpoints(
        run / "checkpoints")] == [2, 4]


def test_shape_mistakes_are_reported_before_training(tmp_path):
    with pytest.raises(ValueError, match="Linear\\(in_features=400"):
        fit(cfg(tmp_path, model="lenet5", data="digits"), log=quiet)  # 28x28 without padding


def _run(args, **kw):
    return subprocess.run([sys.executable, "-m", "convnetpy", "train", *args],
                          capture_output=True, text=True, **kw)


def _state(run_dir):
    c = ck.load_checkpoint(run_dir)
    return c, {k: v for k, v in c.model_state.items()}


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [13, 16], ids=["mid-epoch", "epoch-boundary"])
def test_resume_in_a_fresh_process_is_bit_identical(tmp_path, stop_at):
    base = ["--data", "synthetic:320", "--model", "lenet5", "--epochs", "3", "--batch-size",
            "16", "--quiet", "--set", "val_fraction=0.2", "--set", "model_kwargs={}",
            "--set", 'augment=["crop"]', "--out", str(tmp_path)]
    a = _run(base + ["--set", "run_id=\"straight\""])
    assert a.returncode == 0, a.stderr
    b = _run(base + ["--set", "run_id=\"split\"", "--set", f"max_steps={stop_at}"])
    assert b.returncode == 0, b.stderr
    c_stop = ck.load_checkpoint(tmp_path / "split")
    assert c_stop.meta["step"] == stop_at
    steps_per_epoch = 16  # 256 training images / 16
    assert (c_stop.meta["batch"] == 0) == (stop_at % steps_per_epoch == 0)
    r = _run(["--resume", str(tmp_path / "split"), "--set", "max_steps=0"])
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stdout
    ca, cb = ck.load_checkpoint(tmp_path / "straight"), ck.load_checkpoint(tmp_path / "split")
    assert ca.meta["step"] == cb.meta["step"] == 48
    for k in ca.model_state:
        np.testing.assert_array_equal(ca.model_state[k], cb.model_state[k], err_msg=k)
    for idx, entry in ca.optimizer_state["state"].items():
        for key, v in entry.items():
            np.testing.assert_array_equal(v, cb.optimizer_state["state"][idx][key])
    assert ca.meta["history"] == cb.meta["history"] or [
        (h["val_acc"], h["loss"]) for h in ca.meta["history"]] == [
        (h["val_acc"], h["loss"]) for h in cb.meta["history"]]


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path):
    """20 kills: the newest checkpoint always loads and is at most one interval behind."""
    rng = random.Random(0)
    interval = 3
    args = ["--data", "synthetic:2048", "--model", "lenet5", "--epochs", "50", "--batch-size",
            "32", "--quiet", "--set", "model_kwargs={}", "--set", "log_steps=true",
            "--set", f"checkpoint_every={interval}", "--set", "run_id=\"k\"",
            "--out", str(tmp_path)]
    run = tmp_path / "k"
    checked = 0
    for trial in range(20):
        cmd = ["--resume", str(run), "--set", "log_steps=true"] if ck.step_checkpoints(
            run / "checkpoints") else args
        proc = subprocess.Popen([sys.executable, "-u", "-m", "convnetpy", "train", *cmd],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(1.0, 2.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        steps = [int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")]
        if not ck.step_checkpoints(run / "checkpoints"):
            assert not steps or max(steps) < interval + 1
            continue
        c = ck.load_checkpoint(run)  # always loads
        if steps:
            assert c.meta["step"] >= max(steps) - interval, (trial, c.meta["step"], max(steps))
        checked += 1
    assert checked >= 15
    done = _run(["--resume", str(run), "--set", "max_steps=" + str(
        ck.load_checkpoint(run).meta["step"] + 2)])
    assert done.returncode == 0, done.stderr
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    # far more epochs than run before the signal (sent once the first steps are logged):
    # a fixed sleep let a fast machine finish first
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "convnetpy", "train", "--data", "synthetic:2048",
         "--model", "lenet5", "--epochs", "10000", "--quiet", "--set", "model_kwargs={}",
         "--set", "log_steps=true", "--set", "run_id=\"c\"", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    first = [proc.stdout.readline() for _ in range(3)]
    assert all(line.startswith("step ") for line in first), first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    out = "".join(first) + out
    assert proc.returncode == 0, err
    assert "interrupted at step" in out and "--resume" in out
    last = max(int(line.split()[1]) for line in out.splitlines() if line.startswith("step "))
    assert ck.load_checkpoint(tmp_path / "c").meta["step"] == last


@pytest.mark.slow
def test_cli_train_eval_predict_end_to_end(tmp_path, capsys):
    from PIL import Image

    assert main(["train", "--data", "synthetic:320", "--model", "lenet5", "--epochs", "2",
                 "--quiet", "--set", "model_kwargs={}", "--set", "run_id=\"e2e\"",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "validation accuracy:" in out and "run folder:" in out
    assert main(["eval", str(tmp_path / "e2e"), "--png", str(tmp_path / "conf.png")]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion matrix" in out
    img = synthetic(4).images[0].transpose(1, 2, 0)
    Image.fromarray(img).save(tmp_path / "x.png")
    (tmp_path / "bad.jpg").write_bytes(b"junk")
    assert main(["predict", str(tmp_path / "e2e"), str(tmp_path / "x.png"),
                 str(tmp_path / "bad.jpg"), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("quadrant") == 2 and "bad.jpg: cannot read it" in out
    assert main(["train", "--resume", str(tmp_path / "e2e"), "--set", "lr=1"]) == 2
    assert "only ['checkpoint_every'" in capsys.readouterr().err
    assert main(["train", "--set", "nonsense=1"]) == 2
    assert "unknown setting(s) nonsense" in capsys.readouterr().err


@pytest.mark.slow
def test_resnet20_preset_starts_and_learns(tmp_path):
    """The paper's recipe needs hours here; check that it starts and that the loss falls."""
    from convnetpy.train import preset

    values = {**preset("cifar10-resnet20"), "data": "synthetic:512", "max_steps": 24,
              "batch_size": 32, "progress": False, "log_steps": True, "out": str(tmp_path),
              "augment": ["crop"]}
    lines = []
    r = fit(TrainConfig.from_dict(values), log=lines.append)
    losses = [float(x.split()[3]) for x in lines if x.startswith("step ")]
    assert r["status"] == "max_steps" and len(losses) == 24
    assert np.mean(losses[-6:]) < np.mean(losses[:6])


def test_finite_checks_skip_frozen_parameters_and_name_the_bad_one():
    from convnetpy import nn
    from convnetpy.train.loop import _check_finite

    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    net[0].requires_grad_(False)
    net[1].weight.grad = net[1].weight.detach().clone()
    _check_finite(net, 7, "gradient")  # net[0] has no gradient: skipped, no error
    net[1].weight.grad.data[0, 0] = np.inf
    with pytest.raises(TrainingError, match="step 7: the gradient of 1.weight holds NaN or Inf"):
        _check_finite(net, 7, "gradient")


def test_a_users_callback_sees_every_hook_in_order_and_can_stop_the_run(tmp_path):
    from convnetpy.train import Callback

    class Recorder(Callback):
        def __init__(self):
            self.events = []

        def on_train_begin(self, state):
            self.events.append(("begin", state.step))

        def on_epoch_begin(self, state):
            self.events.append(("epoch", state.epoch))

        def on_step_end(self, state):
            self.events.append(("step", state.step, round(state.loss, 6)))
            if state.step == 11:
                state.request_stop("enough")

        def on_epoch_end(self, state):
            self.events.append(("epoch_end", state.record["epoch"], state.record["val_acc"]))

        def on_train_end(self, state):
            self.events.append(("end", state.status))

    rec, lines = Recorder(), []
    r = fit(config=cfg(tmp_path, log_steps=True), callbacks=[rec], log=lines.append)
    kinds = [e[0] for e in rec.events]
    # 256 training images / 32: 8 steps per epoch; the stop comes at step 11, mid-epoch 2
    assert kinds == ["begin", "epoch"] + ["step"] * 8 + ["epoch_end", "epoch"] + \
        ["step"] * 3 + ["end"]
    assert r["status"] == "enough" and rec.events[-1] == ("end", "enough")
    # the callback saw the losses the step log printed, in order
    logged = [round(float(x.split()[3]), 6) for x in lines if x.startswith("step ")]
    assert [e[2] for e in rec.events if e[0] == "step"] == logged
    assert rec.events[10][1:] == (1, r["history"][0]["val_acc"])
    # a stop mid-epoch leaves a checkpoint at that step, which resumes
    run = tmp_path / os.path.basename(r["run_dir"])
    assert ck.load_checkpoint(run).meta["step"] == 11


def test_fit_takes_a_model_and_a_dataset_object(tmp_path):
    from convnetpy import nn

    data = synthetic(160)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 15 * 15, 4))
    r = fit(net, data, cfg(tmp_path, epochs=1), log=quiet)
    assert r["model"] is net and r["status"] == "completed" and len(r["history"]) == 1
    # the recipe cannot rebuild either object: loading says so and how to do it instead
    run = r["run_dir"]
    with pytest.raises(ValueError, match="model object .*Sequential.*restore"):
        load_trained(run)
    with pytest.raises(ValueError, match="resume it from Python"):
        fit(resume=run, log=quiet)
    restored = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 15 * 15, 4))
    ck.restore(ck.load_checkpoint(run), restored)
    np.testing.assert_array_equal(restored[0].weight.numpy(), net[0].weight.numpy())
    assert ck.load_checkpoint(run).meta["given"] == {
        "model": "convnetpy.nn.container.Sequential", "data": data.name}
    with pytest.raises(ValueError, match="Linear\\(in_features=10"):
        fit(nn.Sequential(nn.Flatten(), nn.Linear(10, 4)), data, cfg(tmp_path), log=quiet)


def test_eval_of_a_run_on_a_dataset_object_asks_for_the_data(tmp_path, capsys):
    data = synthetic(160)
    r = fit(None, data, cfg(tmp_path, epochs=1), log=quiet)
    assert main(["eval", r["run_dir"]]) == 2
    assert "dataset object passed to fit" in capsys.readouterr().err
    assert main(["eval", r["run_dir"], "--data", "synthetic:160", "--split", "val"]) == 0


def test_a_failing_callback_still_ends_every_callback(tmp_path):
    from convnetpy.train import Callback

    class Boom(Callback):
        def on_step_end(self, state):
            if state.step == 2:
                raise RuntimeError("boom")

    class Last(Callback):
        status = None

        def on_train_end(self, state):
            Last.status = state.status

    with pytest.raises(RuntimeError, match="boom"):
        fit(config=cfg(tmp_path), callbacks=[Boom(), Last()], log=quiet)
    assert Last.status == "failed"
