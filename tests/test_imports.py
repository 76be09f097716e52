"""The package's imports run one way: no cycle between xpnet's modules (imports inside functions
count too), no private name imported from another module, and the array libraries' code
reaching nothing of xpnet but the errors. A static check of every ``import`` in xpnet/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "xpnet"
# edges that still close a cycle, each with the reason and the plan to remove it
ALLOWED: dict[tuple[str, str], str] = {}

# the layers, top first: a module imports from its own layer or those below, never from above
# (the contract an import-linter "layers" contract would state)
LAYERS = {
    "command line": "__main__ cli flags sweeps.cli",
    "Python API and sweeps": "xpnet api api.estimator api.model sweeps sweeps.study sweeps.space environment",
    "runs": "training population explore config",
    "settings, files and checks": "settings inputs callbacks presets files files.idx files.checkpoint files.atomic "
    "files.images files.plots files.onnx_export",
    "numerical engine": "engine engine.model engine.step engine.optim engine.rand engine.augment engine.data "
    "engine.evaluate engine.budget",
    "array libraries": "backends backends.backend backends.devices backends.host backends.base backends.numpy "
    "backends.cupy backends.cuda_kernels backends.cublas backends.torch backends.jax backends.threads "
    "backends.inventory",
    "errors and the version": "errors version",
}
LAYER_OF = {
    ("xpnet" if m == "xpnet" else f"xpnet.{m}"): depth
    for depth, names in enumerate(LAYERS.values())
    for m in names.split()
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every import of xpnet in the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.split(".")[0] == "xpnet"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "xpnet":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, "") if sub in modules else (base, alias.name))
    return found


def _graph():
    modules = _modules()
    return {
        name: sorted(
            {m for m, _ in _imports(name, path, modules) if m in modules and m != name and (name, m) not in ALLOWED}
        )
        for name, path in modules.items()
    }, modules


def test_no_import_cycle():
    graph, _ = _graph()
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_private_name_is_imported_from_another_module():
    modules = _modules()
    private = [
        (name, f"{m}.{n}")
        for name, path in modules.items()
        for m, n in _imports(name, path, modules)
        if n.startswith("_") and not n.startswith("__") and m != name
    ]
    assert private == []


def test_the_backends_reach_nothing_of_xpnet_but_the_errors():
    graph, _ = _graph()
    outside = {
        (name, m)
        for name, deps in graph.items()
        if name.startswith("xpnet.backends")
        for m in deps
        if not m.startswith("xpnet.backends") and m != "xpnet.errors"
    }
    assert outside == set()


def test_the_allowed_edges_still_exist():
    """An allowance whose import is gone must go too."""
    modules = _modules()
    for src, dst in ALLOWED:
        assert dst in {m for m, _ in _imports(src, modules[src], modules)}, (src, dst)


def test_every_module_has_a_layer_and_imports_only_downwards():
    graph, _ = _graph()
    assert set(graph) == set(LAYER_OF), "a module was added or removed: give it a layer in LAYERS"
    upward = [(name, m) for name, deps in graph.items() for m in deps if LAYER_OF[m] < LAYER_OF[name]]
    assert upward == [], "imports from a higher layer"


def test_no_test_module_imports_another_or_conftest():
    """Shared test code lives in tests/helpers.py: test modules import it, never each other."""
    tests = Path(__file__).resolve().parent
    found = []
    for path in tests.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            )
            found += [(path.name, n) for n in names if n == "conftest" or n.startswith("test_")]
    assert found == []
