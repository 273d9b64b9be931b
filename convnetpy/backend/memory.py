"""Scratch buffers reused from call to call, one set per thread.

A kernel that needs a temporary (the im2col columns of one chunk, say) asks for it by role;
the same memory comes back next time, so large temporaries cost neither an allocation nor
the page faults of fresh memory. The contents are whatever the last user left: callers
overwrite or zero what they read. A buffer only grows, up to KEEP_BYTES: a larger request
gets fresh memory that is not kept, so a big model run once does not pin its temporaries.

``fresh`` is for the large arrays a kernel returns (activations, gradients): their memory
comes back to a free list when the last array using it is gone (see _Recycler).

>>> a = scratch("demo", (2, 3), np.float32)
>>> b = scratch("demo", (3, 2), np.float32)
>>> a.shape, b.shape, np.shares_memory(a, b)
((2, 3), (3, 2), True)
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref

import numpy as np

_local = threading.local()
KEEP_BYTES = 64 << 20  # the largest buffer kept per role and thread


def scratch(role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` backed by this thread's buffer for
    ``role``; valid until the next request for the same role in this thread."""
    dtype = np.dtype(dtype)
    size = 1
    for s in shape:
        size *= int(s)
    if size * dtype.itemsize > KEEP_BYTES:
        return np.empty(shape, dtype=dtype)
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    key = (role, dtype)
    buf = pool.get(key)
    if buf is None or buf.size < size:
        buf = pool[key] = np.empty(max(size, 1), dtype=dtype)
    return buf[:size].reshape(shape)



class _Recycler:
    """Large kernel outputs (activations, gradients) in memory recycled from step to step.

    A training step allocates the same large arrays every time and frees them all at its
    end; glibc hands such blocks back to the kernel and the next step faults every page in
    again (seen: ~19,000 faults and ~50 ms of system time per ResNet-20 step at batch 128).
    ``empty`` gives an array backed by a buffer of its own; when the last array or view using
    that buffer is gone, the buffer goes to a free list by size, up to ``cap`` bytes, and
    the next request of the same size gets it back. ``runtime.keep_freed_memory()`` does the
    same for the whole process; this only for convnetpy's own large outputs."""

    MIN_BYTES = 1 << 20  # smaller arrays come from NumPy as usual

    def __init__(self, cap: int = 1 << 30) -> None:
        self.cap = cap
        self._free: dict[int, list] = {}
        self._free_bytes = 0
        # reentrant: a garbage collection inside a locked section (allocating the free
        # list's list, say) may run a finalizer that gives a buffer back in this thread
        self._lock = threading.RLock()

    def _give_back(self, buf) -> None:
        with self._lock:
            if self._free_bytes + buf.nbytes <= self.cap:
                self._free.setdefault(buf.nbytes, []).append(buf)
                self._free_bytes += buf.nbytes

    def empty(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        nbytes = dtype.itemsize
        for s in shape:
            nbytes *= s
        if nbytes < self.MIN_BYTES or self.cap <= 0:
            return np.empty(shape, dtype=dtype)
        with self._lock:
            stack = self._free.get(nbytes)
            buf = stack.pop() if stack else None
            if buf is not None:
                self._free_bytes -= nbytes
        if buf is None:
            buf = np.empty(nbytes, dtype=np.uint8)
        # the lease exports the buffer to NumPy: arrays and views made from it keep the lease
        # (their .base) alive, and when it dies the buffer is free again
        lease = (ctypes.c_char * nbytes).from_buffer(buf)
        lease.convnetpy_recycled = True
        weakref.finalize(lease, self._give_back, buf).atexit = False
        return np.ndarray(shape, dtype=dtype, buffer=lease)  # its .base is the lease

    def clear(self) -> int:
        """Drop the free buffers (back to the allocator); returns the bytes dropped."""
        with self._lock:
            dropped, self._free, self._free_bytes = self._free_bytes, {}, 0
        return dropped


recycler = _Recycler()
if hasattr(os, "register_at_fork"):  # a forked child starts with an unheld lock
    os.register_at_fork(after_in_child=lambda: setattr(recycler, "_lock", threading.RLock()))


def owns_memory(a: np.ndarray) -> bool:
    """Whether ``a`` holds its memory alone as far as convnetpy knows: it owns its data, or
    it is the array ``fresh`` made (views of it have that array, not the lease, as base)."""
    return a.flags.owndata or getattr(a.base, "convnetpy_recycled", False)


def fresh(shape, dtype) -> np.ndarray:
    """An uninitialised array like ``np.empty`` whose memory is recycled (see _Recycler)."""
    return recycler.empty(shape, dtype)
