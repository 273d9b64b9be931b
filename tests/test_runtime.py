"""convnetpy.runtime: the thread setting and keep_freed_memory (in fresh processes, since
the malloc setting is process-wide and cannot be undone)."""

import subprocess
import sys

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
