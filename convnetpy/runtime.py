"""Process-wide settings that trade memory or generality for speed.

``set_num_threads(n)`` / ``get_num_threads()``: threads for the element-wise kernels
(batch norm, ReLU) that NumPy would run on one core; BLAS keeps its own setting.

``use_compiled(flag)`` / ``compiled_loops()``: with numba installed (``pip install
convnetpy[fast]``) the kernels run compiled loops for im2col/col2im, batch norm and ReLU;
``use_compiled(False)`` (or CONVNETPY_COMPILED=0 in the environment) runs the pure-NumPy code,
which gives the same results. ``compiled_loops()`` says which is in use.

``use_gemm(flag)``: with the compiled loops on, float32 convolutions multiply with GEMMs of
convnetpy's own (kernels/_gemm.py) where the CPU has AVX-512 (None, the default), always
(True) or never (False: NumPy's matmul and its BLAS); CONVNETPY_GEMM=1/0 sets it too.

``release_memory()``: the kernels' large outputs (activations and gradients of 1 MiB and
more) come from buffers recycled from step to step (kernels/_workspace.py), so a training
step does not fault their pages in again; up to 1 GiB of unused ones is kept, and this call
hands them back. keep_freed_memory() does the same for every allocation in the process.

``keep_freed_memory()``: glibc returns large freed blocks to the kernel (every array over its
mmap threshold, and the top of the heap above the trim threshold), so the next training step
allocates them afresh and pays a page fault per 4 KiB. Measured on a ResNet-20 step at batch
128: 50,000 faults (196 MiB) and ~110 ms of system time per step, 20-30% of the step. After
this call glibc keeps freed memory for reuse: the step allocates from what the last one freed.
The cost is that the process no longer shrinks below its high-water mark. It changes the
whole process (other libraries' allocations too) and cannot be undone, so convnetpy never
calls it on import; ``convnetpy train`` calls it, a script may too.

>>> keep_freed_memory() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from .kernels._compiled import describe as compiled_loops
from .kernels._compiled import use_compiled, use_gemm
from .kernels._parallel import get_num_threads, set_num_threads
from .kernels._workspace import recycler

__all__ = ["compiled_loops", "get_num_threads", "keep_freed_memory", "release_memory",
           "set_num_threads", "use_compiled", "use_gemm"]


def release_memory() -> int:
    """Hand the recycled output buffers that no array uses back to the allocator; returns
    how many bytes that was. (convnetpy keeps up to 1 GiB of them for the next step.)"""
    return recycler.clear()

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for its dynamic threshold on 64-bit
_TRIM_THRESHOLD = (1 << 31) - 1

_kept = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (see the module docstring). Returns True when
    the setting is in effect, False where it does not apply (not Linux/glibc)."""
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
