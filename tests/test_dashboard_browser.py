"""The dashboard in a real browser: headless Debian Chromium driven by Playwright opens the
page of a short training run, sees the curves move and the layer panels fill, clicks a unit,
uploads an image and sees its top-3 bars, and saves a screenshot (to $CONVNETPY_SCREENSHOTS
when set, for a person to look at)."""

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed "
                       "(pip install playwright; .ci/run installs it)"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no Chromium at /usr/bin/chromium "
                       "(apt-get install chromium; .ci/run installs it)"),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_dashboard_in_chromium(tmp_path):
    from convnetpy.dashboard import watcher
    from convnetpy.train import TrainConfig, fit

    servers, gate = [], threading.Event()
    cfg = TrainConfig(model="lenet5", data="digits", epochs=2, batch_size=64, lr=0.05,
                      progress=False, out=str(tmp_path / "runs"), model_kwargs={"padding": 2})
    base = watcher(port=0, log=lambda s: None, snapshot_every=0.5, keep=servers)

    def watch(*args):
        monitor = base(*args)
        gate.wait(60)  # start training once the page is open, so it sees the curves move
        return monitor

    result = {}
    t = threading.Thread(target=lambda: result.update(fit(cfg, watch=watch,
                                                          log=lambda s: None)), daemon=True)
    t.start()
    while not servers:
        time.sleep(0.02)
    srv = servers[0]
    upload = tmp_path / "upload.png"
    Image.fromarray((np.random.default_rng(0).random((50, 40)) * 255).astype(np.uint8)).save(
        upload)
    errors = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.url)
            gate.set()
            page.wait_for_selector(".layer img.act", timeout=60_000)
            page.wait_for_function("+document.getElementById('n-step').textContent > 0",
                                   timeout=60_000)
            first = int(page.inner_text("#n-step"))
            page.wait_for_function(f"+document.getElementById('n-step').textContent > {first}",
                                   timeout=60_000)
            drawn = page.evaluate("""() => {
                const c = document.getElementById('loss-chart');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""")
            assert drawn > 500  # the curve and its frame are on the canvas
            kinds = page.locator(".layer .meta b").all_inner_texts()
            assert kinds[:3] == ["Conv2d", "ReLU", "MaxPool2d"] and "Linear" in kinds
            page.click(".layer img.act", position={"x": 4, "y": 4})
            page.wait_for_function("document.getElementById('unit').textContent"
                                   ".includes('ReLU: max(0')", timeout=30_000)
            page.set_input_files("#upload", str(upload))
            page.wait_for_function("document.getElementById('ex-name').textContent"
                                   ".startsWith('uploaded image')", timeout=30_000)
            assert page.locator("#ex-top .bar").count() == 3  # its top-3 bars
            assert page.locator("#preds .pred").count() == 24
            # why: saliency and Grad-CAM of the example, drawn as pictures
            page.wait_for_function("document.getElementById('why-gradcam').naturalWidth > 0 "
                                   "&& document.getElementById('why-saliency').naturalWidth > 0",
                                   timeout=30_000)
            assert page.inner_text("#why-gradcam-cap").startswith("Grad-CAM on features.")
            # the health record of step 1 and its per-layer table
            page.wait_for_selector("#health-table table", timeout=30_000)
            assert "first loss" in page.inner_text("#health-table")
            assert page.locator("#health-table tr").count() > 4
            # what each class looks like: one picture per digit
            page.click("#draw-classes")
            page.wait_for_function("document.querySelectorAll('#class-images .pred img')"
                                   ".length === 10", timeout=60_000)
            assert "ascent steps" in page.inner_text("#classes-msg")
            # the architecture diagram behind its link
            svg = page.evaluate("async () => (await fetch(document.getElementById('diagram')"
                                ".href)).text()")
            assert svg.lstrip().startswith("<svg") and "Conv2d 1→6" in svg
            t.join(120)
            page.wait_for_function("document.getElementById('status').textContent"
                                   " === 'completed'", timeout=30_000)
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert not errors, errors
        with Image.open(shot) as im:
            assert im.size[0] == 1400 and im.size[1] > 2000
        keep = os.environ.get("CONVNETPY_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / "dashboard.png")
        assert result["status"] == "completed"
    finally:
        gate.set()
        srv.monitor.pause(False)
        t.join(60)
        srv.stop()
