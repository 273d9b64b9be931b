"""What the training-health records cost: training steps with health off, at the default
interval (TrainConfig.health_every) and at interval 1, on LeNet-5 with the bundled digits
(batch 64) and on an airbench-width network (32/64/128) with synthetic CIFAR-sized data
(batch 128).

    python benchmarks/health_overhead.py [--rounds 3] [--out PATH.json]

Each run trains ``interval + 1`` steps in a fresh process and times steps 2..interval+1
from one ``on_step_end`` to the next (every callback's work included): exactly one
interval, with one parameter copy, one hooked forward and one record (interval 1: 20
steps, each recorded). The modes alternate round by round. The overhead at the default
interval k is read within each run: steps k-1 (the copy and the hooks) and k (the hooked
forward and the record) against the median of its other steps, over k of those.
Neighbouring steps of one process see the same machine, where two runs a minute apart on
a shared 2-core machine differ by +-20% or more (that ratio is reported too); the overhead
at interval 1 divided by k bounds it from above (each step there copies, hooks and
records).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORKLOADS = {
    "lenet5-digits-b64": dict(model="lenet5", data="digits", batch_size=64,
                              model_kwargs={"padding": 2}),
    "airbench-32-64-128-synthetic-b128": dict(model="airbench", data="synthetic:2048",
                                              batch_size=128,
                                              model_kwargs={"widths": [32, 64, 128]}),
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def one_run(workload: dict, every: int, steps: int, out: str) -> list[float]:
    """Seconds of steps 2..steps, each from one ``on_step_end`` to the next."""
    from convnetpy.train import Callback, TrainConfig, fit

    class Clock(Callback):
        def __init__(self):
            self.t: list[float] = []

        def on_step_end(self, state):
            self.t.append(time.perf_counter())

    clock = Clock()
    cfg = TrainConfig(**workload, epochs=100, max_steps=steps, health_every=every, lr=0.01,
                      schedule="constant", augment=[], progress=False, out=out)
    fit(config=cfg, callbacks=[clock], log=lambda s: None)
    return np.diff(clock.t).tolist()


def child(name: str, every: int, steps: int, out: str) -> list[float]:
    """``one_run`` in a fresh process: no run inherits another's allocator state or caches."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import health_overhead as h; "
            "print(json.dumps(h.one_run(h.WORKLOADS[sys.argv[2]], *map(int, sys.argv[3:5]), "
            "sys.argv[5])))")
    res = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), name,
                          str(every), str(steps), out], capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(name: str, rounds: int, k: int, out: str) -> dict:
    modes = {"off": 0, "default": k, "every_1": 1}
    runs: dict[str, list[list[float]]] = {m: [] for m in modes}
    for r in range(rounds):
        order = list(modes) if r % 2 == 0 else list(modes)[::-1]
        for m in order:
            # at interval 1 every step is alike: 20 of them do
            runs[m].append(child(name, modes[m], min(k, 20) + 1 if m == "every_1" else k + 1,
                                 out))
            print(f"{name} round {r + 1} {m}: {np.median(runs[m][-1]) * 1e3:.1f} ms/step "
                  "(median)", flush=True)
    median = {m: [float(np.median(v)) for v in vs] for m, vs in runs.items()}
    # within a default run: steps k-1 (copy, hooks) and k (record) against its other steps,
    # over k of them; durations list steps 2..k+1, so step s is at index s - 2
    within = []
    for v in runs["default"]:
        rest = float(np.median(v[:k - 3] + v[k - 1:]))
        within.append((v[k - 3] + v[k - 2] - 2 * rest) / (k * rest))
    every_1 = statistics.median(a / b for a, b in zip(median["every_1"], median["off"])) - 1
    return {"config": WORKLOADS[name], "interval": k, "rounds": rounds,
            "step_seconds": {m: [[round(x, 6) for x in v] for v in vs]
                             for m, vs in runs.items()},
            "median_step_seconds": median,
            "overhead_default_per_run": within,
            "overhead_default": statistics.median(within),
            "overhead_default_between_runs": statistics.median(
                float(np.mean(a)) / float(np.mean(b))
                for a, b in zip(runs["default"], runs["off"])) - 1,
            "overhead_every_1": every_1,
            # each step at interval 1 copies, hooks and records: an upper bound of one
            # record's cost, spread over k steps
            "overhead_default_from_every_1": every_1 / k}


def main() -> None:
    from convnetpy.train import TrainConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                         "health-overhead.json"))
    args = ap.parse_args()
    default = TrainConfig().health_every
    load0 = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        res = {name: measure(name, args.rounds, default, tmp) for name in WORKLOADS}
    report = {"benchmark": "health_overhead", "date": time.strftime("%Y-%m-%d %H:%M"),
              "cpu": cpu_model(), "cores": os.cpu_count(), "numpy": np.__version__,
              "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS",
                                                         "OPENBLAS_NUM_THREADS")},
              "load_average_before_after": [round(load0[0], 2),
                                            round(os.getloadavg()[0], 2)],
              "wall_seconds": round(time.time() - started, 1),
              "default_interval": default, "workloads": res}
    path = Path(args.out)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, path)
    print(f"| workload | ms/step, off | overhead at every {default}: within runs / between "
          "runs / at every 1 over the interval | at every 1 |\n|---|---:|---:|---:|")
    for name, r in res.items():
        print(f"| {name} | {statistics.median(r['median_step_seconds']['off']) * 1e3:.1f} | "
              f"{r['overhead_default']:+.1%} / {r['overhead_default_between_runs']:+.1%} / "
              f"{r['overhead_default_from_every_1']:+.1%} | {r['overhead_every_1']:+.1%} |")


if __name__ == "__main__":
    main()
