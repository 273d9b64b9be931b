"""What the kernels run on, for ``convnetpy info`` and the benchmark records: the CPU, its
features and caches, the compute path and why it was chosen, the threads, the BLAS that
NumPy calls (threadpoolctl when installed: its name, version, core type and threads) and
the compiler versions.

>>> sorted(report())[:3]
['blas', 'caches', 'cpu']
"""

from __future__ import annotations

import json
import os
import platform

import numpy as np

from . import cpu, select, threads

# the features that decide a path, shown first
SHOWN = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
         "amx_tile", "neon", "asimd", "sve")


def _blas() -> list[dict]:
    """NumPy's BLAS: threadpoolctl's view when it is installed, else NumPy's build info."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
        blas = deps.get("blas", {})
        return [{"internal_api": blas.get("name", "unknown"), "version": blas.get("version"),
                 "note": "pip install threadpoolctl for the core type and threads"}]
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: lib.get(k) for k in keep} for lib in threadpool_info()
            if lib.get("user_api") == "blas"]


def _versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("convnetpy", "numba", "llvmlite", "threadpoolctl"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def report() -> dict:
    """Everything ``convnetpy info`` prints, as a JSON-able dict."""
    info = cpu.detect()
    path = select.current()
    paths = {p: (cpu.runnable(p, info) or "runs") for p in cpu.PATHS}
    out = {
        "cpu": info.model, "machine": info.machine,
        "features": [f for f in SHOWN if f in info.features],
        "caches": {"l1d": info.l1d, "l2": info.l2},
        "path": path, "why": select.why(), "paths": paths,
        "threads": threads.get_num_threads(), "threads_from": threads.THREADS_FROM,
        "env": {k: os.environ[k] for k in ("CONVNETPY_CPU", "CONVNETPY_NUM_THREADS",
                                           "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                           "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")
                if k in os.environ},
        "blas": _blas(), "versions": _versions(),
    }
    gm = select.gemm()
    if gm is not None:
        out["gemm"] = {"isa": gm.isa, "blocking": gm.blocking._asdict()}
    return out


def format_report(r: dict) -> str:
    """``report()`` as the lines ``convnetpy info`` prints."""
    kib = {k: f"{v >> 10} KiB" for k, v in r["caches"].items()}
    lines = [f"convnetpy {r['versions']['convnetpy']}",
             f"cpu:      {r['cpu']} ({r['machine']})",
             f"features: {' '.join(r['features']) or '(none of ' + ', '.join(SHOWN) + ')'}",
             f"caches:   L1d {kib['l1d']}, L2 {kib['l2']} per core",
             f"path:     {r['path']} - {r['why']}"]
    for p, state in r["paths"].items():
        lines.append(f"          {p:8s} {'runs here' if state == 'runs' else 'no: ' + state}")
    if "gemm" in r:
        b = r["gemm"]["blocking"]
        lines.append(f"gemm:     {r['gemm']['isa']} micro-kernels, KC={b['kc']}, "
                     f"B block {b['b_bytes'] >> 10} KiB, nt KB={b['kb']}")
    lines.append(f"threads:  {r['threads']} ({r['threads_from']})")
    for lib in r["blas"]:
        lines.append("blas:     " + ", ".join(f"{k} {v}" for k, v in lib.items()
                                                if v is not None))
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()
                                          if v is not None))
    if r["env"]:
        lines.append("env:      " + " ".join(f"{k}={v}" for k, v in r["env"].items()))
    return "\n".join(lines)


def to_json(r: dict) -> str:
    return json.dumps(r, indent=2)
