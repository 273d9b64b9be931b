"""TensorBoard event files (train/tensorboard.py): written by a real run, read back here
with tensorboardX's protobufs and a small TFRecord reader (no TensorBoard needed), and held
against what the run itself recorded: its per-step losses, metrics.jsonl, health.jsonl and
the model of its checkpoints."""

import io
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboardX")
from PIL import Image  # noqa: E402
from tensorboardX.proto.event_pb2 import Event  # noqa: E402

from convnetpy.autograd import no_grad  # noqa: E402
from convnetpy.cli import main  # noqa: E402
from convnetpy.tensor import Tensor  # noqa: E402
from convnetpy.train import Callback, TrainConfig, default_callbacks, fit, read_health  # noqa: E402
from convnetpy.train.recipe import load_trained, prepare_data, transforms_for  # noqa: E402
from convnetpy.train.tensorboard import TensorBoardLogger, raw_histogram  # noqa: E402
from convnetpy.viz import render  # noqa: E402


def read_records(path: Path) -> list[bytes]:
    """The records of a TFRecord file: length (u64), its crc, the data, the data's crc."""
    raw, out, i = path.read_bytes(), [], 0
    while i < len(raw):
        (n,) = struct.unpack("<Q", raw[i: i + 8])
        out.append(raw[i + 12: i + 12 + n])
        i += 12 + n + 4
    assert i == len(raw), f"{path}: a record runs past the end of the file"
    return out


def read_events(folder: Path) -> list[Event]:
    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for rec in read_records(path):
            e = Event()
            e.ParseFromString(rec)
            events.append(e)
    return events


def values(events: list[Event], kind: str | None = None) -> dict[str, dict[int, object]]:
    """{tag: {step: value}}: the float of a scalar, else the Summary.Value (its ``kind``
    field set, when given)."""
    out: dict[str, dict[int, object]] = {}
    for e in events:
        for v in e.summary.value:
            if kind is None and v.HasField("simple_value"):
                out.setdefault(v.tag, {})[e.step] = v.simple_value
            elif kind is not None and (v.metadata.plugin_data.plugin_name == "text"
                                       if kind == "text" else v.HasField(kind)):
                tag = v.tag.removesuffix("/text_summary")  # tensorboardX adds it to texts
                out.setdefault(tag, {})[e.step] = v
    return out


def text_of(v) -> str:
    return v.tensor.string_val[0].decode()


def png_of(v) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(v.image.encoded_image_string)).convert("RGB"))


class Steps(Callback):
    def __init__(self):
        self.seen = {}

    def on_step_end(self, state):
        self.seen[state.step] = (state.loss, state.correct / state.batch_size, state.lr)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """LeNet-5 on 288 synthetic images: three whole epochs of 9 steps and 3 steps of the
    next, a health record at steps 1, 10, 20 and 30."""
    tmp = tmp_path_factory.mktemp("tb")
    cfg = TrainConfig(model="lenet5", data="synthetic:320", epochs=4, batch_size=32,
                      max_steps=30, health_every=10, model_kwargs={}, progress=False,
                      out=str(tmp / "runs"), run_id="r1", tensorboard=str(tmp / "tb"))
    steps = Steps()
    result = fit(config=cfg, callbacks=[steps], log=lambda line: None)
    assert result["status"] == "max_steps" and result["step"] == 30 and result["history"]
    events = read_events(tmp / "tb" / "r1")
    return {"cfg": cfg, "result": result, "steps": steps.seen, "events": events,
            "scalars": values(events), "run_dir": Path(result["run_dir"])}


@pytest.mark.slow
def test_step_scalars_are_the_runs(run):
    s, seen = run["scalars"], run["steps"]
    assert sorted(s["train/loss"]) == list(range(1, 31)) == sorted(seen)
    for step, (loss, acc, lr) in seen.items():  # float32 in the event file
        assert s["train/loss"][step] == pytest.approx(loss, rel=1e-6)
        assert s["train/batch_accuracy"][step] == pytest.approx(acc, rel=1e-6)
        assert s["train/lr"][step] == pytest.approx(lr, rel=1e-6)


def test_epoch_scalars_are_metrics_jsonl(run):
    lines = (run["run_dir"] / "metrics.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    assert [r["step"] for r in recs] == [9, 18, 27]
    s = run["scalars"]
    for key in ("loss", "acc", "val_loss", "val_acc", "img_per_s"):
        assert s[f"epoch/{key}"] == {r["step"]: pytest.approx(r[key], rel=1e-6) for r in recs}
    assert "epoch/val_acc_tta" not in s  # tta="none"


def test_health_scalars_are_health_jsonl(run):
    records, _ = read_health(run["run_dir"])
    assert [r["step"] for r in records] == [1, 10, 20, 30]
    s = run["scalars"]
    assert s["health/grad_norm/features.0"].keys() == {1, 10, 20, 30}
    for r in records:
        assert s["health/grad_norm_total"][r["step"]] == pytest.approx(r["grad_norm"], rel=1e-6)
        for layer, v in r["layers"].items():
            got = s[f"health/update_ratio/{layer}"][r["step"]]
            assert got == pytest.approx(v["ratio"], rel=1e-6)
            assert s[f"health/grad_norm/{layer}"][r["step"]] == pytest.approx(v["grad_norm"],
                                                                              rel=1e-6)
        for layer, a in r["activations"].items():
            assert s[f"health/dead_relu/{layer}"][r["step"]] == pytest.approx(a["dead"])


def equal_bins(arr: np.ndarray, bins: int = 64) -> list[int]:
    """Counts in ``bins`` equal bins from min to max, each [left, right), the last closed."""
    x = arr.astype(np.float64).ravel()
    edges = np.linspace(x.min(), x.max(), bins + 1)
    counts = [int(np.sum((x >= lo) & (x < hi))) for lo, hi in zip(edges[:-1], edges[1:])]
    counts[-1] += int(np.sum(x == edges[-1]))
    return counts


def test_histograms_of_weights_gradients_and_activations(run):
    h = values(run["events"], "histo")
    records, _ = read_health(run["run_dir"])
    model = run["result"]["model"]  # as it is at the last record, step 30
    for name, p in model.named_parameters():
        for tag, arr in ((f"weights/{name}", p.numpy()), (f"gradients/{name}", p.grad.numpy())):
            assert h[tag].keys() == {1, 10, 20, 30}
            last = h[tag][30].histo
            assert (last.num, last.min, last.max) == (arr.size, arr.min(), arr.max())
            assert last.sum == pytest.approx(arr.sum(dtype=np.float64), rel=1e-9, abs=1e-12)
            assert last.sum_squares == pytest.approx(np.sum(arr.astype(np.float64) ** 2))
            assert list(last.bucket) == equal_bins(arr)
            assert last.bucket_limit[-1] == arr.max() and len(last.bucket_limit) == 64
    a = records[-1]["activations"]["features.1"]  # the record's own bins, as they are
    histo = h["activations/features.1"][30].histo
    assert list(histo.bucket) == a["hist"]["counts"]
    assert list(histo.bucket_limit) == a["hist"]["edges"][1:]
    assert histo.num == sum(a["hist"]["counts"])


def test_raw_histogram_of_a_record():
    hist = {"edges": [-2.0, -1.0, 0.0, 1.0, 2.0], "counts": [0, 2, 0, 0]}
    raw = raw_histogram(hist, mean=-0.5, std=0.0)
    assert (raw["min"], raw["max"], raw["num"]) == (-1.0, 0.0, 2)
    assert (raw["sum"], raw["sum_squares"]) == (-1.0, 0.5)  # two values of -0.5
    assert raw["bucket_limits"] == [-1.0, 0.0, 1.0, 2.0]


def test_images_and_texts_are_the_epochs_model(run):
    step = run["result"]["history"][-1]["step"]
    trained = load_trained(run["run_dir"] / "checkpoints" / f"step-{step:08d}")
    images = values(run["events"], "image")
    filt = images["filters/features.0"]
    assert filt.keys() == {9, 18, 27}
    weight = trained.model.features[0].weight.numpy()  # (6, 3, 5, 5), each patch 5*8 px
    want = np.asarray(render.filters(weight, scale=8).convert("RGB"))
    np.testing.assert_array_equal(png_of(filt[step]), want)  # lossless: PNG
    pred = images["val/predictions"][step].image
    assert pred.height > 0 and pred.width > 0 and pred.colorspace == 3
    # the text table: the first 8 validation images, predicted by the epoch's model
    cfg = run["cfg"]
    ds, _, val_ds, mean, std = prepare_data(cfg)
    x = val_ds.images[:8].astype(np.float32) / 255
    x = transforms_for(cfg, ds.image_shape, mean, std, False)(x, np.random.default_rng(0))
    with no_grad():
        want_pred = trained.model(Tensor(x)).numpy().argmax(axis=1)
    table = text_of(values(run["events"], "text")["val/predictions"][step])
    rows = [line.strip("| ").split(" | ") for line in table.splitlines()[2:]]
    assert [r[1] for r in rows] == [ds.classes[t] for t in val_ds.labels[:8]]
    assert [r[2] for r in rows] == [ds.classes[p] for p in want_pred]


def test_config_and_status_texts(run):
    texts = values(run["events"], "text")
    config = text_of(texts["config"][0]).strip("`\n")
    assert json.loads(config) == json.loads((run["run_dir"] / "config.json").read_text())
    assert text_of(texts["status"][30]) == "max_steps at step 30"


def test_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(model="lenet5", data="synthetic:64", epochs=1, batch_size=32,
                      max_steps=1, model_kwargs={}, progress=False, out="runs")
    assert not any(isinstance(cb, TensorBoardLogger) for cb in default_callbacks(cfg))
    assert fit(config=cfg, log=lambda line: None)["status"] == "max_steps"
    assert not list(tmp_path.rglob("events.out.tfevents*"))
    with pytest.raises(ValueError, match="tensorboard must be a string"):
        TrainConfig(tensorboard=1)


def test_missing_tensorboardx_gives_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # "import tensorboardX" fails
    cfg = TrainConfig(model="lenet5", data="synthetic:64", epochs=1, max_steps=1,
                      model_kwargs={}, progress=False, out=str(tmp_path / "runs"),
                      tensorboard=str(tmp_path / "tb"))
    hint = r'pip install "convnetpy\[tensorboard\]"'
    with pytest.raises(ImportError, match=hint):
        fit(config=cfg, log=lambda line: None)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("step-*"))
    assert main(["train", "--tensorboard", str(tmp_path / "tb"), "--out", str(tmp_path / "c"),
                 "--quiet"]) == 2
    assert 'pip install "convnetpy[tensorboard]"' in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # said before any run folder


def test_cli_option_and_resume_append(tmp_path):
    tb, out = tmp_path / "tb", tmp_path / "runs"
    common = ["--quiet", "--set", "health_every=0"]
    assert main(["train", "--tensorboard", str(tb), "--data", "synthetic:64", "--model",
                 "lenet5", "--batch-size", "16", "--epochs", "1", "--out", str(out), "--set",
                 "max_steps=2", "--set", "model_kwargs={}", "--set", 'run_id="cli"'] + common) == 0
    assert json.loads((out / "cli" / "config.json").read_text())["tensorboard"] == str(tb)
    first = values(read_events(tb / "cli"))["train/loss"]
    assert sorted(first) == [1, 2]
    # a resumed run (tensorboard is run control) appends a second event file, same folder
    assert main(["train", "--resume", str(out / "cli"), "--tensorboard", str(tb), "--set",
                 "max_steps=3"] + common) == 0
    files = sorted(p.name for p in (tb / "cli").glob("events.out.tfevents.*"))
    assert len(files) == 2 and files[0].endswith(".step0") and files[1].endswith(".step2")
    events = read_events(tb / "cli")
    assert sorted(values(events)["train/loss"]) == [1, 2, 3]
    assert any(e.step == 3 and e.session_log.status == e.session_log.START for e in events)


def test_a_failed_run_still_closes_its_event_file(tmp_path):
    class Boom(Callback):
        def on_step_end(self, state):
            if state.step == 3:
                raise RuntimeError("boom")

    cfg = TrainConfig(model="lenet5", data="synthetic:64", epochs=1, batch_size=8,
                      model_kwargs={}, progress=False, out=str(tmp_path / "runs"), run_id="f",
                      health_every=0, tensorboard=str(tmp_path / "tb"))
    with pytest.raises(RuntimeError, match="boom"):
        fit(config=cfg, callbacks=[Boom()], log=lambda line: None)
    events = read_events(tmp_path / "tb" / "f")
    assert sorted(values(events)["train/loss"]) == [1, 2, 3]
    assert text_of(values(events, "text")["status"][3]) == "failed at step 3"
