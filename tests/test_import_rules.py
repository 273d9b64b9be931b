"""The dependency rules of DESIGN.md, read from the source: kernels import only numpy (and
each other): no threads, workspaces, numba or anything above them; only backend imports
numba and llvmlite; nn never imports data/train/dashboard; nothing in convnetpy imports
torch except an explicit interop module."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "convnetpy"


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


def test_kernels_import_only_numpy_shape_and_each_other():
    for path in (PKG / "kernels").glob("*.py"):
        for name in imports(path):
            root = name.split(".")[0]
            ok = root in ("numpy", "__future__", "math", "typing") or name in (
                "..shape", "..shape.ShapeError") or name.startswith("..shape.") or (
                name.startswith(".") and not name.startswith(".."))
            assert ok, f"kernels/{path.name} imports {name}"


def test_only_the_backend_imports_numba_and_llvmlite():
    for path in PKG.rglob("*.py"):
        if path.parent.name == "backend":
            continue
        bad = {n for n in imports(path) if n.split(".")[0] in ("numba", "llvmlite")
               or {"loops", "gemm", "microkernels", "conv_parts"} & set(n.split("."))}
        assert not bad, f"{path.relative_to(PKG)} imports {bad}: only backend/ compiles code"


def test_the_backend_reaches_no_layer_above_it():
    # backend sits between kernels and autograd: it may import kernels, nothing above
    for path in (PKG / "backend").glob("*.py"):
        for name in imports(path):
            if name.startswith(".."):
                assert name.split(".")[2] in ("kernels", "shape"), (
                    f"backend/{path.name} imports {name}")


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
