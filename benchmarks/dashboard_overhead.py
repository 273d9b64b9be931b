"""What watching a run costs: training steps with no dashboard, with the dashboard and no
page open, and with its page open in headless Chromium on the same machine.

    python benchmarks/dashboard_overhead.py [--rounds 3] [--steps 280] [--modes plain,page]

Each run is a fresh process (the three alternate, round by round) training cifar_quick
(width 8, batch 128) on synthetic CIFAR-shaped data; the figure is the wall time of steps
20..N, plus the time the training thread spent on snapshots. The page mode needs
playwright and /usr/bin/chromium (as the browser test does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def one_run(mode: str, steps: int) -> dict:
    from convnetpy.dashboard import watcher
    from convnetpy.train import TrainConfig, fit

    times: list[float] = []
    servers: list = []

    class Plain:  # the loop's hooks, doing nothing but note the time
        def on_step(self, *a):
            times.append(time.perf_counter())

        def on_epoch(self, record):
            pass

        def wait_if_paused(self):
            return 0.0

        def take_lr(self):
            return None

        def finish(self, status):
            pass

    def watch(*args):
        if mode == "plain":
            return Plain()
        monitor = watcher(port=0, log=lambda s: None, keep=servers)(*args)
        inner = monitor.on_step

        def on_step(*a):
            times.append(time.perf_counter())
            inner(*a)

        monitor.on_step = on_step
        if mode == "page":
            threading.Thread(target=browse, args=(servers[0].url,), daemon=True).start()
        return monitor

    cfg = TrainConfig(model="cifar_quick", model_kwargs={"width": 8}, data="synthetic:20000",
                      image_size=32, epochs=2, batch_size=128, lr=0.1, max_steps=steps,
                      progress=False, out="/tmp/convnetpy-dashboard-overhead")
    fit(cfg, watch=watch, log=lambda s: None)
    snap = servers[0].monitor.snapshot_seconds if servers else 0.0
    return {"mode": mode, "seconds": times[-1] - times[20], "snapshot_seconds": snap}


def browse(url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        time.sleep(3600)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=280)
    ap.add_argument("--modes", default="plain,dashboard,page")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a child process's run
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.steps)))
        return
    modes = args.modes.split(",")
    res: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for m in modes:
            out = subprocess.run([sys.executable, __file__, "--one", m, "--steps",
                                  str(args.steps)], capture_output=True, text=True, check=True)
            res[m].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = statistics.mean(r["seconds"] for r in res[modes[0]])
    print(f"| mode | seconds per run ({args.steps - 20} steps) | mean | vs {modes[0]} | "
          "snapshots |\n|---|---|---:|---:|---:|")
    for m in modes:
        secs = [r["seconds"] for r in res[m]]
        mean = statistics.mean(secs)
        snap = statistics.mean(r["snapshot_seconds"] for r in res[m])
        print(f"| {m} | {', '.join(f'{s:.1f}' for s in secs)} | {mean:.1f} | "
              f"{(mean / base - 1) * 100:+.1f}% | {snap:.1f} s |")


if __name__ == "__main__":
    main()
