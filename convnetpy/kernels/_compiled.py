"""Whether the kernels use the numba-compiled loops of ``_loops`` or their NumPy twins.

numba is optional (``pip install convnetpy[fast]``). The compiled loops are used when it
imports and they are not switched off by ``CONVNETPY_COMPILED=0`` or ``use_compiled(False)``;
otherwise every kernel runs its pure-NumPy code, which gives the same results. numba is
imported on the first kernel call that could use it, not with convnetpy.

>>> was = use_compiled(False)
>>> loops() is None
True
>>> _ = use_compiled(was)
"""

from __future__ import annotations

import os

_wanted = os.environ.get("CONVNETPY_COMPILED", "1").strip() != "0"
_module = None  # the imported _loops, False once an import failed
# our AVX-512 GEMM (_gemm): None = where the CPU has AVX-512, True/False = always/never
_gemm_wanted = {"0": False, "1": True}.get(os.environ.get("CONVNETPY_GEMM", "").strip())
_gemm = None  # the imported _gemm, False once an import failed


def use_compiled(flag: bool) -> bool:
    """Use the compiled loops (when numba is installed) or, with False, the NumPy code, in
    the kernels called from now on; returns the previous setting."""
    global _wanted
    was, _wanted = _wanted, bool(flag)
    return was


def loops():
    """The compiled loops module, or None when they are off or numba is not installed."""
    global _module
    if not _wanted:
        return None
    if _module is None:
        try:
            from . import _loops
        except ImportError:  # numba missing, or too old/new for this NumPy
            _module = False
        else:
            _module = _loops
    return _module or None


def use_gemm(flag: bool | None) -> bool | None:
    """Run the float32 convolutions' GEMMs on our own kernels (``_gemm``) always (True),
    never (False, NumPy's matmul), or where the CPU has AVX-512 (None, the default; also set
    by CONVNETPY_GEMM=1/0); returns the previous setting. They need the compiled loops."""
    global _gemm_wanted
    was, _gemm_wanted = _gemm_wanted, flag
    return was


def gemm():
    """The ``_gemm`` module when the convolutions should use it, else None."""
    global _gemm
    if _gemm_wanted is False or loops() is None:
        return None
    if _gemm is None:
        try:
            from . import _gemm as mod
        except ImportError:
            _gemm = False
        else:
            _gemm = mod
    if not _gemm or (_gemm_wanted is None and not _gemm.available()):
        return None
    return _gemm


def describe() -> str:
    """What the kernels run on, for benchmark records: 'numba X.Y' (+ ', AVX-512 GEMM') or
    'NumPy only'."""
    mod = loops()
    if not mod:
        return "NumPy only"
    return f"numba {mod.numba.__version__}" + (", AVX-512 GEMM" if gemm() else "")
