"""Splitting NumPy work over the CPU's cores.

NumPy runs copies and element-wise operations on one core, releasing the GIL while it does;
BLAS already uses every core for the GEMMs. ``parallel_for(fn, n)`` calls ``fn(lo, hi)`` on
``THREADS`` parts of ``range(n)`` at once: the calling thread takes the first part, persistent
worker threads the others. Work that is small, a call from inside a part, or a call while
another thread is using the workers runs inline instead, so results never depend on it:
every part writes its own slice.

Between parts the threads do not sleep at once: with the compiled loops a worker spins
(without the GIL) on its counter of posted parts for up to SPIN_SECONDS, and the caller on
the worker's counter of finished parts, as OpenMP's threads do; the queues stay the one
record of what was posted and done, the counters only end a spin early.

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
import time
from queue import SimpleQueue

import numpy as np

from .select import loops


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
MIN_ITEMS = 1 << 17  # below this many elements a split costs more than it saves
# after its part a worker watches for the next one this long before it sleeps (so does a
# caller waiting for a worker's part); OMP_WAIT_POLICY=passive, as for OpenMP: not at all
SPIN_SECONDS = 0.0 if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive" else 1e-3
# a worker that sees a part posted waits this much longer before it takes the GIL: the
# caller still holds it (~1-3 us more, until its own part enters compiled code), and a
# thread that blocks on the GIL sleeps, to be woken ~15-20 us later
GRACE_SECONDS = 4e-6

_lock = threading.Lock()  # held by the one caller using the workers
_local = threading.local()
# per worker: its inbox, and int64 [tasks posted, parts reported] that the spins watch
_workers: list[tuple[SimpleQueue, np.ndarray]] = []
_done: SimpleQueue = SimpleQueue()
_hints: tuple[int, int] | None = None  # SPIN_SECONDS, GRACE_SECONDS in spin hints (measured)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 = everything inline) for NumPy work from now on."""
    global THREADS
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {n!r}")
    THREADS = n


def get_num_threads() -> int:
    return THREADS


def _spin():
    """``wait(flags, i, value, bump=-1, grace=False)``: spin without the GIL while flags[i]
    == value, for at most SPIN_SECONDS (and GRACE_SECONDS more after a change, with
    ``grace``), after adding one to flags[bump] when bump >= 0; None without the compiled
    loops or with SPIN_SECONDS 0 (then every wait sleeps at once in its queue).

    Why: a thread that sleeps takes ~20 us to wake on these machines (virtual CPUs that
    halt when idle): a fork and join of nothing took ~50 us, ~10 us with the spins, and a
    ReLU pass over 8 MB takes ~100 us. A worker that watches its counter for a moment after
    each part starts the next at once, as OpenMP's threads do."""
    lp = loops() if SPIN_SECONDS > 0 else None
    if lp is None:
        return None
    global _hints
    if _hints is None:  # two threads may both measure: either result will do
        flag, n = np.zeros(1, np.int64), 4000
        lp.spin_while(flag, 0, 0, 1, -1, 0)  # loads the compiled code
        t0 = time.perf_counter()
        lp.spin_while(flag, 0, 0, n, -1, 0)
        per = max(time.perf_counter() - t0, 1e-9) / n
        _hints = max(1, int(SPIN_SECONDS / per)), int(GRACE_SECONDS / per)
    tries, after = _hints
    return lambda flags, i, value, bump=-1, grace=False: lp.spin_while(
        flags, i, value, tries, bump, after if grace else 0)


def _work(inbox: SimpleQueue, flags: np.ndarray) -> None:
    _local.inside = True
    seen, report = 0, False
    while True:
        wait = _spin()
        if wait is not None:  # returns early when a task is posted: then get() has it
            wait(flags, 0, seen, 1 if report else -1, grace=True)
        elif report:
            flags[1] += 1
        fn, lo, hi = inbox.get()
        seen = int(flags[0])
        try:
            fn(lo, hi)
            result = None
        except BaseException as err:  # handed to the caller, which re-raises it
            result = err
        # drop the task before reporting: while waiting for the next one, this thread must
        # not keep its arrays (and their recycled memory, see _workspace) alive
        fn = None
        _done.put(result)
        report = True  # flags[1] += 1, only by this thread, once the GIL is let go


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
            worker = (SimpleQueue(), np.zeros(2, np.int64))
            threading.Thread(target=_work, args=worker, daemon=True,
                             name=f"convnetpy-{len(_workers)}").start()
            _workers.append(worker)
        used = _workers[:parts - 1]
        reported = [int(flags[1]) for _, flags in used]
        for i, (inbox, flags) in enumerate(used, 1):
            inbox.put((fn, bounds[i], bounds[i + 1]))
            flags[0] += 1  # only this thread (holding _lock) writes it
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
            try:
                wait = _spin()
                if wait is not None:  # a part reported is then in _done at once
                    for (_, flags), seen in zip(used, reported):
                        wait(flags, 1, seen)
            except KeyboardInterrupt as stop:
                errors.insert(0, stop)
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
