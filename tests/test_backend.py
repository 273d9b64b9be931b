"""The compute path: which one a CPU gets and why, forcing one, the clear error for one the
CPU cannot run, the dispatch table behind each, and what `convnetpy info` reports."""

import json
import os
import subprocess
import sys

import pytest

from convnetpy.backend import cpu, dispatch, select

AVX512 = cpu.Cpu("Intel Xeon", "x86_64", frozenset({"avx2", "fma", "avx512f"}), 48 << 10,
                 2 << 20, "0.60.0")
AVX2 = AVX512._replace(model="AMD EPYC", features=frozenset({"avx", "avx2", "fma"}))
ARM = AVX512._replace(model="Neoverse-N1", machine="aarch64", features=frozenset({"asimd"}))
NO_NUMBA = AVX2._replace(numba=None)


@pytest.mark.parametrize("machine,path,why", [
    (AVX512, "avx512", "AVX-512F"), (AVX2, "avx2", "no AVX-512F"),
    (ARM, "generic", "no AVX2+FMA"), (NO_NUMBA, "numpy", "numba is not installed"),
])
def test_native_takes_the_best_path_the_cpu_runs(machine, path, why):
    got, reason = cpu.choose("native", machine)
    assert got == path and why in reason


def test_an_avx512_machine_can_be_held_to_every_lower_path():
    for path in ("avx2", "generic", "numpy"):
        assert cpu.choose(path, AVX512) == (path, f"forced ({path})")


@pytest.mark.parametrize("machine,path,missing", [
    (AVX2, "avx512", "lacks avx512f"), (ARM, "avx2", "lacks avx2, fma"),
    (NO_NUMBA, "generic", "numba is not installed"),
])
def test_a_path_the_cpu_cannot_run_is_a_clear_error(machine, path, missing):
    with pytest.raises(cpu.CpuPathError, match=f"compute path '{path}' cannot run here: .*"
                                               f"{missing}.*Unset CONVNETPY_CPU"):
        cpu.choose(path, machine)


def test_an_unknown_path_names_the_choices():
    with pytest.raises(cpu.CpuPathError, match="'sse9' is not a compute path; choose one of "
                                               "native, avx512, avx2, generic, numpy"):
        cpu.choose("sse9", AVX2)


def test_the_environment_forces_the_path_at_the_first_op_and_the_cli_start():
    env = {k: v for k, v in os.environ.items() if k != "CONVNETPY_CPU"}
    bad = "avx512" if cpu.runnable("avx512", cpu.detect()) else "sse9"
    res = subprocess.run([sys.executable, "-c", "import convnetpy; convnetpy.ones(3).sum()"],
                         capture_output=True, text=True, env={**env, "CONVNETPY_CPU": bad})
    assert res.returncode != 0 and "CpuPathError" in res.stderr
    res = subprocess.run([sys.executable, "-m", "convnetpy", "info"], capture_output=True,
                         text=True, env={**env, "CONVNETPY_CPU": bad})
    assert res.returncode == 2 and res.stderr.startswith("convnetpy info: error: ")
    assert "Traceback" not in res.stderr


def test_use_refuses_a_path_the_cpu_cannot_run_and_keeps_the_one_in_use():
    before = select.current()
    impossible = next((p for p in cpu.PATHS if cpu.runnable(p, cpu.detect())), None)
    if impossible is None:
        pytest.skip("this CPU runs every path")
    with pytest.raises(cpu.CpuPathError):
        select.use(impossible)
    assert select.current() == before


def test_each_path_table_holds_every_op_and_replaces_only_what_it_speeds_up():
    ref = dispatch.table("reference")
    fast = {"generic": {"conv2d", "relu", "gelu", "batch_norm", "max_pool2d", "sum_all"},
            "numpy": {"conv2d"}}
    fast["avx2"] = fast["avx512"] = fast["generic"] | {"linear"}
    for path, ops in fast.items():
        table = dispatch.table(path)
        assert set(table) == set(ref)
        replaced = {op for op in table if table[op] != ref[op]}
        assert replaced == ops, path


@pytest.mark.slow
def test_info_reports_the_cpu_and_the_path_it_chose():
    res = subprocess.run([sys.executable, "-m", "convnetpy", "info", "--json"],
                         capture_output=True, text=True, check=True)
    report = json.loads(res.stdout)
    here = cpu.detect()
    assert report["cpu"] == here.model and report["path"] == cpu.choose()[0]
    assert set(report["paths"]) == set(cpu.PATHS) and report["paths"]["numpy"] == "runs"
    assert report["threads"] >= 1 and report["versions"]["numpy"]
    assert ("gemm" in report) == (report["path"] in ("avx512", "avx2"))
    text = subprocess.run([sys.executable, "-m", "convnetpy", "info"], capture_output=True,
                          text=True, check=True).stdout
    assert f"path:     {report['path']} - {report['why']}" in text
    assert f"cpu:      {here.model}" in text


@pytest.mark.slow
def test_thread_count_comes_from_the_environment():
    code = ("import convnetpy as cp; from convnetpy.backend import threads; "
            "print(cp.get_num_threads(), threads.THREADS_FROM)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("CONVNETPY_NUM_THREADS", "OMP_NUM_THREADS")}
    omp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**env, "OMP_NUM_THREADS": "3"}).stdout.split()
    assert omp == ["3", "OMP_NUM_THREADS"]
    ours = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**env, "OMP_NUM_THREADS": "3",
                                           "CONVNETPY_NUM_THREADS": "5"}).stdout.split()
    assert ours == ["5", "CONVNETPY_NUM_THREADS"]
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env=env).stdout.split()
    assert default[0] == str(len(os.sched_getaffinity(0)))


@pytest.mark.skipif(cpu.detect().numba is None or cpu.detect().machine != "x86_64",
                    reason="needs numba on x86-64 (the other CPU is named as an x86 one)")
@pytest.mark.slow
def test_compiled_code_is_cached_per_cpu_and_recompiled_on_another(tmp_path):
    # numba keys its cache by the host CPU's name and features: a second process on this
    # CPU loads the cached code, a process that sees another CPU (here: told it is a plain
    # x86-64) compiles its own instead of running code built for this one
    code = ("import numpy as np; from convnetpy.backend import loops; "
            "loops.flat_sum(np.ones(4)); s = loops.flat_sum.stats; "
            "print(sum(s.cache_hits.values()), sum(s.cache_misses.values()))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("NUMBA_CPU_NAME", None)
    env.pop("NUMBA_CPU_FEATURES", None)

    def hits_misses(**extra):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env={**env, **extra}).stdout.split()
        return tuple(int(v) for v in out)

    assert hits_misses() == (0, 1)  # compiled and written
    assert hits_misses() == (1, 0)  # this CPU: loaded
    assert hits_misses(NUMBA_CPU_NAME="x86-64", NUMBA_CPU_FEATURES="") == (0, 1)  # another


def test_info_names_the_blas_without_threadpoolctl(monkeypatch):
    from convnetpy.backend import info

    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails as if missing
    (blas,) = info._blas()
    assert blas["internal_api"] and "threadpoolctl" in blas["note"]
    assert "blas:     internal_api" in info.format_report(info.report())
