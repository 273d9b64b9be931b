"""Scratch buffers reused from call to call, one set per thread.

A kernel that needs a temporary (the im2col columns of one chunk, say) asks for it by role;
the same memory comes back next time, so large temporaries cost neither an allocation nor
the page faults of fresh memory. The contents are whatever the last user left: callers
overwrite or zero what they read. A buffer only grows, up to KEEP_BYTES: a larger request
gets fresh memory that is not kept, so a big model run once does not pin its temporaries.

>>> a = scratch("demo", (2, 3), np.float32)
>>> b = scratch("demo", (3, 2), np.float32)
>>> a.shape, b.shape, np.shares_memory(a, b)
((2, 3), (3, 2), True)
"""

from __future__ import annotations

import threading

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

