"""Process-wide settings that trade memory or generality for speed.

``set_num_threads(n)`` / ``get_num_threads()`` (also ``convnetpy.set_num_threads``, as in
PyTorch): threads for the kernels' own work (convolution parts, batch norm, ReLU);
defaulting to CONVNETPY_NUM_THREADS, else OMP_NUM_THREADS, else the cores this process may
run on. BLAS keeps its own setting.

``use_path(name)`` / ``compute_path()``: the compute path the kernels run on (avx512,
avx2, generic or numpy; see ``convnetpy info`` and convnetpy/backend/cpu.py);
CONVNETPY_CPU=... chooses it at start-up, ``use_path('native')`` takes the best this CPU
runs. ``use_compiled(flag)`` and ``use_gemm(flag)`` are the older switches, kept as
aliases: ``use_compiled(False)`` is ``use_path('numpy')``, ``use_gemm(False)`` leaves the
GEMMs to NumPy (``generic``).

``release_memory()``: the kernels' large arrays (activations, gradients and their
temporaries of 1 MiB and more) come from buffers recycled from step to step
(backend/memory.py), so a training step does not fault their pages in again; up to 1 GiB
of unused ones is kept, and this call hands them back.

``keep_freed_memory()`` (deprecated): makes glibc keep every freed block of the process for
reuse. convnetpy no longer calls it (``convnetpy train`` runs as a library call does): the
recycled buffers cover the kernels' arrays without changing the whole process.

>>> compute_path().split()[0] in ("avx512", "avx2", "generic", "numpy")
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import warnings

from .backend import select
from .backend.memory import pool
from .backend.threads import get_num_threads, set_num_threads

__all__ = ["compiled_loops", "compute_path", "get_num_threads", "keep_freed_memory",
           "release_memory", "set_num_threads", "use_compiled", "use_gemm", "use_path"]


def use_path(name: str) -> str:
    """Run the kernels on compute path ``name`` from now on (avx512, avx2, generic, numpy,
    or native for the best this CPU runs); returns the previous path. A path the CPU
    cannot run raises CpuPathError, naming what is missing."""
    return select.use(name)


def compute_path() -> str:
    """The compute path in use, with what it runs: 'avx2 (numba 0.61.0, AVX2 GEMMs)'."""
    return select.describe()


compiled_loops = compute_path  # the older name


def use_compiled(flag: bool) -> bool:
    """``use_path('native')`` (True) or ``use_path('numpy')`` (False); returns whether
    compiled code was in use before."""
    was = select.current() != "numpy"
    select.use("native" if flag else "numpy")
    return was


def use_gemm(flag: bool | None) -> bool | None:
    """Our GEMMs (True, or None: where the CPU has their micro-kernels) or NumPy's
    (False, the generic path); returns whether ours were in use before. Needs numba."""
    was = select.current() in ("avx512", "avx2")
    select.use("native" if flag in (True, None) else "generic")
    return was


def release_memory() -> int:
    """Hand the recycled output buffers that no array uses back to the allocator; returns
    how many bytes that was. (convnetpy keeps up to 1 GiB of them for the next step.)"""
    return pool.clear()

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for its dynamic threshold on 64-bit
_TRIM_THRESHOLD = (1 << 31) - 1

_kept = False


def keep_freed_memory() -> bool:
    """Deprecated: make glibc keep freed memory for reuse, for the whole process, for good
    (mallopt). Returns True when the setting is in effect, False where it does not apply
    (not Linux/glibc)."""
    warnings.warn("keep_freed_memory() is deprecated: convnetpy recycles its large arrays "
                  "itself (runtime.release_memory hands them back)", DeprecationWarning,
                  stacklevel=2)
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _kept = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _kept
