"""Training health (train/health.py, viz/health.py): the recorded numbers against hand
computations, the warnings (each once, with its number), health.jsonl through read_health
and a resume, the default callbacks, and the figure's data against the records."""

import json
import math

import numpy as np
import pytest

from convnetpy import nn
from convnetpy.data import synthetic
from convnetpy.random import manual_seed
from convnetpy.train import (
    Callback,
    HealthMonitor,
    TrainConfig,
    default_callbacks,
    fit,
    preset,
    read_health,
)
from convnetpy.train import health as H

PLAIN = dict(optimizer="sgd", momentum=0.0, nesterov=False, weight_decay=0.0,
             schedule="constant", augment=[], progress=False, val_fraction=0.25)


def tiny(dead_channels: int = 0) -> nn.Module:
    """conv(1->4, 3x3) - ReLU - flatten - linear(4*6*6 -> 4); the first ``dead_channels``
    channels get a bias of -100, so that their ReLU outputs are 0 for every input."""
    manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 4))
    net[0].bias.data[:dead_channels] = -100.0
    return net


class Keep(Callback):
    """What an independent observer sees after each step: weights, gradients, loss."""

    def __init__(self, model):
        self.model, self.steps = model, []
        self.start = {n: p.numpy().copy() for n, p in model.named_parameters()}

    def on_step_end(self, state):
        self.steps.append({"loss": state.loss, "lr": state.optimizer.param_groups[0]["lr"],
                           "w": {n: p.numpy().copy() for n, p in self.model.named_parameters()},
                           "g": {n: p.grad.numpy().copy()
                                 for n, p in self.model.named_parameters()}})


def run_tiny(tmp_path, model, callbacks=(), log=None, **kw):
    cfg = TrainConfig.from_dict({**PLAIN, "epochs": 1, "batch_size": 8, "lr": 0.1,
                                 "health_every": 1, "out": str(tmp_path), **kw})
    lines: list[str] = []
    r = fit(model, synthetic(48, shape=(1, 8, 8)), cfg, list(callbacks),
            log=lines.append if log is None else log)
    return r, lines


def test_histogram_counts_match_an_independent_binning():
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        x = (rng.standard_normal(5000) * 10.0 ** rng.uniform(-11, 4, 5000)).astype(dt)
        x[:9] = [0.0, -0.0, np.inf, -np.inf, np.nan, 2.0 ** -26, -(2.0 ** -26), 64.0, 128.0]
        counts = np.array(H.histogram(x.reshape(50, 100))["counts"])
        m = np.abs(x.astype(np.float64))
        m[np.isnan(m)] = np.inf  # NaN counts in the outermost bin
        octave = np.floor(np.log2(np.where(m > 0, m, 1.0)))
        mag = np.where(m < 2.0 ** -26, 0, np.minimum(octave + 27, 33)).astype(int)
        ref = np.bincount(np.where(np.signbit(x), 33 - mag, 33 + mag), minlength=67)
        assert counts.sum() == x.size and (counts == ref).all()
    edges = H.HIST_EDGES
    assert len(edges) == 68 and edges[34] == 2.0 ** -26 and edges[-1] == 128.0
    assert (edges == -edges[::-1]).all() and (np.diff(edges) > 0).all()


def test_recorded_numbers_equal_hand_computations_with_plain_sgd(tmp_path):
    model = tiny()
    keep = Keep(model)
    lr = 0.01
    r, _ = run_tiny(tmp_path, model, [keep], max_steps=3, lr=lr)
    records, warnings = read_health(r["run_dir"])
    assert [x["step"] for x in records] == [1, 2, 3] and warnings == []
    for rec, seen, k in zip(records, keep.steps, range(3)):
        before = keep.start if k == 0 else keep.steps[k - 1]["w"]
        assert rec["loss"] == pytest.approx(seen["loss"], rel=1e-12) and rec["lr"] == lr
        for layer in ("0", "3"):
            w0, g = before[f"{layer}.weight"], seen["g"][f"{layer}.weight"]
            w1 = seen["w"][f"{layer}.weight"]
            v = rec["layers"][layer]
            assert v["params"] == ["weight"]
            assert v["param_norm"] == pytest.approx(np.linalg.norm(w0), rel=1e-6)
            assert v["grad_norm"] == pytest.approx(np.linalg.norm(g), rel=1e-6)
            assert v["update_norm"] == pytest.approx(np.linalg.norm(w1 - w0), rel=1e-6)
            # plain SGD: the update is lr * gradient, so ratio = lr ||g|| / ||w||
            assert v["ratio"] == pytest.approx(lr * np.linalg.norm(g) / np.linalg.norm(w0),
                                               rel=1e-4)
            b0, gb = before[f"{layer}.bias"], seen["g"][f"{layer}.bias"]
            assert v["bias"]["param_norm"] == pytest.approx(np.linalg.norm(b0), rel=1e-6)
            assert v["bias"]["grad_norm"] == pytest.approx(np.linalg.norm(gb), rel=1e-6)
            assert sum(v["grad_hist"]["counts"]) == g.size
            h = H.histogram(g)
            assert v["grad_hist"]["counts"] == h["counts"]
        total = math.sqrt(sum(np.sum(np.square(g.astype(np.float64)))
                              for g in seen["g"].values()))
        assert rec["grad_norm"] == pytest.approx(total, rel=1e-6)
        act = rec["activations"]["1"]
        assert act["type"] == "ReLU" and act["units"] == 4
        assert sum(act["hist"]["counts"]) == 8 * 4 * 6 * 6  # the batch's ReLU outputs
    assert records[0]["init"] == {"loss": records[0]["loss"], "chance_loss": math.log(4),
                                  "num_classes": 4}
    assert all("init" not in x for x in records[1:])


def test_dead_units_are_counted_and_warned_once(tmp_path):
    r, lines = run_tiny(tmp_path, tiny(dead_channels=3), max_steps=4)
    records, warnings = read_health(r["run_dir"])
    for rec in records:
        act = rec["activations"]["1"]
        assert act["dead"] == 0.75  # 3 of 4 channels
        assert act["zero"] >= 0.75
        # every output of the dead channels is exactly 0: the middle bin holds them
        assert act["hist"]["counts"][33] >= 0.75 * 8 * 4 * 36
    assert [(w["warning"], w["layer"], w["step"]) for w in warnings] == [("dead_relu", "1", 1)]
    said = [x for x in lines if "health warning" in x]
    assert len(said) == 1 and "1: 75% of the units never activated" in said[0]


def test_an_absurd_learning_rate_warns_too_high_once_per_layer_with_the_number(tmp_path):
    # grad_clip keeps every step finite; the steps are 50 times too big all the same
    r, lines = run_tiny(tmp_path, tiny(), lr=50.0, grad_clip=1.0, max_steps=5)
    records, warnings = read_health(r["run_dir"])
    high = [w for w in warnings if w["warning"] == "ratio_high"]
    assert sorted(w["layer"] for w in high) == ["0", "3"]
    for w in high:
        # the first record above the threshold with another of the two before it; far too
        # big steps alternate with steps of 0 where the softmax saturates
        above = [x["layers"][w["layer"]]["ratio"] > H.RATIO_HIGH for x in records]
        first = next(i for i, a in enumerate(above) if a and any(above[max(i - 2, 0):i]))
        assert w["step"] == records[first]["step"] > 1
        assert w["value"] == records[first]["layers"][w["layer"]]["ratio"] > H.RATIO_HIGH
        said = [x for x in lines if f"{w['layer']}: update/param" in x]
        assert said == [f"health warning at step {w['step']}: {w['message']}"]
        assert f"{w['value']:.1e}" in said[0] and "learning rate likely too high" in said[0]


def test_no_warning_on_the_main_preset_early_on(tmp_path):
    cfg = TrainConfig.from_dict({**preset("digits-lenet5"), "max_steps": 40, "health_every": 4,
                                 "progress": False, "out": str(tmp_path)})
    lines: list[str] = []
    r = fit(config=cfg, log=lines.append)
    records, warnings = read_health(r["run_dir"])
    assert warnings == [] and not [x for x in lines if "health" in x]
    assert [x["step"] for x in records] == [1] + list(range(4, 41, 4))
    init = records[0]["init"]
    assert init["num_classes"] == 10 and abs(init["loss"] / math.log(10) - 1) < 0.05
    assert set(records[0]["layers"]) == {"features.0", "features.3", "classifier.1",
                                         "classifier.3", "classifier.5"}


def test_check_warns_on_each_kind_from_the_records_alone():
    def rec(step, ratio=1e-3, lr=0.1, grad=1.0, small=1.0, dead=0.0, init=None):
        r = {"step": step, "lr": lr, "grad_norm": grad,
             "layers": {"a": {"params": ["weight"], "ratio": ratio, "grad_norm": 1.0},
                        "b": {"params": ["weight"], "ratio": 1e-3, "grad_norm": small},
                        "n": {"params": ["bias"], "ratio": 5.0, "grad_norm": 1.0}},
             "activations": {"r": {"dead": dead}}}
        return r | ({"init": init} if init else {})

    def kinds(r, earlier=()):
        return [(k, layer) for k, layer, _ in H.check(r, list(earlier))]

    assert kinds(rec(1)) == []  # the bias-only layer's ratio of 5 is no warning
    assert kinds(rec(2, ratio=0.5), [rec(1, ratio=0.5)]) == [("ratio_high", "a")]
    assert kinds(rec(2, ratio=0.5), [rec(1)]) == []  # one record is not enough
    spiky = [rec(1, ratio=0.5), rec(2, ratio=0.0)]
    assert kinds(rec(3, ratio=0.5), spiky) == [("ratio_high", "a")]  # 2 of the last 3
    assert kinds(rec(4, ratio=0.5), [rec(1, ratio=0.5), rec(2), rec(3)]) == []
    low = [rec(s, ratio=1e-7) for s in (1, 2)]
    assert kinds(rec(3, ratio=1e-7), low) == [("ratio_low", "a")]
    annealed = [rec(1, ratio=1e-7, lr=1.0), rec(2, ratio=1e-7, lr=0.05)]
    assert kinds(rec(3, ratio=1e-7, lr=0.01), annealed) == []  # the schedule's end
    flat = [rec(s) for s in (1, 2, 3)]
    assert kinds(rec(4, grad=1e3), flat) == [("grad_explode", None)]
    assert kinds(rec(4, grad=None), flat) == [("grad_nonfinite", None)]
    assert kinds(rec(1, small=1e-6)) == [("grad_vanish", "b")]
    assert kinds(rec(1, dead=0.6)) == [("dead_relu", "r")]
    chance = math.log(10)
    assert kinds(rec(1, init={"loss": 2.0 * chance, "chance_loss": chance})) == [
        ("init_loss", None)]
    assert "2.00 x ln(classes)" in H.message("init_loss", None, 2.0)


def test_health_jsonl_round_trips_and_a_cut_line_is_skipped(tmp_path):
    model = tiny(dead_channels=3)
    mon = HealthMonitor(2)
    r, _ = run_tiny(tmp_path, model, [mon], health_every=0, max_steps=5)
    path = tmp_path / r["run_dir"].split("/")[-1] / "health.jsonl"
    assert read_health(r["run_dir"]) == (mon.records, mon.warnings)
    assert [x["step"] for x in mon.records] == [1, 2, 4] and len(mon.warnings) == 1
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"kind": "bins", "edges": H.HIST_EDGES.tolist()}
    assert "edges" not in lines[1]["activations"]["1"]["hist"]  # stored once, at the top
    with open(path, "a") as f:
        f.write('{"kind": "record", "step": 9, "lay')  # a run killed mid-line
    assert read_health(path) == (mon.records, mon.warnings)
    with pytest.raises(FileNotFoundError, match="health_every=0"):
        read_health(tmp_path)


@pytest.mark.slow
def test_health_every_zero_writes_nothing_and_the_callbacks(tmp_path):
    r, _ = run_tiny(tmp_path, tiny(), health_every=0, max_steps=2)
    assert not (tmp_path / r["run_dir"].split("/")[-1] / "health.jsonl").exists()
    assert not any(isinstance(c, HealthMonitor) for c in default_callbacks(
        TrainConfig(health_every=0)))
    on = [c for c in default_callbacks(TrainConfig(health_every=7)) if
          isinstance(c, HealthMonitor)]
    assert len(on) == 1 and on[0].every == 7
    assert not any(isinstance(c, HealthMonitor) for c in default_callbacks(
        TrainConfig(health_every=7), writer=False))  # only rank 0 writes
    hooks = [h for h in vars(Callback) if h.startswith("on_")]
    assert all(callable(getattr(on[0], h)) for h in hooks)  # a callback in all but name
    with pytest.raises(ValueError, match="health_every must be >= 0, got -1"):
        TrainConfig(health_every=-1)
    with pytest.raises(ValueError, match="health_every must be an integer, got '5'"):
        TrainConfig(health_every="5")
    with pytest.raises(ValueError, match="every must be a positive integer, got 0"):
        HealthMonitor(0)
    old = TrainConfig().to_dict()
    del old["health_every"]  # a checkpoint written before the setting existed
    assert TrainConfig.from_dict(old).health_every == TrainConfig().health_every


@pytest.mark.slow
def test_a_resumed_run_records_what_a_straight_run_does(tmp_path):
    base = dict(model="lenet5", data="synthetic:320", epochs=2, batch_size=32, lr=0.02,
                val_fraction=0.2, progress=False, augment=["crop"], model_kwargs={},
                health_every=3, out=str(tmp_path))
    a = fit(config=TrainConfig.from_dict({**base, "run_id": "straight"}), log=lambda s: None)
    b = fit(config=TrainConfig.from_dict({**base, "run_id": "split", "max_steps": 7}),
            log=lambda s: None)
    path = tmp_path / "split" / "health.jsonl"
    assert [x["step"] for x in read_health(path)[0]] == [1, 3, 6]
    stale = json.loads(path.read_text().splitlines()[-1]) | {"step": 9, "loss": -1.0}
    with open(path, "a") as f:  # a record after the checkpoint, then killed mid-line
        f.write(json.dumps(stale) + "\n" + '{"kind": "rec')
    c = fit(resume=tmp_path / "split", overrides={"max_steps": 0}, log=lambda s: None)
    assert c["status"] == "completed" and b["status"] == "max_steps"
    straight, split = read_health(tmp_path / "straight"), read_health(path)
    assert [x["step"] for x in split[0]] == [1, 3, 6, 9, 12, 15]
    assert split == straight  # the same numbers: resume is exact, health changes nothing
    assert path.read_text().count('"kind": "bins"') == 1
    wa = {n: p.numpy() for n, p in a["model"].named_parameters()}
    assert all((wa[n] == p.numpy()).all() for n, p in c["model"].named_parameters())


def test_recording_does_not_change_the_training(tmp_path):
    on, _ = run_tiny(tmp_path, tiny(), max_steps=4, health_every=1, lr=0.05, momentum=0.9)
    off, _ = run_tiny(tmp_path, tiny(), max_steps=4, health_every=0, lr=0.05, momentum=0.9)
    w_on = dict(on["model"].named_parameters())
    assert all((w_on[n].numpy() == p.numpy()).all() for n, p in off["model"].named_parameters())


@pytest.mark.slow
def test_health_figure_plots_the_records(tmp_path):
    from convnetpy.viz.health import health_figure
    from convnetpy.viz.plots import save_figure

    r, _ = run_tiny(tmp_path, tiny(dead_channels=3), max_steps=4, lr=50.0, grad_clip=1.0)
    records, warnings = read_health(r["run_dir"])
    fig = health_figure(records, warnings)
    ratio, grad, dead, hist = fig.axes[:4]
    steps = [x["step"] for x in records]
    lines = {ln.get_label(): ln for ln in ratio.get_lines()}
    for layer in ("0", "3"):
        assert list(lines[layer].get_xdata()) == steps
        assert list(lines[layer].get_ydata()) == [x["layers"][layer]["ratio"] for x in records]
    assert ratio.get_yscale() == "log" and grad.get_yscale() == "log"
    assert list(lines["healthy ~1e-3"].get_ydata()) == [1e-3, 1e-3]
    glines = {ln.get_label(): ln for ln in grad.get_lines()}
    assert list(glines["all layers"].get_ydata()) == [x["grad_norm"] for x in records]
    assert list({ln.get_label(): ln for ln in dead.get_lines()}["1"].get_ydata()) == [
        75.0] * len(records)
    crosses = [(ln.get_xdata()[0], ln.get_ydata()[0]) for ax in (ratio, dead)
               for ln in ax.get_lines() if ln.get_marker() == "x"]
    expected = [(w["step"], records[steps.index(w["step"])]["layers"][w["layer"]]["ratio"]
                 if w["warning"] == "ratio_high" else 75.0) for w in warnings]
    assert sorted(crosses) == sorted(expected) and len(crosses) == 3
    shares = np.array([x["activations"]["1"]["hist"]["counts"] for x in records], float)
    shares /= shares.sum(axis=1, keepdims=True)
    img = np.ma.filled(hist.images[0].get_array(), 0.0)
    assert np.allclose(np.nan_to_num(img), shares.T)
    assert "first loss" in fig.get_suptitle() and "3 warnings" in fig.get_suptitle()
    save_figure(fig, tmp_path / "health.png")
    assert (tmp_path / "health.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no record to plot"):
        health_figure([])
