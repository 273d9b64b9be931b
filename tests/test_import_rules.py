"""The dependency rules of DESIGN.md, read from the source: the layers point one way and no
module imports itself back through others (deferred imports count); kernels import only
numpy and shape: no threads, workspaces, numba or anything above them; only backend imports
numba and llvmlite, only distributed mpi4py; nothing in convnetpy imports torch except an
explicit interop module."""

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


# bottom to top: a module may import its own layer's modules and any layer below, never one
# above (the layers of DESIGN.md; the package's __init__ is the public facade that the
# command line and the dashboard may use)
LAYERS = [
    {"version", "shape", "checks", "random"},
    {"kernels"},
    {"backend", "runtime"},
    {"autograd", "anomaly"},
    {"_ops"},
    {"tensor"},
    {"functional"},
    {"nn"},
    {"optim", "data", "models", "distributed"},
    {"analysis", "io", "viz", "train", "onnx", "interop"},
    {"convnetpy"},
    {"dashboard"},
    {"cli", "__main__"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def internal_imports(name: str) -> set[str]:
    """The convnetpy modules that module ``name`` imports, anywhere in its body."""
    path = MODULES[name]
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "convnetpy"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1]
                                + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "convnetpy":
                continue
            for a in node.names:  # "from . import nn" imports the module convnetpy.nn
                full = f"{base}.{a.name}"
                out.add(full if full in MODULES else base)
    return out - {name}


def layer(name: str) -> int:
    top = name.split(".")[1] if "." in name else name
    for i, group in enumerate(LAYERS):
        if top in group:
            return i
    raise AssertionError(f"{name} belongs to no layer of LAYERS: add it where it fits")


def test_every_import_points_down_the_layers():
    upward = [f"{m} imports {t}" for m in MODULES for t in internal_imports(m)
              if layer(t) > layer(m)]
    assert not upward, "imports that point up the layers:\n" + "\n".join(sorted(upward))


def test_no_module_imports_itself_back():
    graph = {m: internal_imports(m) & MODULES.keys() for m in MODULES}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.add(w)
                if w == v:
                    break
            if len(part) > 1:
                cycles.append(sorted(part))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"


def test_no_private_name_crosses_a_package():
    # what another package needs is public and documented (DESIGN.md)
    crossing = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                crossing += [f"{name} imports {a.name} from {'.' * node.level}{node.module or ''}"
                             for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert not crossing, "\n".join(crossing)


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


def test_only_distributed_imports_mpi4py():
    for path in PKG.rglob("*.py"):
        if path.parent.name == "distributed":
            continue
        bad = {n for n in imports(path) if n.split(".")[0] == "mpi4py"}
        assert not bad, f"{path.relative_to(PKG)} imports {bad}: only distributed/ uses MPI"


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
    assert "convnetpy.functional" in internal_imports("convnetpy.nn.functional")
    assert "convnetpy.autograd" in internal_imports("convnetpy.tensor")
    assert layer("convnetpy.cli") > layer("convnetpy.nn.conv") > layer("convnetpy.shape")
