"""convnetpy.runtime: the thread setting and keep_freed_memory (in fresh processes, since
the malloc setting is process-wide and cannot be undone)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import convnetpy as cp

PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from convnetpy.runtime import keep_freed_memory
    assert keep_freed_memory()

def step():  # 20 arrays of 8 MB alive at once, then freed: a training step's activations
    alive = [np.ones(2_000_000, dtype=np.float32) for _ in range(20)]
    del alive

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_keep_freed_memory_stops_the_page_faults_of_repeated_large_arrays():
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True,
                             text=True, check=True)
        return int(out.stdout)

    default, kept = faults("default"), faults("keep")
    # default: the freed heap top goes back to the kernel and faults in again every step
    # (seen: ~104,000 faults over 10 steps); kept, the steps reuse it (seen: 0)
    assert default > 20_000, default
    assert kept < default / 20, (kept, default)


def test_thread_count_round_trips_and_validates():
    n = cp.runtime.get_num_threads()
    try:
        cp.runtime.set_num_threads(1)
        assert cp.runtime.get_num_threads() == 1
    finally:
        cp.runtime.set_num_threads(n)
    with pytest.raises(ValueError, match="positive int"):
        cp.runtime.set_num_threads(-2)


@pytest.mark.slow
def test_the_compute_path_is_chosen_by_environment_and_by_call():
    code = ("from convnetpy import runtime; print(runtime.compute_path()); "
            "runtime.use_path('numpy'); print(runtime.compute_path()); "
            "runtime.use_compiled(True); print(runtime.compute_path())")
    env = {k: v for k, v in os.environ.items() if k != "CONVNETPY_CPU"}
    forced = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={**env, "CONVNETPY_CPU": "numpy"})
    assert forced.stdout.split("\n")[:2] == ["numpy (no compiled code)"] * 2
    native = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env=env).stdout.split("\n")
    from convnetpy.backend import cpu

    best, _ = cpu.choose("native")
    assert native[0].split()[0] == best and native[2] == native[0]
    assert native[1] == "numpy (no compiled code)"


@pytest.mark.usefixtures("every_path")
def test_a_conv_backward_runs_on_the_path_its_forward_ran_on():
    # the kernel is looked up when the forward pass runs: switching paths between forward
    # and backward must not pair one path's cache (its column layout) with another's code
    import convnetpy.functional as F
    from convnetpy.backend import select

    rng = np.random.default_rng(0)
    x = cp.tensor(rng.standard_normal((2, 3, 7, 7)), requires_grad=True)
    w = cp.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    want = x.grad.numpy().copy(), w.grad.numpy().copy()
    x.grad = w.grad = None
    out = F.conv2d(x, w, padding=1).sum()
    was = select.use("numpy" if select.current() != "numpy" else "native")
    try:
        out.backward()
    finally:
        select.use(was)
    np.testing.assert_allclose(x.grad.numpy(), want[0], rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), want[1], rtol=1e-12)


def test_recycled_outputs_come_back_only_when_nothing_uses_them():
    from convnetpy.backend.memory import _Pool

    rec = _Pool(cap=64 << 20)
    a = rec.empty((512, 1024), np.float32)  # 2 MiB
    a[...] = 1.0
    addr = a.ctypes.data
    view = a[100:]
    del a
    b = rec.empty((512, 1024), np.float32)
    assert b.ctypes.data != addr  # a view still uses the first buffer
    assert view.base is not None and np.all(view == 1.0)
    del view
    c = rec.empty((1024, 512), np.float32)  # same size, other shape: recycled
    assert c.ctypes.data == addr and c.flags.writeable and c.flags.c_contiguous
    del c
    d = rec.empty((500, 1000), np.float32)  # a little smaller, the same size class
    assert d.ctypes.data == addr
    del d
    assert rec.clear() == 2 << 20 and rec.clear() == 0
    small = rec.empty((10,), np.float64)  # under MIN_BYTES: plain NumPy memory
    assert small.flags.owndata


def test_recycling_stops_at_the_cap():
    from convnetpy.backend.memory import _Pool

    rec = _Pool(cap=3 << 20)
    arrays = [rec.empty((1 << 20,), np.uint8) for _ in range(5)]  # 5 MiB in use
    del arrays
    assert rec.clear() == 3 << 20  # only 3 MiB were kept for reuse


def test_size_classes_round_up_by_at_most_a_quarter():
    from convnetpy.backend.memory import size_class

    for n in list(range(1, 5000)) + [(1 << 20) + 1, 3 << 20, (5 << 20) - 7]:
        c = size_class(n)
        assert n <= c <= max(n + 4, n * 5 // 4 + 1), n
        assert size_class(c) == c  # a class is its own class


def test_kernel_outputs_are_recycled_between_steps():
    # a ReLU output of 8 MiB freed and asked for again reuses its memory
    from convnetpy.backend import cpu
    from convnetpy.backend.dispatch import table

    if cpu.runnable("generic", cpu.detect()):
        pytest.skip("numba is not installed: the compiled ReLU is not there")
    relu_forward = table("generic")["relu"].forward

    x = np.ones((2, 1024, 1024), np.float32)
    out, _ = relu_forward(x)
    addr = out.ctypes.data
    del out, _
    again, _ = relu_forward(x)
    assert again.ctypes.data == addr and np.all(again == 1.0)


def test_without_numba_the_kernels_run_their_numpy_code():
    # sys.modules[name] = None makes "import numba" fail as if it were not installed
    code = ("import sys; sys.modules['numba'] = None\n"
            "import numpy as np, convnetpy as cp, convnetpy.functional as F\n"
            "from convnetpy import runtime\n"
            "x = cp.tensor(np.ones((2, 3, 6, 6), np.float32), requires_grad=True)\n"
            "w = cp.tensor(np.ones((4, 3, 3, 3), np.float32))\n"
            "F.relu(F.conv2d(x, w, padding=1)).sum().backward()\n"
            "print(runtime.compiled_loops(), float(x.grad.numpy().sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    # each input pixel meets 4 filters over its (clipped) 3x3 neighbourhood
    assert out[:4] == ["numpy", "(no", "compiled", "code)"]
    assert out[4] == str(float(4 * 2 * 3 * (4 * 4 + 4 * 4 * 6 + 9 * 16)))


def test_a_recycled_gradient_is_taken_as_grad_without_a_copy_but_its_views_are_copied():
    from convnetpy.backend.memory import empty
    from convnetpy.tensor import _whole

    g = empty((512, 1024), np.float32)
    assert _whole(g)
    assert not any(_whole(v) for v in (g[1:], g.reshape(-1), g.T))
    assert not _whole(np.lib.stride_tricks.as_strided(g, (4,), (8,)))  # a view all the same
    x = cp.tensor(np.ones((2, 1024, 1024), np.float32), requires_grad=True)
    y = cp.tensor(np.ones((2, 1024, 1024), np.float32), requires_grad=True)
    (x.relu() + y.relu()).sum().backward()
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())
