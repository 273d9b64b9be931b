"""The compute path in use (see cpu.py), chosen once per process, and what it brings: the
compiled loops (``loops()``) and our GEMMs (``gemm()``), each None where the path has none.
numba is imported on the first kernel call that needs it, not with convnetpy.

``use(path)`` changes the path at run time (tests run every path the CPU can run; users
may too); it returns the previous one.

>>> was = use("numpy")
>>> loops() is None and gemm() is None
True
>>> _ = use(was)
"""

from __future__ import annotations

from . import cpu

_path: str | None = None  # chosen on first use
_why = ""
_loops = None  # the imported loops module, False once its import failed
_gemms: dict = {}  # ISA -> its Gemm


def _resolve(request: str | None) -> tuple[str, str]:
    """cpu.choose, and the numpy path instead of a native one whose numba does not import
    (installed, but broken here); a forced one raises."""
    path, why = cpu.choose(request)
    if path != "numpy" and _import_loops() is None:
        if "forced" in why:
            raise cpu.CpuPathError(f"compute path {path!r}: numba does not import here")
        path, why = "numpy", "native: numba is installed but does not import"
    return path, why


def current() -> str:
    """The path in use: avx512, avx2, generic or numpy (chosen on first call)."""
    global _path, _why
    if _path is None:
        _path, _why = _resolve(None)
    return _path


def why() -> str:
    """Why the current path was chosen (for ``convnetpy info`` and benchmark records)."""
    current()
    return _why


def use(path: str) -> str:
    """Run the kernels called from now on on ``path`` ('native' for the best this CPU
    runs); returns the previous path. Raises CpuPathError for a path the CPU cannot run."""
    global _path, _why
    was = current()
    _path, _why = _resolve(path)
    return was


def compiled():
    """The compiled loops module, whatever the path (None where numba does not import): for
    the kernels that only the compiled paths' dispatch tables hold."""
    return _import_loops()


def _import_loops():
    global _loops
    if _loops is None:
        try:
            from . import loops as module
        except ImportError:  # numba too old/new for this NumPy, say
            _loops = False
        else:
            _loops = module
    return _loops or None


def loops():
    """The compiled loops module, or None on the numpy path."""
    return None if current() == "numpy" else _import_loops()


def gemm():
    """Our GEMMs for the path's ISA (a ``gemm.Gemm``), or None (generic, numpy)."""
    path = current()
    if path not in ("avx512", "avx2") or loops() is None:
        return None
    if path not in _gemms:
        from .gemm import Gemm
        from .microkernels import blocking

        info = cpu.detect()
        _gemms[path] = Gemm(path, blocking(path, info.l1d, info.l2))
    return _gemms[path]


def describe() -> str:
    """One line: the path and what it runs, e.g. 'avx2 (numba 0.61.0, AVX2 GEMMs)'."""
    path = current()
    if path == "numpy":
        return "numpy (no compiled code)"
    version = cpu.detect().numba
    if path == "generic":
        return f"generic (numba {version}, NumPy's BLAS for the GEMMs)"
    return f"{path} (numba {version}, {path.upper()} GEMMs)"
