"""Side-by-side benchmark of convnetpy and PyTorch on this CPU.

    python benchmarks/run.py [--rounds 3] [--reps 5] [--threads N] [--out benchmarks/results]
                             [--path avx2] [--torch-isa avx2] [--no-load]
                             [--time-to-accuracy cifar10:PATH]

Each library runs in its own process (benchmarks/worker.py); the processes alternate
(convnetpy, torch, torch, convnetpy, ...) over ``--rounds`` rounds, every case has an
untimed warm-up, and a case's figure is the median of all its timed repetitions. Both use
float32 and the same thread count (default: the cores this process may use;
OMP/OPENBLAS/MKL_NUM_THREADS, torch.set_num_threads). Prints a Markdown table (times,
GFLOP/s, and speed = PyTorch time / convnetpy time, so above 1.0 convnetpy is faster) and
writes the raw numbers as JSON (results/latest.json and results/<path>.json), with what
``convnetpy info`` reports.

The training cases also run "under load": while one other process keeps one core busy (a
Python ``while True`` loop), as on a shared machine; the ratio to PyTorch there should stay
near the quiet one. ``--path`` runs convnetpy on a given compute path (CONVNETPY_CPU);
``--torch-isa avx2`` holds PyTorch to AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA), the
peer for convnetpy's avx2 path on an AVX-512 machine.
``--time-to-accuracy DATA`` also trains ``--preset`` (default cifar10-quick) on DATA once per
seed of ``--seeds``, each in a fresh process, and records the epoch curve, the wall time,
the final accuracy with and without test-time augmentation, and when validation accuracy
first reached ``--target`` (default: the preset's goal in TARGETS); ``--set KEY=VALUE``
changes the recipe (an ablation); ``--accuracy-only`` skips the speed cases. Written to
results/time-to-accuracy-<preset>[+<changes>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from worker import CONV_SHAPES, NETS  # noqa: E402

# the validation accuracy each preset is meant to reach (README's presets table)
TARGETS = {"cifar10-quick": 0.88, "cifar10-fast": 0.94, "mnist-lenet5": 0.993,
           "mnist-fast": 0.995, "digits-lenet5": 0.95}
BUSY = "while True: pass"  # the other process of the "under load" cases


def flops() -> dict[str, float]:
    """Forward FLOPs (2 x MACs) of each layer case; fwd+bwd counts 3 x forward."""
    out = {}
    for name, cin, cout, k, s, p, hw in CONV_SHAPES:
        o = (hw + 2 * p - k) // s + 1
        f = 2 * 64 * cout * o * o * cin * k * k
        out[name + " fwd"], out[name + " fwd+bwd"] = f, 3 * f
    return out


def worker_env(lib: str, args) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(args.threads)
    if lib == "convnetpy" and args.path:
        env["CONVNETPY_CPU"] = args.path
    if lib == "torch" and args.torch_isa:
        env["ATEN_CPU_CAPABILITY"] = args.torch_isa
        env["ONEDNN_MAX_CPU_ISA"] = args.torch_isa.upper()
    return env


def run_worker(lib: str, args, extra: list[str]) -> dict:
    cmd = [sys.executable, str(HERE / "worker.py"), lib, "--reps", str(args.reps),
           "--threads", str(args.threads)] + extra
    res = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(lib, args),
                         cwd=HERE.parent)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr}")
    return json.loads(res.stdout)


def under_load(fn):
    """``fn()`` while one other process keeps a core busy."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(0.2)
        return fn()
    finally:
        busy.kill()
        busy.wait()


def convnetpy_info(args) -> dict:
    """What ``convnetpy info --json`` reports in the workers' environment."""
    res = subprocess.run([sys.executable, "-m", "convnetpy", "info", "--json"],
                         capture_output=True, text=True, cwd=HERE.parent,
                         env=worker_env("convnetpy", args))
    if res.returncode:
        raise SystemExit(f"convnetpy info failed:\n{res.stderr}")
    return json.loads(res.stdout)


def machine(args) -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy

    conv = convnetpy_info(args)
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": args.threads,
            "python": platform.python_version(), "numpy": numpy.__version__,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
            "convnetpy_path": f"{conv['path']} ({conv['why']})",
            "torch_isa": args.torch_isa or "(its own choice)", "convnetpy_info": conv}
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per library")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per round")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--skip-train", action="store_true", help="layers only")
    ap.add_argument("--no-load", action="store_true", help="skip the under-load cases")
    ap.add_argument("--nets", default="convnetjs,resnet20",
                    help=f"comma-separated training cases, of {','.join(NETS)}")
    ap.add_argument("--path", choices=["avx512", "avx2", "generic", "numpy"],
                    help="convnetpy's compute path (default: the best this CPU runs)")
    ap.add_argument("--torch-isa", choices=["avx2", "avx512"],
                    help="hold PyTorch to this ISA (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA)")
    ap.add_argument("--time-to-accuracy", metavar="DATA",
                    help="also train --preset on DATA (e.g. cifar10:PATH) and time it to --target")
    ap.add_argument("--preset", default="cifar10-quick", help="the preset --time-to-accuracy runs")
    ap.add_argument("--target", type=float, help="validation accuracy to time (default: TARGETS)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds, one run each")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a TrainConfig change for --time-to-accuracy (an ablation), repeatable")
    ap.add_argument("--accuracy-only", action="store_true",
                    help="only --time-to-accuracy, none of the speed cases")
    args = ap.parse_args()
    train_nets = args.nets.split(",")
    if not set(train_nets) <= set(NETS):
        raise SystemExit(f"--nets: {args.nets!r}; choose from {','.join(NETS)}")
    if args.accuracy_only:
        if not args.time_to_accuracy:
            raise SystemExit("--accuracy-only needs --time-to-accuracy DATA")
        accuracy_report(args)
        return
    libs = ["convnetpy", "torch"]
    layers: dict[str, dict[str, list[float]]] = {lib: {} for lib in libs}
    train: dict[str, dict[str, dict]] = {mode: {lib: {} for lib in libs}
                                         for mode in ("quiet", "load")}
    modes = ["quiet"] if args.no_load else ["quiet", "load"]
    for r in range(args.rounds):
        order = libs if r % 2 == 0 else libs[::-1]
        for lib in order:
            for case, times in run_worker(lib, args, []).items():
                layers[lib].setdefault(case, []).extend(times)
        if args.skip_train:
            continue
        for net in train_nets:
            for mode in modes:
                for lib in order:
                    run = lambda: run_worker(lib, args, ["--train", net])  # noqa: E731
                    res = run() if mode == "quiet" else under_load(run)
                    t = train[mode][lib].setdefault(net, {"train_img_s": [],
                                                          "infer_img_s": [],
                                                          "peak_rss_mib": []})
                    t["train_img_s"] += res["train_img_s"]
                    t["infer_img_s"] += res["infer_img_s"]
                    t["peak_rss_mib"].append(res["peak_rss_mib"])
    f = flops()
    rows = []
    for case in layers["convnetpy"]:
        ours = statistics.median(layers["convnetpy"][case])
        theirs = statistics.median(layers["torch"][case])
        g = f.get(case)
        rows.append({"case": case, "convnetpy_ms": ours * 1e3, "torch_ms": theirs * 1e3,
                     "convnetpy_gflops": g / ours / 1e9 if g else None,
                     "torch_gflops": g / theirs / 1e9 if g else None,
                     "speed": theirs / ours})
    nets = []
    for net in train["quiet"]["convnetpy"]:
        a, b = train["quiet"]["convnetpy"][net], train["quiet"]["torch"][net]
        row = {"net": net,
               "convnetpy_train_img_s": statistics.median(a["train_img_s"]),
               "torch_train_img_s": statistics.median(b["train_img_s"]),
               "convnetpy_infer_img_s": statistics.median(a["infer_img_s"]),
               "torch_infer_img_s": statistics.median(b["infer_img_s"]),
               "convnetpy_peak_rss_mib": max(a["peak_rss_mib"]),
               "torch_peak_rss_mib": max(b["peak_rss_mib"])}
        if net in train["load"]["convnetpy"]:
            row["convnetpy_load_train_img_s"] = statistics.median(
                train["load"]["convnetpy"][net]["train_img_s"])
            row["torch_load_train_img_s"] = statistics.median(
                train["load"]["torch"][net]["train_img_s"])
        nets.append(row)
    report = {"machine": machine(args), "date": time.strftime("%Y-%m-%d %H:%M"),
              "rounds": args.rounds, "reps": args.reps, "layers": rows, "training": nets,
              "raw": {"layers": layers, "training": train}}
    if args.time_to_accuracy:
        report["time_to_accuracy"] = accuracy_report(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=1)
    (out / "latest.json").write_text(text)
    # and the newest run of each compute path (one CPU family each), for the README's tables
    (out / f"{report['machine']['convnetpy_info']['path']}.json").write_text(text)
    print(table(report))


def time_to_accuracy(data: str, threads: int, preset: str = "cifar10-quick",
                     extra: tuple[str, ...] = (), target: float | None = None) -> dict:
    """Train ``preset`` on ``data`` in a fresh process; the first epoch whose validation
    accuracy reaches ``target`` gives the time (since the loop started, from
    metrics.jsonl); the whole command's wall time, every epoch's record and the final
    accuracy with test-time augmentation (when the preset asks for it) are kept too."""
    import tempfile

    target = TARGETS.get(preset, 0.8) if target is None else target
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "convnetpy", "train", "--preset", preset,
               "--data", data, "--out", tmp, "--quiet", *extra]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE.parent)
        wall = time.perf_counter() - t0
        if res.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr}")
        metrics = sorted(Path(tmp).rglob("metrics.jsonl"))
        if len(metrics) != 1:
            raise SystemExit(f"expected one metrics.jsonl under {tmp}, found {len(metrics)}")
        epochs = [json.loads(line) for line in metrics[0].read_text().splitlines() if line]
    hit = next((e for e in epochs if e["val_acc"] >= target), None)
    last = epochs[-1]
    final = last.get("val_acc_tta", last["val_acc"])
    return {"preset": preset, "target": target, "command": " ".join(cmd[2:]), "wall_s": wall,
            "epochs": len(epochs), "best_val_acc": max(e["val_acc"] for e in epochs),
            "final_val_acc": last["val_acc"], "final_val_acc_tta": last.get("val_acc_tta"),
            "tta": last.get("tta"), "reached_final": final >= target,
            "reached_at_epoch": hit and hit["epoch"], "reached_after_s": hit and hit["elapsed"],
            "curve": [{k: e[k] for k in ("epoch", "val_acc", "acc", "loss", "elapsed")}
                      for e in epochs]}


def accuracy_report(args) -> dict:
    """``time_to_accuracy`` for each of ``--seeds``; written to the results folder."""
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        extra = [a for kv in [f"seed={seed}", *args.set] for a in ("--set", kv)]
        runs.append(dict(time_to_accuracy(args.time_to_accuracy, args.threads, args.preset,
                                          tuple(extra), args.target), seed=seed,
                         changes=args.set))
        print(accuracy_table({"runs": runs}), flush=True)
    report = {"machine": machine(args), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in "+".join(args.set))
    name = f"time-to-accuracy-{args.preset}{'+' + slug if slug else ''}.json"
    (out / name).write_text(json.dumps(report, indent=1))
    return report


def accuracy_table(report: dict) -> str:
    """One row per run: the final validation accuracy (and with TTA), the wall time and
    when the target was first reached without TTA; then each run's epoch curve."""
    lines = ["| preset | changes | seed | epochs | final val acc | with TTA | whole command | "
             "target first reached (no TTA) |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in report["runs"]:
        tta = (f"{r['final_val_acc_tta']:.2%} ({r['tta']})" if r.get("final_val_acc_tta")
               is not None else "-")
        hit = (f"epoch {r['reached_at_epoch']}, {r['reached_after_s'] / 60:.1f} min"
               if r["reached_at_epoch"] else "no")
        changes = ", ".join(r.get("changes") or []) or "-"
        lines.append(f"| {r['preset']} | {changes} | {r.get('seed', 0)} | {r['epochs']} | "
                     f"{r['final_val_acc']:.2%} | {tta} | {r['wall_s'] / 60:.1f} min | "
                     f"{r['target']:.1%}: {hit} |")
    for r in report["runs"]:
        curve = ", ".join(f"{e['val_acc']:.2%}" for e in r["curve"])
        lines.append(f"\nseed {r.get('seed', 0)} validation accuracy by epoch: {curve}")
    return "\n".join(lines)


def table(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} threads, Python "
             f"{m['python']}, NumPy {m['numpy']}, PyTorch {m['torch']}, OPENBLAS_CORETYPE="
             f"{m['OPENBLAS_CORETYPE']}; convnetpy path: {m.get('convnetpy_path', '?')}; "
             f"PyTorch ISA: {m.get('torch_isa', '(its own choice)')}; {report['date']}; "
             f"median of {report['rounds']} x {report['reps']} runs per library, float32.",
             "", "| case | convnetpy ms | PyTorch ms | convnetpy GFLOP/s | PyTorch GFLOP/s "
             "| speed |", "|---|---:|---:|---:|---:|---:|"]
    for r in report["layers"]:
        gf = (f"{r['convnetpy_gflops']:.1f} | {r['torch_gflops']:.1f}"
              if r["convnetpy_gflops"] else "- | -")
        lines.append(f"| {r['case']} | {r['convnetpy_ms']:.2f} | {r['torch_ms']:.2f} | {gf} | "
                     f"{r['speed']:.2f}x |")
    if report["training"]:
        lines += ["", "| network (batch 128 train, 256 inference) | convnetpy img/s | PyTorch "
                  "img/s | speed | peak RSS convnetpy / PyTorch |", "|---|---:|---:|---:|---:|"]
        for n in report["training"]:
            torch_s = n["torch_train_img_s"]
            quiet = n["convnetpy_train_img_s"] / torch_s
            lines.append(f"| {n['net']} training | {n['convnetpy_train_img_s']:.0f} | "
                         f"{torch_s:.0f} | {quiet:.2f}x | "
                         f"{n['convnetpy_peak_rss_mib']:.0f} / {n['torch_peak_rss_mib']:.0f} MiB |")
            if "convnetpy_load_train_img_s" in n:
                loaded = n["convnetpy_load_train_img_s"] / n["torch_load_train_img_s"]
                lines.append(f"| {n['net']} training, one core busy with another process | "
                             f"{n['convnetpy_load_train_img_s']:.0f} | "
                             f"{n['torch_load_train_img_s']:.0f} | {loaded:.2f}x "
                             f"({loaded / quiet:.2f} of quiet) | |")
            lines.append(f"| {n['net']} inference | {n['convnetpy_infer_img_s']:.0f} | "
                         f"{n['torch_infer_img_s']:.0f} | "
                         f"{n['convnetpy_infer_img_s'] / n['torch_infer_img_s']:.2f}x | |")
    if report.get("time_to_accuracy"):
        lines += ["", accuracy_table(report["time_to_accuracy"])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
