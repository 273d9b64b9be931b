"""Splitting NumPy work over the CPU's cores.

NumPy runs copies and element-wise operations on one core, releasing the GIL while it does;
BLAS already uses every core for the GEMMs. ``parallel_for(fn, n)`` calls ``fn(lo, hi)`` on
``THREADS`` parts of ``range(n)`` at once: the calling thread takes the first part, persistent
worker threads the others. Work that is small, a call from inside a part, or a call while
another thread is using the workers runs inline instead, so results never depend on it:
every part writes its own slice.

The thread count is CONVNETPY_NUM_THREADS, else OMP_NUM_THREADS, else the cores this
process may run on (at most 8). ``set_num_threads`` changes it at run time.

>>> import numpy as np
>>> x = np.arange(8.0)
>>> out = np.empty_like(x)
>>> parallel_for(lambda lo, hi: np.multiply(x[lo:hi], 2, out=out[lo:hi]), len(x), 1)
>>> out.tolist()
[0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]
"""

from __future__ import annotations

import os
import threading
from queue import SimpleQueue


def _default_threads() -> int:
    for var in ("CONVNETPY_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


THREADS = _default_threads()
MIN_ITEMS = 1 << 17  # below this many elements a split costs more than it saves (~30 us)

_lock = threading.Lock()  # held by the one caller using the workers
_local = threading.local()
_workers: list[SimpleQueue] = []
_done: SimpleQueue = SimpleQueue()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 = everything inline) for NumPy work from now on."""
    global THREADS
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {n!r}")
    THREADS = n


def get_num_threads() -> int:
    return THREADS


def _work(inbox: SimpleQueue) -> None:
    _local.inside = True
    while True:
        fn, lo, hi = inbox.get()
        try:
            fn(lo, hi)
            result = None
        except BaseException as err:  # handed to the caller, which re-raises it
            result = err
        # drop the task before reporting: while waiting for the next one, this thread must
        # not keep its arrays (and their recycled memory, see _workspace) alive
        fn = None
        _done.put(result)


def _forget_workers() -> None:  # a forked child has no worker threads
    global _lock, _done
    _workers.clear()
    _lock, _done = threading.Lock(), SimpleQueue()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def _parts(n: int, items_per_index: int) -> int:
    return max(1, min(THREADS, n)) if n * items_per_index >= MIN_ITEMS else 1


def parallel_for(fn, n: int, items_per_index: int = 1) -> None:
    """Call ``fn(lo, hi)`` over parts of ``range(n)`` that together cover it once.

    ``items_per_index`` (elements touched per index) decides whether splitting pays."""
    parts = _parts(n, items_per_index)
    bounds = [n * i // parts for i in range(parts + 1)]
    if parts < 2 or getattr(_local, "inside", False) or not _lock.acquire(blocking=False):
        for i in range(parts):  # the same parts in turn: results do not depend on this
            fn(bounds[i], bounds[i + 1])
        return
    try:
        while len(_workers) < parts - 1:
            inbox: SimpleQueue = SimpleQueue()
            threading.Thread(target=_work, args=(inbox,), daemon=True,
                             name=f"convnetpy-{len(_workers)}").start()
            _workers.append(inbox)
        for i in range(1, parts):
            _workers[i - 1].put((fn, bounds[i], bounds[i + 1]))
        errors = []
        _local.inside = True
        try:
            fn(bounds[0], bounds[1])
        except BaseException as err:
            errors.append(err)
        finally:
            _local.inside = False
            # every part is waited for, even through a Ctrl-C: a worker left running would
            # write into arrays the caller has moved on from, and its late report would
            # answer the next call (the interrupt is raised once all are done)
            waiting = parts - 1
            while waiting:
                try:
                    err = _done.get()
                except KeyboardInterrupt as stop:
                    errors.insert(0, stop)
                    continue
                waiting -= 1
                if err is not None:
                    errors.append(err)
        if errors:
            raise errors[0]
    finally:
        _lock.release()


def rows(fn, *arrays) -> None:
    """``fn(part)`` over parts of the leading axis of ``arrays`` (the first sets the size);
    ``part`` is a slice, or ``...`` for a 0-d array: index every operand with ``a[part]``."""
    a = arrays[0]
    if a.ndim == 0:
        fn(...)
    else:
        parallel_for(lambda lo, hi: fn(slice(lo, hi)), a.shape[0],
                     a.size // max(a.shape[0], 1))


def row_sum(fn, *arrays):
    """The sum of ``fn(part)`` over the parts ``rows`` would make, added in part order (so
    a result depends on the thread count, never on timing)."""
    a = arrays[0]
    if a.ndim == 0:
        return fn(...)
    n = a.shape[0]
    results: dict[int, object] = {}

    def part(lo: int, hi: int) -> None:
        results[lo] = fn(slice(lo, hi))

    parallel_for(part, n, a.size // max(n, 1))
    total = None
    for lo in sorted(results):
        total = results[lo] if total is None else total + results[lo]
    return total


def blocks(part: slice, row_items: int, itemsize: int, target: int = 256 << 10):
    """Sub-slices of ``part`` of about ``target`` bytes, for passes that should stay in the
    core's cache between one operation and the next."""
    step = max(1, target // max(row_items * itemsize, 1))
    return (slice(lo, min(part.stop, lo + step)) for lo in range(part.start, part.stop, step))
