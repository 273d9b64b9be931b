"""The dashboard: endpoints over a real socket on 127.0.0.1, the security rules, the
monitor's controls, and a training run watched from start to finish."""

import http.client
import io
import json
import time

import numpy as np
import pytest
from conftest import default_sigint
from PIL import Image

import convnetpy as cp
from convnetpy import nn
from convnetpy.dashboard import Monitor, serve, watcher
from convnetpy.dashboard.server import MAX_UPLOAD

META = {"classes": ["a", "b", "c"], "input_shape": [3, 8, 8], "mean": [0.5] * 3,
        "std": [0.25] * 3}


def tiny_model():
    cp.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64, 3))


def png(size=(8, 8), mode="RGB") -> bytes:
    buf = io.BytesIO()
    arr = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def dash():
    examples = (np.random.default_rng(1).random((5, 3, 8, 8)) * 255).astype(np.uint8)
    monitor = Monitor(tiny_model(), META, examples, np.array([0, 1, 2, 0, 1]), "SUMMARY",
                      {"lr": 0.1}, snapshot_every=0.0)
    srv = serve(monitor, "127.0.0.1", 0)
    yield srv
    srv.stop()


def request(srv, method, path, body=None, headers=None, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    h = {"Host": host or f"127.0.0.1:{srv.server_address[1]}"}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, data


def wait_snapshot(srv, timeout=20):
    t0 = time.time()
    while time.time() - t0 < timeout:
        status, body = request(srv, "GET", "/api/snapshot")
        snap = json.loads(body)
        if snap.get("version"):
            return snap
        time.sleep(0.05)
    raise AssertionError("no snapshot")


def test_page_and_static_files_and_nothing_else(dash):
    status, body = request(dash, "GET", "/")
    assert status == 200 and b"<title>convnetpy dashboard</title>" in body
    assert request(dash, "GET", "/static/app.js")[0] == 200
    assert request(dash, "GET", "/static/style.css")[0] == 200
    for probe in ["/static/../server.py", "/static/%2e%2e/server.py", "/static/",
                  "/../../etc/passwd", "/static/..%2f..%2fmonitor.py", "/etc/passwd",
                  "/static/index.html/../../__init__.py"]:
        assert request(dash, "GET", probe)[0] == 404, probe


def test_foreign_host_header_is_refused(dash):
    assert request(dash, "GET", "/", host="evil.example:80")[0] == 403
    assert request(dash, "GET", "/api/state", host="attacker.test")[0] == 403
    assert request(dash, "GET", "/", host=f"localhost:{dash.server_address[1]}")[0] == 200


def test_controls_need_the_token(dash):
    m = dash.monitor
    body = json.dumps({"action": "pause"})
    assert request(dash, "POST", "/api/control", body)[0] == 403
    assert request(dash, "POST", "/api/control?token=wrong", body)[0] == 403
    assert not m.paused
    status, _ = request(dash, "POST", f"/api/control?token={dash.token}", body)
    assert status == 200 and m.paused
    status, _ = request(dash, "POST", "/api/control", json.dumps({"action": "resume"}),
                        {"X-Token": dash.token})
    assert status == 200 and not m.paused
    status, _ = request(dash, "POST", "/api/control", json.dumps({"action": "lr", "lr": 0.02}),
                        {"X-Token": dash.token})
    assert status == 200 and m.take_lr() == 0.02 and m.take_lr() is None
    status, data = request(dash, "POST", "/api/control", json.dumps({"action": "lr", "lr": -1}),
                           {"X-Token": dash.token})
    assert status == 400 and b"learning rate" in data
    status, data = request(dash, "POST", "/api/control", b"{not json",
                           {"X-Token": dash.token})
    assert status == 400


def test_uploads_are_checked_and_the_server_keeps_serving(dash):
    tok = {"X-Token": dash.token}
    assert request(dash, "POST", "/api/upload", png())[0] == 403  # no token
    status, data = request(dash, "POST", "/api/upload", b"x" * (MAX_UPLOAD + 1), tok)
    assert status == 413 and b"10 MB" in data
    status, data = request(dash, "POST", "/api/upload", b"GIF89a not allowed", tok)
    assert status == 415
    status, data = request(dash, "POST", "/api/upload",
                           b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, tok)
    assert status == 400 and b"cannot decode" in data
    status, data = request(dash, "POST", "/api/upload", png((40, 30)), tok)
    assert status == 200
    top = json.loads(data)["top"]
    assert len(top) == 3 and abs(sum(t["p"] for t in top) - 1) < 1e-5
    assert request(dash, "GET", "/api/state")[0] == 200  # still serving
    snap = wait_snapshot(dash)
    for _ in range(100):  # the uploaded image becomes the example
        if snap["example"]["name"] == "uploaded image":
            break
        time.sleep(0.05)
        snap = json.loads(request(dash, "GET", "/api/snapshot")[1])
    assert snap["example"]["name"] == "uploaded image"


def test_snapshot_layers_units_and_events(dash):
    m = dash.monitor
    m.on_step(1, 2.0, 0.25, 0.1, 0.01, 32)
    m.on_epoch({"epoch": 1, "step": 1, "loss": 2.0, "acc": 0.25, "val_loss": 1.9,
                "val_acc": 0.3})
    snap = wait_snapshot(dash)
    kinds = [L["kind"] for L in snap["layers"]]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    conv = snap["layers"][0]
    assert conv["param_formula"] == "(3*3*3 + 1) * 4 = 112"
    assert conv["act"].startswith("data:image/png;base64,") and "filters" in conv
    assert len(snap["predictions"]) == 5 and snap["example"]["top"]
    status, body = request(dash, "GET", "/api/unit?layer=0&c=1&y=2&x=3")
    u = json.loads(body)
    assert status == 200 and u["kind"] == "Conv2d" and "relu" in u
    assert u["input_window"] == {"rows": [1, 4], "cols": [2, 5], "size": [3.0, 3.0]}
    assert request(dash, "GET", "/api/unit?layer=3&c=0&y=0&x=0")[0] == 400  # Flatten
    assert request(dash, "GET", "/api/unit?layer=x")[0] == 400
    assert request(dash, "GET", "/api/state?since=abc")[0] == 400
    assert request(dash, "POST", "/api/upload", b"", {"X-Token": dash.token,
                                                      "Content-Length": "-5"})[0] == 400
    st = json.loads(request(dash, "GET", "/api/state")[1])
    assert st["steps"][-1]["loss"] == 2.0 and st["history"][0]["val_acc"] == 0.3
    conn = http.client.HTTPConnection("127.0.0.1", dash.server_address[1], timeout=10)
    conn.request("GET", "/api/events", headers={"Host": f"127.0.0.1:{dash.server_address[1]}"})
    res = conn.getresponse()
    assert res.getheader("Content-Type") == "text/event-stream"
    line = res.fp.readline()
    assert line.startswith(b"data: ") and json.loads(line[6:])["steps"][0]["step"] == 1
    conn.close()


def decode_data_url(url: str) -> np.ndarray:
    import base64

    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_snapshot_explains_the_prediction_with_saliency_and_grad_cam(dash):
    from convnetpy.viz import attribution, render

    m = dash.monitor
    why = wait_snapshot(dash)["explain"]
    pixels = m.examples[0]
    x = m.normalise(pixels)[None]
    with m.view_lock:
        probs = m.predict(pixels[None])[0]
        target = int(np.argmax(probs))
        heats = {"saliency": attribution.saliency(m._viewer, x, target)[0],
                 "gradcam": attribution.grad_cam(m._viewer, x, target, layer="0")[0]}
    assert why["target"] == META["classes"][target] and why["gradcam"]["layer"] == "0"
    for key, heat in heats.items():  # the picture is the method's map over the image, x8
        want = np.asarray(render.overlay(pixels, heat).resize((64, 64), resample=0))
        np.testing.assert_array_equal(decode_data_url(why[key]["image"]), want)
        assert why[key]["max"] == pytest.approx(float(np.abs(heat).max()), rel=1e-6)


def test_class_images_show_each_class_as_the_viewer_model_sees_it(dash):
    from convnetpy.viz.synthesis import class_image

    m = dash.monitor
    wait_snapshot(dash)
    assert request(dash, "POST", "/api/class_images")[0] == 403  # seconds of work: token
    status, body = request(dash, "POST", "/api/class_images", b"", {"X-Token": dash.token})
    r = json.loads(body)
    assert status == 200 and [c["class"] for c in r["images"]] == META["classes"]
    with m.view_lock:
        want = class_image(m._viewer, [0, 1, 2], (3, 8, 8), steps=r["steps"],
                           mean=META["mean"], std=META["std"])
    for got, c in zip(r["images"], want):
        assert got["score"] == pytest.approx(c.score, rel=1e-6)
        assert got["p"] == pytest.approx(c.probability, rel=1e-6)
        img = decode_data_url(got["image"])  # the class image's pixels, upscaled x8
        np.testing.assert_array_equal(img[::8, ::8], c.pixels.transpose(1, 2, 0))
    again = request(dash, "POST", "/api/class_images", b"", {"X-Token": dash.token})[1]
    assert json.loads(again) == r  # made once per step of the weights


def test_the_architecture_diagram_is_served_as_svg(dash):
    import xml.etree.ElementTree as ET

    from convnetpy.viz.diagram import diagram_svg

    status, body = request(dash, "GET", "/diagram.svg")
    assert status == 200 and body.decode() == diagram_svg(tiny_model(), (3, 8, 8))
    ET.fromstring(body)  # well-formed


def test_grad_cam_says_why_it_is_missing_for_a_model_without_conv_layers():
    cp.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(192, 3))
    examples = (np.random.default_rng(1).random((2, 3, 8, 8)) * 255).astype(np.uint8)
    srv = serve(Monitor(mlp, META, examples, snapshot_every=0.0), "127.0.0.1", 0)
    try:
        why = wait_snapshot(srv)["explain"]
    finally:
        srv.stop()
    assert why["saliency"]["image"].startswith("data:image/png")
    assert why["gradcam"] == {"error": "Grad-CAM needs a conv layer; this model has none"}


def test_remote_binding_needs_an_explicit_flag():
    m = Monitor(tiny_model(), META)
    with pytest.raises(ValueError, match="--allow-remote"):
        serve(m, "0.0.0.0", 0)
    m.close()


@pytest.mark.slow
def test_a_watched_training_run_takes_a_new_learning_rate(tmp_path):
    from convnetpy.train import TrainConfig, fit

    servers, lines = [], []
    cfg = TrainConfig(model="lenet5", data="synthetic:256", epochs=2, batch_size=32, lr=0.05,
                      progress=False, out=str(tmp_path), image_size=32)
    watch = watcher(port=0, log=lines.append, snapshot_every=0.0, keep=servers)

    def watched(*args):
        monitor = watch(*args)
        monitor.request_lr(0.01)  # as if the page asked before the first step
        return monitor

    res = fit(cfg, watch=watched, log=lines.append)
    srv = servers[0]
    try:
        assert res["status"] == "completed"
        assert any(line.startswith("dashboard: http://127.0.0.1:") for line in lines)
        assert any("learning rate set to 0.01" in line for line in lines)
        st = json.loads(request(srv, "GET", "/api/state")[1])
        assert st["status"] == "completed" and len(st["history"]) == 2
        assert all(s["lr"] == 0.01 for s in st["steps"][1:])
        assert wait_snapshot(srv)["layers"]
        # the run's health records reach the page as health.jsonl holds them
        from convnetpy.train import read_health

        records, _ = read_health(res["run_dir"])
        shown = st["health"]
        rec = next(r for r in records if r["step"] == shown["step"])
        assert shown["init"] == records[0]["init"] and shown["init"]["num_classes"] == 4
        assert {L["layer"]: L["ratio"] for L in shown["layers"]} == {
            k: v["ratio"] for k, v in rec["layers"].items()}
        assert [a["layer"] for a in shown["activations"]] == list(rec["activations"])
    finally:
        srv.stop()


@pytest.mark.slow
def test_pausing_from_the_page_holds_training_until_resumed(tmp_path):
    import threading

    from convnetpy.train import TrainConfig, fit

    servers, clicked = [], threading.Event()
    cfg = TrainConfig(model="lenet5", data="synthetic:256", epochs=1, batch_size=32, lr=0.05,
                      progress=False, out=str(tmp_path), image_size=32)
    base = watcher(port=0, log=lambda s: None, keep=servers)

    def watch(*args):  # training starts only once the test has clicked pause
        monitor = base(*args)
        clicked.wait(30)
        return monitor

    result = {}
    t = threading.Thread(target=lambda: result.update(fit(cfg, watch=watch,
                                                          log=lambda s: None)))
    t.start()
    while not servers:
        time.sleep(0.01)
    srv = servers[0]
    try:
        status, _ = request(srv, "POST", "/api/control", json.dumps({"action": "pause"}),
                            {"X-Token": srv.token})
        assert status == 200
        clicked.set()
        time.sleep(0.5)
        held = json.loads(request(srv, "GET", "/api/state")[1])
        time.sleep(0.5)
        later = json.loads(request(srv, "GET", "/api/state")[1])
        assert held["status"] == later["status"] == "paused"
        assert held["steps"][-1]["step"] == later["steps"][-1]["step"] == 1  # then it waits
        request(srv, "POST", "/api/control", json.dumps({"action": "resume"}),
                {"X-Token": srv.token})
        t.join(60)
        assert result["status"] == "completed" and result["step"] == 7
        # the second-long pause is not training time (7 small steps take ~0.1 s)
        assert result["history"][0]["time"] < 0.9
    finally:
        clicked.set()
        srv.monitor.pause(False)
        t.join(60)
        srv.stop()


@pytest.mark.slow
def test_dashboard_command_serves_a_finished_run(tmp_path):
    import re
    import signal
    import subprocess
    import sys

    from convnetpy.train import TrainConfig, fit

    run = fit(TrainConfig(model="lenet5", data="synthetic:256", epochs=1, batch_size=32,
                          progress=False, out=str(tmp_path), image_size=32),
              log=lambda s: None)["run_dir"]
    proc = subprocess.Popen([sys.executable, "-m", "convnetpy", "dashboard", run, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=\S+", line)
        if not m:  # end it before reading its error output, which a live server never ends
            proc.kill()
            assert m, line + proc.communicate()[1]
        # a run folder opens its best checkpoint (not the newest step-*), and says so
        assert f"dashboard for {run}/checkpoints/best (epoch 1, step 7)" in line, line
        assert proc.stdout.readline().startswith("showing images of the validation split")
        port = int(m.group(1))

        class Srv:  # what request() needs
            server_address = ("127.0.0.1", port)

        st = json.loads(request(Srv, "GET", "/api/state")[1])
        assert st["status"] == "finished run" and len(st["history"]) == 1
        snap = wait_snapshot(Srv)
        assert snap["layers"][0]["kind"] == "Conv2d" and len(snap["predictions"]) == 24
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        proc.kill()


def test_remote_binding_with_the_flag_prints_a_warning():
    m, lines = Monitor(tiny_model(), META), []
    srv = serve(m, "0.0.0.0", 0, allow_remote=True, log=lines.append)
    try:
        assert lines and lines[0].startswith("WARNING: the dashboard listens on 0.0.0.0")
        assert request(srv, "GET", "/api/state", host="my-machine.lan:8765")[0] == 200
        assert request(srv, "POST", "/api/control", b'{"action": "pause"}')[0] == 403
    finally:
        srv.stop()
