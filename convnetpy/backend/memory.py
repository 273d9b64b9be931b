"""Large arrays in memory recycled from call to call: the kernels' outputs (activations,
gradients) and their temporaries (im2col columns, padded copies) alike.

A training step allocates the same large arrays every time and frees them all at its end;
glibc hands such blocks back to the kernel, and the next step faults every page in again
(a page fault per 4 KiB, a large share of a step). ``empty`` gives an array backed by a
buffer of its own; when the last array or view using that buffer is gone, the buffer goes
to a free list by size class, up to ``cap`` bytes, and the next request of that class gets
it back. Sizes are rounded up to a class (four per doubling, so at most a quarter is
spare) so that temporaries of slightly different sizes share buffers. Arrays under
MIN_BYTES come from NumPy as usual. Contents are whatever the last user left: callers
overwrite or zero what they read.

>>> a = empty((1024, 1024), np.float32)
>>> address = a.ctypes.data
>>> del a
>>> empty((1000, 1024), np.float32).ctypes.data == address  # the same class: reused
True
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref

import numpy as np


def size_class(nbytes: int) -> int:
    """``nbytes`` rounded up to one of four sizes per power of two."""
    if nbytes <= 4:
        return nbytes
    step = 1 << max(0, nbytes.bit_length() - 3)  # a quarter of the power of two below
    return -(-nbytes // step) * step


class _Pool:
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
        size = size_class(nbytes)
        with self._lock:
            stack = self._free.get(size)
            buf = stack.pop() if stack else None
            if buf is not None:
                self._free_bytes -= size
        if buf is None:
            buf = np.empty(size, dtype=np.uint8)
        # the lease exports the buffer to NumPy: arrays and views made from it keep the lease
        # (their .base) alive, and when it dies the buffer is free again
        lease = (ctypes.c_char * size).from_buffer(buf)
        weakref.finalize(lease, self._give_back, buf).atexit = False
        return np.ndarray(shape, dtype=dtype, buffer=lease)  # its .base is the lease

    def clear(self) -> int:
        """Drop the free buffers (back to the allocator); returns the bytes dropped."""
        with self._lock:
            dropped, self._free, self._free_bytes = self._free_bytes, {}, 0
        return dropped


pool = _Pool()
if hasattr(os, "register_at_fork"):  # a forked child starts with an unheld lock
    os.register_at_fork(after_in_child=lambda: setattr(pool, "_lock", threading.RLock()))


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised array like ``np.empty`` whose memory is recycled (see _Pool)."""
    return pool.empty(shape, dtype)
