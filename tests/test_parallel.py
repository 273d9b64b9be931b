"""The kernels' shared machinery: the thread split of NumPy work (backend/threads.py:
every index covered once, errors re-raised, a busy pool or a nested call runs inline on the
same parts, the kernels that split their work match the loop reference when the split
really happens; the pool of recycled buffers is tested in test_runtime.py)."""

import threading

import numpy as np
import pytest
from test_kernels_other import check_act, check_bn

from convnetpy.backend import threads as par


@pytest.fixture
def split_everything(monkeypatch):
    """Two threads and no size threshold: even tiny arrays are split."""
    monkeypatch.setattr(par, "THREADS", 2)
    monkeypatch.setattr(par, "MIN_ITEMS", 1)


@pytest.fixture(params=["sleeping", "spinning"])
def waits(request, monkeypatch):
    """Workers and caller that sleep in their queues at once (OMP_WAIT_POLICY=passive, or
    no compiled loops), or that spin (2 s, longer than any part here) before they do."""
    from convnetpy.backend.select import compiled as loops

    if request.param == "spinning" and loops() is None:
        pytest.skip("numba is not installed: nothing spins")
    monkeypatch.setattr(par, "SPIN_SECONDS", 0.0 if request.param == "sleeping" else 2.0)
    monkeypatch.setattr(par, "_hints", None)  # measured again for this setting
    return request.param


def test_parts_cover_the_range_once_on_several_threads(split_everything, waits):
    import time

    seen, names = [], set()

    def fn(lo, hi):
        seen.extend(range(lo, hi))
        names.add(threading.current_thread().name)
        time.sleep(0.01)  # long enough for a sleeping worker to wake and take its piece

    par.parallel_for(fn, 11)
    assert sorted(seen) == list(range(11))
    assert len(names) == 2  # the caller and one worker


def test_a_thread_held_up_leaves_its_pieces_to_the_others(split_everything, waits):
    # the worker is busy elsewhere (as if the OS had given its core to another process):
    # the caller runs every piece, the worker's own first one too, and does not wait for it
    import time

    hold = threading.Event()
    par.parallel_for(lambda lo, hi: None, 2)  # the worker exists
    inbox, _ = par._workers[0]
    inbox.put(type("Busy", (), {"run": lambda self, i: hold.wait(5)})())
    names = []
    t0 = time.perf_counter()
    par.parallel_for(lambda lo, hi: names.append(threading.current_thread().name), 100)
    took = time.perf_counter() - t0
    hold.set()
    assert len(names) == 2 * par.PIECES and set(names) == {threading.current_thread().name}
    assert took < 2, took  # not the 5 s the worker was held for


def test_a_worker_error_reaches_the_caller_and_the_pool_still_works(split_everything, waits):
    def fn(lo, hi):
        if lo > 0:
            raise ValueError("boom in the second part")

    with pytest.raises(ValueError, match="boom in the second part"):
        par.parallel_for(fn, 4)
    out = np.zeros(4)
    par.parallel_for(lambda lo, hi: out.__setitem__(slice(lo, hi), 1), 4)
    assert out.tolist() == [1, 1, 1, 1]


def test_busy_pool_and_nested_calls_run_inline_on_the_same_parts(split_everything):
    x = np.random.default_rng(0).standard_normal((7, 5))
    threaded = par.row_sum(lambda p: x[p].sum(axis=0), x)
    nested = []
    par.parallel_for(lambda lo, hi: nested.append(par.row_sum(lambda p: x[p].sum(axis=0), x))
                     if lo == 0 else None, 2)
    with par._lock:  # another thread holds the workers
        inline = par.row_sum(lambda p: x[p].sum(axis=0), x)
    assert np.array_equal(threaded, inline) and np.array_equal(threaded, nested[0])


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="positive int"):
        par.set_num_threads(0)


@pytest.mark.parametrize("shape", [(2, 3), (5, 2, 4), (3, 3, 4, 5), (4, 1, 1, 1)])
def test_batch_norm_split_over_threads_matches_reference(shape, split_everything):
    check_bn(shape)


@pytest.mark.parametrize("shape", [(6,), (3, 4), (2, 3, 2, 2), ()])
def test_relu_split_over_threads_matches_reference(shape, split_everything):
    x = np.random.default_rng(1).standard_normal(shape)
    check_act("relu", x)


def test_a_ctrl_c_while_waiting_still_waits_for_every_part(split_everything, waits):
    # the interrupt arrives while the caller waits for the worker's part (asleep in the
    # queue, or spinning): it is raised only once that part is done, so nothing runs on
    # behind the caller's back
    import os
    import signal
    import time

    finished = []

    def fn(lo, hi):
        if lo == 0:  # the caller's piece: long enough for the worker to take its own
            time.sleep(0.05)
        else:
            time.sleep(0.5)
            finished.append(lo)

    # Python's own handler, even where the suite was started with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            par.parallel_for(fn, 2)
        timer.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert finished, "the worker's part was abandoned"
    out = []
    par.parallel_for(lambda lo, hi: out.append((lo, hi)), 2)  # still in step
    assert sorted(out) == [(0, 1), (1, 2)]


def test_many_calls_in_a_row_stay_in_step(split_everything, waits):
    # back-to-back calls, as in a training step: each part is handed to the worker that is
    # still watching for it (or asleep), and every call waits for its own parts only
    x = np.arange(1000.0)
    for i in range(300):
        out = np.full(1000, -1.0)
        par.parallel_for(lambda lo, hi: np.multiply(x[lo:hi], i, out=out[lo:hi]), 1000)
        assert np.array_equal(out, x * i), i


def test_spin_while_waits_for_a_change_by_another_thread():
    from convnetpy.backend.select import compiled as loops

    lp = loops()
    if lp is None:
        pytest.skip("numba is not installed: the spin is compiled")
    flags = np.zeros(3, np.int64)
    # nothing changes: all the tries are spent and the value read back; ``bump`` first
    # adds one to its own slot
    assert lp.spin_while(flags, 0, 0, 1000, 2, 0) == 0 and flags.tolist() == [0, 0, 1]
    timer = threading.Timer(0.05, lambda: flags.__setitem__(1, 7))
    timer.start()
    # far more tries than 50 ms: the store made in another thread is seen (not a value
    # read once before the loop), then the grace tries are spent too
    assert lp.spin_while(flags, 1, 0, 1 << 40, -1, 100) == 7
    timer.join()
    assert flags.tolist() == [0, 7, 1]
