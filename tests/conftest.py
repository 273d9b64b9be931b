import os

import numpy as np
import pytest

try:
    import torch  # noqa: F401

    HAVE_TORCH = True
except Exception:  # pragma: no cover - depends on the environment
    HAVE_TORCH = False

# scripts that the data-parallel tests launch under mpiexec, not test modules
collect_ignore = ["mpi"]

needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed "
                                 "(pip install torch==2.13.0 for the live parity tests)")


def assert_ref(actual, ref, tol=1e-10, what=""):
    """max |actual - ref| <= tol * max(1, |ref|), elementwise."""
    actual, ref = np.asarray(actual, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert actual.shape == ref.shape, f"{what}: shape {actual.shape} != reference {ref.shape}"
    same = (actual == ref) | (np.isnan(actual) & np.isnan(ref))  # equal infinities, NaN
    with np.errstate(invalid="ignore"):
        err = np.where(same, 0.0, np.abs(actual - ref) / np.maximum(1.0, np.abs(ref)))
    assert err.size == 0 or err.max() <= tol, f"{what}: max scaled error {err.max():.3g}"


def rel_fro(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true",
                     help="rewrite tests/golden/*.txt from the current output (then review "
                          "the diff)")
    parser.addoption("--run-heavy", action="store_true",
                     help="also run the tests marked heavy (or set CONVNETPY_HEAVY=1)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``heavy`` (tens of seconds each on 2 cores: the 60-140 M weight ImageNet
    models) are skipped, with the reason, unless asked for: the default suite stays within
    CI's time on a 2-core machine. Tests marked ``slow`` (a second or more each) run by
    default; ``pytest -m "not slow"`` leaves them out for a quick check."""
    if config.getoption("--run-heavy") or os.environ.get("CONVNETPY_HEAVY") == "1":
        return
    skip = pytest.mark.skip(reason="heavy (tens of seconds on 2 cores): run with --run-heavy "
                                   "or CONVNETPY_HEAVY=1")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def golden(request):
    """golden(name, text): compare text with tests/golden/<name>, or rewrite it when pytest
    runs with --regen-golden."""
    from pathlib import Path

    folder = Path(__file__).parent / "golden"

    def check(name, text):
        path = folder / name
        if request.config.getoption("--regen-golden"):
            folder.mkdir(exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"{path} is missing: run pytest --regen-golden and review it"
        assert text == path.read_text(), f"{name} differs from the golden file"

    return check


_ZOO: dict = {}


def zoo(name, **kwargs):
    """A zoo model built once per session, for tests that only read it (summary, check,
    state_dict keys): VGG-16 alone has 138M parameters."""
    from convnetpy import models

    key = (name, tuple(sorted(kwargs.items())))
    if key not in _ZOO:
        _ZOO[key] = models.get(name, **kwargs)
    return _ZOO[key]


PATHS = ["reference", "numpy", "generic", "avx2", "avx512"]


@pytest.fixture(params=PATHS)
def every_path(request, monkeypatch):
    """Run a test once per compute path: the reference kernels (convnetpy/kernels, the
    spec), and each path of the backend (numpy, generic, avx2, avx512; see
    backend/cpu.py) that this CPU runs; the others are skipped with the reason (an AVX-512
    machine runs all of them)."""
    from convnetpy.backend import cpu, dispatch, select

    name = request.param
    if name == "reference":
        monkeypatch.setattr(dispatch, "current", lambda: "reference")
        yield name
        return
    why_not = cpu.runnable(name, cpu.detect())
    if why_not:
        pytest.skip(f"compute path {name} cannot run here: {why_not}")
    was = select.use(name)
    try:
        yield name
    finally:
        select.use(was)


class OnPath:
    """A reference kernels module as the current compute path runs it: ``<op>_forward`` /
    ``<op>_backward`` of an op in the dispatch table go through
    ``backend.dispatch.kernel(op)``; every other name is the module's own."""

    def __init__(self, module) -> None:
        self.module = module

    def __getattr__(self, name):
        from convnetpy.backend.dispatch import kernel, table

        for suffix, field in (("_forward", "forward"), ("_backward", "backward")):
            op = name[: -len(suffix)]
            if name.endswith(suffix) and op in table("reference"):
                return lambda *a, **k: getattr(kernel(op), field)(*a, **k)
        return getattr(self.module, name)


def our_gemms(path: str) -> bool:
    """Whether float32 GEMMs run on our own micro-kernels on ``path``."""
    return path in ("avx2", "avx512")


def spy_threads(monkeypatch, module, threads: int = 2) -> list:
    """Give the thread split ``threads`` threads and record, in the returned list, each
    piece that ``module.parallel_for`` ran: (thread name, lo, hi). Which thread runs which
    piece depends on timing (pieces go to whoever asks first); how the work is cut does
    not."""
    import threading

    from convnetpy.backend import threads as _parallel

    pieces: list = []
    real = module.parallel_for

    def spy(fn, n, items=1):
        def piece(lo, hi):
            pieces.append((threading.current_thread().name, lo, hi))
            fn(lo, hi)
        real(piece, n, items)

    monkeypatch.setattr(module, "parallel_for", spy)
    monkeypatch.setattr(_parallel, "THREADS", threads)
    return pieces


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell that starts the
    suite in the background (``cmd &``) passes SIGINT on ignored, and Python then keeps
    ignoring it; the child gets the default action back (Python's KeyboardInterrupt)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A run folder of LeNet-5 trained 40 steps on the bundled digits (a few seconds): a
    real checkpoint for the commands that read one."""
    from convnetpy.train import TrainConfig, fit

    out = tmp_path_factory.mktemp("digits_runs")
    res = fit(TrainConfig(model="lenet5", data="digits", epochs=1, lr=0.05, max_steps=40,
                          progress=False, out=str(out), model_kwargs={"padding": 2},
                          health_every=0),
              log=lambda line: None)
    return res["run_dir"]
