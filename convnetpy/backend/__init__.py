"""What makes convnetpy fast: CPU detection and the compute path (cpu.py, select.py), the
one dispatch table from op to kernel (dispatch.py), numba loops (loops.py), GEMMs with
micro-kernels generated per ISA (microkernels.py, gemm.py, conv_parts.py), the fast
versions of the ops that need them (conv, activation, normalization, linear, pooling,
reduce), the thread pool (threads.py) and memory reuse (memory.py). Everything here is
checked against the reference kernels (convnetpy/kernels) on every path the CPU runs.
Only this package imports numba and llvmlite.
"""
