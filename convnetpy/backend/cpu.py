"""What this CPU is and which compute path it can run, read once per process.

A *path* is how the kernels run:
- ``avx512``: numba loops and our GEMMs with 16-lane micro-kernels (AVX-512F),
- ``avx2``: numba loops and our GEMMs with 8-lane micro-kernels (AVX2 + FMA),
- ``generic``: numba loops, NumPy's matmul (its BLAS) for the GEMMs: any other CPU (ARM,
  older x86), where LLVM's own vectorisation serves the loops,
- ``numpy``: no compiled code at all (numba not installed, or asked for).

``CONVNETPY_CPU=native|avx512|avx2|generic|numpy`` forces one (native, the default, takes
the best the CPU runs). A path the CPU cannot run is an error when the path is chosen, not
an illegal instruction later. Features come from the kernel's view of the CPU
(/proc/cpuinfo), or from LLVM's where that is missing; cache sizes from sysfs.

>>> detect().model != ""
True
>>> runnable("numpy", detect())
''
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
from pathlib import Path
from typing import NamedTuple

PATHS = ("avx512", "avx2", "generic", "numpy")  # best first
REQUESTS = ("native",) + PATHS
_NEEDS = {"avx512": ("avx512f", "fma"), "avx2": ("avx2", "fma")}  # features each path needs


class CpuPathError(RuntimeError):
    """A compute path was asked for that this CPU or install cannot run."""


class Cpu(NamedTuple):
    model: str  # "AMD EPYC", "Intel(R) Xeon(R) Platinum 8488C", ...
    machine: str  # platform.machine()
    features: frozenset[str]  # lower-case: avx2, fma, avx512f, ...
    l1d: int  # bytes per core
    l2: int  # bytes per core
    numba: str | None  # numba's version when it can be imported, else None


def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def _llvm_features() -> frozenset[str]:
    """The host's features as LLVM sees them (``+avx2`` ...), when llvmlite is installed."""
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return frozenset()
    return frozenset(f[1:] for f in llvm.get_host_cpu_features().flatten().split(",")
                     if f.startswith("+"))


def _cache_size(level: int, kinds: tuple[str, ...], default: int) -> int:
    """The size in bytes of cpu0's cache of ``level`` and one of ``kinds`` (sysfs)."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for index in sorted(base.glob("index*")):
            if (int((index / "level").read_text()) == level
                    and (index / "type").read_text().strip() in kinds):
                size = (index / "size").read_text().strip().upper()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return default


def _numba_version() -> str | None:
    try:
        if importlib.util.find_spec("numba") is None:
            return None
    except ValueError:  # sys.modules["numba"] is None: made unimportable on purpose
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numba")
    except PackageNotFoundError:
        return None


@functools.cache
def detect() -> Cpu:
    """This machine's CPU (read once per process)."""
    model, flags = _cpuinfo()
    if not flags:  # not Linux: ask LLVM
        flags = _llvm_features()
    return Cpu(model or platform.processor() or platform.machine(), platform.machine(),
               frozenset(f.lower() for f in flags), _cache_size(1, ("Data", "Unified"), 32 << 10),
               _cache_size(2, ("Unified", "Data"), 512 << 10), _numba_version())


def runnable(path: str, cpu: Cpu) -> str:
    """'' when ``cpu`` runs ``path``, else why not (one sentence)."""
    if path not in PATHS:
        raise CpuPathError(f"unknown compute path {path!r}; choose one of "
                           f"{', '.join(REQUESTS)}")
    if path == "numpy":
        return ""
    if cpu.numba is None:
        return "numba is not installed (pip install 'convnetpy[fast]')"
    missing = [f for f in _NEEDS.get(path, ()) if f not in cpu.features]
    if missing:
        return f"this CPU ({cpu.model}) lacks {', '.join(missing)}"
    return ""


def choose(request: str | None = None, cpu: Cpu | None = None) -> tuple[str, str]:
    """(path, why) for ``request`` (default: CONVNETPY_CPU, else native). A forced path
    the CPU cannot run raises CpuPathError naming what is missing."""
    cpu = cpu or detect()
    request = (request or os.environ.get("CONVNETPY_CPU", "") or "native").strip().lower()
    if request not in REQUESTS:
        raise CpuPathError(f"CONVNETPY_CPU={request!r} is not a compute path; choose one of "
                           f"{', '.join(REQUESTS)}")
    if request != "native":
        why_not = runnable(request, cpu)
        if why_not:
            raise CpuPathError(f"compute path {request!r} cannot run here: {why_not}. "
                               f"Unset CONVNETPY_CPU (or set it to native) to take the best "
                               f"path this CPU runs.")
        return request, f"forced ({request})"
    for path in PATHS:
        if not runnable(path, cpu):
            if path == "avx512":
                return path, "native: the CPU has AVX-512F"
            if path == "avx2":
                return path, "native: the CPU has AVX2 and FMA, no AVX-512F"
            if path == "generic":
                return path, "native: numba, and no AVX2+FMA for our GEMM micro-kernels"
            return path, "native: numba is not installed"
    raise AssertionError("the numpy path always runs")
