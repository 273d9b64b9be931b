"""How long the main job takes: ``convnetpy train`` (LeNet-5 on the bundled digits, the
README's first command) in a fresh process, as a user runs it.

    python benchmarks/main_job.py [--rounds 3] [--cold] [--out PATH.json]

Each round starts ``python -m convnetpy train --quiet`` in a new process and times it from
start to exit (imports, data, the 15 epochs, the checkpoints and pictures). The first round
warms numba's cache if it is empty; with ``--cold`` every round gets an empty cache instead
(the first run after an install, which compiles the loops and GEMMs). The README quotes the
median from the results file this writes (benchmarks/results/main-job[-cold].json).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def one_run(cache: str | None) -> tuple[float, float]:
    """(wall seconds, final validation accuracy) of one main job in a fresh process."""
    import os

    env = dict(os.environ)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "convnetpy", "train", "--quiet",
                               "--out", out], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"the main job failed:\n{proc.stdout}\n{proc.stderr}")
    acc = re.search(r"validation accuracy: ([\d.]+)%", proc.stdout)
    return wall, float(acc.group(1)) / 100


def main() -> None:
    from convnetpy.backend import info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="an empty numba cache every round")
    ap.add_argument("--out", type=Path, help="default: results/main-job[-cold].json")
    args = ap.parse_args()
    args.out = args.out or RESULTS / ("main-job-cold.json" if args.cold else "main-job.json")
    rep = info.report()
    if not args.cold:
        one_run(None)  # fills the cache when it is empty; not counted
    runs = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as cache:
            wall, acc = one_run(cache if args.cold else None)
        runs.append({"seconds": round(wall, 2), "val_acc": acc})
        print(f"round {r + 1}: {wall:.1f} s, validation accuracy {acc:.2%}", flush=True)
    median = statistics.median(run["seconds"] for run in runs)
    result = {"command": "convnetpy train", "cache": "cold" if args.cold else "warm",
              "median_seconds": median, "runs": runs, "cpu": rep["cpu"],
              "features": rep["features"], "path": rep["path"], "threads": rep["threads"],
              "versions": rep["versions"], "date": time.strftime("%Y-%m-%d")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(args.out)
    print(f"median {median:.1f} s over {args.rounds} rounds ({rep['cpu']}, {rep['path']} "
          f"path, {rep['threads']} threads) -> {args.out}")


if __name__ == "__main__":
    main()
