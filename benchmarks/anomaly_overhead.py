"""What anomaly mode costs: training steps (forward, cross-entropy, backward, SGD) with
``detect_anomaly()`` off and on, on LeNet-5 (batch 64, 1x28x28) and ResNet-20 (batch 32,
3x32x32), random data, in one process.

    python benchmarks/anomaly_overhead.py [--rounds 5] [--steps 10] [--out PATH.json]

Off and on take turns round by round (each round: ``--steps`` timed steps after one
untimed), so both see the same machine; the ratio of their medians is the cost when on.
When off, the mode costs one thread-local flag read per op and per module call (the layer
stack is neither kept nor read): the script counts the ops and module calls of one step
and times the read, and reports their product as a fraction of the step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import convnetpy as cp  # noqa: E402
from convnetpy import F, models, optim  # noqa: E402
from convnetpy.anomaly import is_anomaly_enabled  # noqa: E402
from convnetpy.autograd import Function, detect_anomaly  # noqa: E402
from convnetpy.nn import Module  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WORKLOADS = {
    "lenet5-b64": dict(model="lenet5", kwargs={"padding": 2}, shape=(64, 1, 28, 28)),
    "resnet20-b32": dict(model="resnet20", kwargs={}, shape=(32, 3, 32, 32)),
}


def setup(w: dict):
    cp.manual_seed(0)
    net = models.get(w["model"], num_classes=10, **w["kwargs"])
    rng = np.random.default_rng(0)
    x = cp.tensor(rng.standard_normal(w["shape"]).astype(np.float32))
    y = cp.tensor(rng.integers(0, 10, w["shape"][0]))
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def counts(step) -> tuple[int, int]:
    """(ops applied, module calls) in one step."""
    seen = {"ops": 0, "modules": 0}
    apply, call = Function.apply_with_ctx.__func__, Module.__call__

    def counting_apply(cls, *a, **k):
        seen["ops"] += 1
        return apply(cls, *a, **k)

    def counting_call(self, *a, **k):
        seen["modules"] += 1
        return call(self, *a, **k)

    Function.apply_with_ctx, Module.__call__ = classmethod(counting_apply), counting_call
    try:
        step()
    finally:
        Function.apply_with_ctx, Module.__call__ = classmethod(apply), call
    return seen["ops"], seen["modules"]


def timed(step, n: int, on: bool) -> list[float]:
    out = []
    with detect_anomaly() if on else contextlib.nullcontext():
        step()  # untimed
        for _ in range(n):
            t0 = time.perf_counter()
            step()
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "anomaly-overhead.json")
    args = ap.parse_args()
    from convnetpy.backend import info

    flag_read = min(timeit.repeat(is_anomaly_enabled, number=200_000, repeat=5)) / 200_000
    rep = info.report()
    result = {"benchmark": "anomaly_overhead", "date": time.strftime("%Y-%m-%d %H:%M"),
              "cpu": rep["cpu"], "path": rep["path"], "threads": rep["threads"],
              "cores": os.cpu_count(), "flag_read_seconds": flag_read, "workloads": {}}
    for name, w in WORKLOADS.items():
        step = setup(w)
        ops, modules = counts(step)
        runs = {"off": [], "on": []}
        for r in range(args.rounds):
            for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                runs[mode].append(statistics.median(timed(step, args.steps, mode == "on")))
            print(f"{name} round {r + 1}: off {runs['off'][-1] * 1e3:.1f} ms, on "
                  f"{runs['on'][-1] * 1e3:.1f} ms", flush=True)
        off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
        share = (ops + modules) * flag_read / off
        result["workloads"][name] = {
            "ops_per_step": ops, "module_calls_per_step": modules,
            "median_step_seconds": {"off": off, "on": on},
            "round_medians": runs, "cost_on": on / off - 1,
            "cost_off_flag_reads": share}
        print(f"{name}: {ops} ops + {modules} module calls a step; on costs "
              f"{on / off - 1:+.1%}; off, the flag reads are {share:.4%} of a step", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(args.out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
