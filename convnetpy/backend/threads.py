"""Splitting work over the CPU's cores.

NumPy runs copies and element-wise operations on one core, releasing the GIL while it does;
the compiled kernels release it too. ``parallel_for(fn, n)`` calls ``fn(lo, hi)`` over
pieces of ``range(n)`` that together cover it once, on up to ``THREADS`` threads: the
calling thread and persistent workers. Work that is small, a call from inside a piece, or
a call while another thread is using the workers runs inline instead, on the same pieces,
so results never depend on it: every piece writes its own slice, and what is summed over
pieces is added in piece order by the caller.

The pieces are handed out as the threads ask for them (PIECES per thread; each thread's
first piece is kept for it until the others have run out), so a thread that the OS has
put aside while another process uses its core delays the call by one piece at most, not
by its whole share: on a busy machine the threads do not turn into a convoy.

Between calls the threads do not sleep at once: with the compiled loops a worker spins
(without the GIL) on its counter of posted calls for up to SPIN_SECONDS, and the caller on
the count of finished pieces, as OpenMP's threads do, then they block (a queue, an event).
The spin is short, so an idle or busy machine loses little to it; OMP_WAIT_POLICY=passive
turns it off.

The thread count is CONVNETPY_NUM_THREADS, else OMP_NUM_THREADS, else the cores this
process may run on (``os.sched_getaffinity``). ``set_num_threads`` changes it at run time.

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


def _default_threads() -> tuple[int, str]:
    """The thread count and where it came from."""
    for var in ("CONVNETPY_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value), var
    try:
        return max(1, len(os.sched_getaffinity(0))), "the cores this process may use"
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1, "os.cpu_count()"


THREADS, THREADS_FROM = _default_threads()
PIECES = 4  # pieces per thread: a thread held up by the OS leaves the others 1/PIECES late
MIN_ITEMS = 1 << 17  # below this many elements a split costs more than it saves
# after a call a worker watches for the next one this long before it sleeps (so does a
# caller waiting for the pieces of others); OMP_WAIT_POLICY=passive, as for OpenMP: not at
# all. Short: a spinning thread takes the core from any other process that wants it.
SPIN_SECONDS = 0.0 if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive" else 2e-4
# a worker that sees a call posted waits this much longer before it takes the GIL: the
# caller still holds it until its own piece enters compiled code, and a thread that blocks
# on the GIL sleeps, to be woken far later
GRACE_SECONDS = 4e-6

_lock = threading.Lock()  # held by the one caller using the workers
_local = threading.local()
# per worker: its inbox, and int64 [calls posted] that its spin watches
_workers: list[tuple[SimpleQueue, np.ndarray]] = []
_hints: tuple[int, int] | None = None  # SPIN_SECONDS, GRACE_SECONDS in spin hints (measured)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 = everything inline) for the kernels' work from now on."""
    global THREADS, THREADS_FROM
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {n!r}")
    THREADS, THREADS_FROM = n, "set_num_threads"


def get_num_threads() -> int:
    """The threads the kernels split their work over."""
    return THREADS


def _spin():
    """``wait(flags, i, value, grace=False)``: spin without the GIL while flags[i] ==
    value, for at most SPIN_SECONDS (and GRACE_SECONDS more after a change, with
    ``grace``); returns the last value read. None without the compiled loops or with
    SPIN_SECONDS 0 (then every wait blocks at once).

    Why: a thread that blocks takes tens of microseconds to wake on virtual CPUs that halt
    when idle, and a pass over a few MB takes about a hundred: a worker that watches its
    counter for a moment after each call starts the next at once, as OpenMP's threads do."""
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
    return lambda flags, i, value, grace=False: lp.spin_while(
        flags, i, value, tries, -1, after if grace else 0)


class _Call:
    """One parallel_for call: its pieces, who has claimed which, and how many are done.
    Thread t's first piece is piece t, kept for it until the shared ones are gone; a worker
    that comes late finds nothing left and goes back to waiting."""

    def __init__(self, fn, bounds: list[int], threads: int) -> None:
        self.fn, self.bounds, self.threads = fn, bounds, threads
        self.pieces = len(bounds) - 1
        self.claimed = bytearray(self.pieces)
        self.next_shared = threads  # pieces from here on go to whoever asks first
        self.lock = threading.Lock()
        self.done = np.zeros(1, np.int64)  # pieces finished: the caller's spin watches it
        self.finished = threading.Event()
        self.errors: dict[int, BaseException] = {}

    def _claim(self, own: int) -> int:
        with self.lock:
            if own < self.pieces and not self.claimed[own]:
                self.claimed[own] = 1
                return own
            while self.next_shared < self.pieces and self.claimed[self.next_shared]:
                self.next_shared += 1
            if self.next_shared < self.pieces:
                self.claimed[self.next_shared] = 1
                return self.next_shared
            for i in range(min(self.threads, self.pieces)):  # others' first pieces, unstarted
                if not self.claimed[i]:
                    self.claimed[i] = 1
                    return i
            return -1

    def run(self, thread: int) -> None:
        """Run pieces (thread's own first) until none is left unclaimed."""
        fn, b = self.fn, self.bounds
        while (i := self._claim(thread)) >= 0:
            try:
                fn(b[i], b[i + 1])
            except BaseException as err:  # handed to the caller, which re-raises it
                self.errors[i] = err
            with self.lock:
                self.done[0] += 1
                if self.done[0] == self.pieces:
                    self.finished.set()
        self.fn = fn = None  # a late worker must not keep the call's arrays alive


def _work(index: int, inbox: SimpleQueue, flags: np.ndarray) -> None:
    _local.inside = True
    taken = 0  # calls taken from the inbox; flags[0] counts those posted to it
    while True:
        wait = _spin()
        if wait is not None:  # returns at once while a posted call waits in the inbox
            wait(flags, 0, taken, grace=True)
        call = inbox.get()
        taken += 1
        call.run(index)
        call = None  # while waiting for the next one, keep no arrays alive


def _forget_workers() -> None:  # a forked child has no worker threads
    global _lock
    _workers.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def _threads(n: int, items_per_index: int) -> int:
    return max(1, min(THREADS, n)) if n * items_per_index >= MIN_ITEMS else 1


def _pieces(n: int, threads: int) -> int:
    return min(n, threads * PIECES) if threads > 1 else 1


def _bounds(n: int, threads: int) -> list[int]:
    pieces = _pieces(n, threads)
    return [n * i // pieces for i in range(pieces + 1)]


def split_plan(n: int, items_per_index: int = 1) -> tuple[int, int]:
    """(threads, pieces) that ``parallel_for(fn, n, items_per_index)`` runs ``fn`` on
    (from an idle caller): what the kernels' memory estimates count per thread and piece."""
    threads = _threads(n, items_per_index)
    return threads, _pieces(n, threads)


def _wait(call: _Call) -> list[BaseException]:
    """Wait until every piece of ``call`` is done, through Ctrl-C too (a piece left running
    would write into arrays the caller has moved on from); the interrupts, to raise after."""
    stops = []
    wait = None
    try:
        wait = _spin()
        seen = int(call.done[0])
        while wait is not None and seen != call.pieces:
            now = wait(call.done, 0, seen)
            if now == seen:  # the spin ran out: block
                break
            seen = now
    except KeyboardInterrupt as stop:
        stops.append(stop)
    while True:
        try:
            call.finished.wait()
            return stops
        except KeyboardInterrupt as stop:
            stops.append(stop)


def parallel_for(fn, n: int, items_per_index: int = 1) -> None:
    """Call ``fn(lo, hi)`` over pieces of ``range(n)`` that together cover it once.

    ``items_per_index`` (elements touched per index) decides whether splitting pays."""
    threads = _threads(n, items_per_index)
    bounds = _bounds(n, threads)
    if threads < 2 or getattr(_local, "inside", False) or not _lock.acquire(blocking=False):
        for i in range(len(bounds) - 1):  # the same pieces in turn: the same results
            fn(bounds[i], bounds[i + 1])
        return
    try:
        while len(_workers) < threads - 1:
            worker = (SimpleQueue(), np.zeros(1, np.int64))
            threading.Thread(target=_work, args=(len(_workers) + 1,) + worker, daemon=True,
                             name=f"convnetpy-{len(_workers)}").start()
            _workers.append(worker)
        call = _Call(fn, bounds, threads)
        if call.pieces == 0:
            return
        for inbox, flags in _workers[:threads - 1]:
            inbox.put(call)
            flags[0] += 1  # only this thread (holding _lock) writes it
        _local.inside = True
        try:
            call.run(0)
        except KeyboardInterrupt as stop:  # between pieces: the others still finish
            call.errors[-1] = stop
        finally:
            _local.inside = False
            stops = _wait(call)
        errors = stops + [call.errors[i] for i in sorted(call.errors)]
        interrupts = [e for e in errors if isinstance(e, KeyboardInterrupt)]
        if interrupts or errors:
            raise (interrupts or errors)[0]
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
