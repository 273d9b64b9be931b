"""The dependency rules of DESIGN.md, read from the source: kernels import only numpy (and
their siblings; numba and its llvmlite in the two modules of optional compiled code); nn
never imports data/train/dashboard; nothing in convnetpy imports torch except an explicit
interop module."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "convnetpy"
COMPILED = ("_loops.py", "_gemm.py")  # the modules of optional numba code


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            # "from .. import functional" also names "..functional"
            sep = "" if base.endswith(".") else "."
            names |= {base + sep + a.name for a in node.names}
    return names


def test_kernels_import_only_numpy_and_each_other():
    for path in (PKG / "kernels").glob("*.py"):
        for name in imports(path):
            root = name.split(".")[0]
            # the standard library's threading/queue/os/ctypes/weakref hold no framework state
            # (scratch buffers per thread, the worker threads, recycled outputs; time and
            # platform measure the spin and name the CPU); no other package, no layer above
            # kernels
            ok = root in ("numpy", "__future__", "math", "typing", "threading", "queue", "os",
                          "ctypes", "weakref", "functools", "time", "platform") or (
                name.startswith(".") and not name.startswith(".."))
            # the optional compiled loops and GEMMs live in two modules, imported only
            # through _compiled
            ok = ok or (path.name in COMPILED and root in ("numba", "llvmlite"))
            assert ok, f"{path.name} imports {name}"


def test_only_the_switch_imports_the_compiled_loops():
    for path in PKG.rglob("*.py"):
        if path.name in ("_compiled.py", *COMPILED):
            continue
        bad = {n for n in imports(path) if {"_loops", "_gemm"} & set(n.split("."))
               or n.split(".")[0] in ("numba", "llvmlite")}
        assert not bad, f"{path.relative_to(PKG)} imports {bad}: go through kernels._compiled"


def test_nothing_imports_torch():
    for path in PKG.rglob("*.py"):
        if "interop" in path.name:
            continue
        bad = {n for n in imports(path) if n == "torch" or n.startswith("torch.")}
        assert not bad, f"{path.relative_to(PKG)} imports {bad}"


def test_nn_does_not_import_tools():
    for path in (PKG / "nn").glob("*.py"):
        for name in imports(path):
            for tool in ("data", "train", "dashboard", "checkpoint", "cli"):
                assert tool not in name.split("."), f"nn/{path.name} imports {name}"


def test_the_rule_checker_sees_imports():
    # guard against a checker that silently finds nothing
    assert "numpy" in imports(PKG / "kernels" / "conv.py")
    assert "..functional" in imports(PKG / "nn" / "functional.py")
