"""Every module imports; hftl's own imports point down the layers and form no cycle.

    layer 0  errors, files                    (basics)
    layer 1  modalities, augment, zoo         (what inputs and models are; each modality defines its config section)
    layer 2  config                           (the run config: asks the modality table for their sections, checks)
    layer 3  run                              (one run: data, models, methods, the loop, checkpoints, the record)
    layer 4  evaluation, deploy               (transfer science; export, parity, Hub, card)
    layer 5  recipe, report, evaluate_run, serve, compare, tune, cli

The modalities name ``Config`` only in annotations (``if TYPE_CHECKING``), so config sits above them: the old
config <-> modalities cycle is gone, and a new modality brings its own section without config changing.

A module may import from its own layer and the layers below. Imports under ``if TYPE_CHECKING:`` are annotations
only and are not counted. A package's ``__init__`` importing its own submodules (so that they register themselves,
as ``hftl.modalities`` does) is not a cycle.

    python -m pytest -q tests/test_layers.py          # the check
    python tests/test_layers.py                       # also prints the numbers: modules per layer, hidden imports
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import hftl

ROOT = Path(hftl.__file__).resolve().parent
LAYERS = {
    "hftl": 0, "hftl.errors": 0, "hftl.files": 0,
    "hftl.modalities": 1, "hftl.augment": 1, "hftl.zoo": 1,
    "hftl.config": 2,
    "hftl.run": 3,
    "hftl.evaluation": 4, "hftl.deploy": 4,
    "hftl.recipe": 5, "hftl.report": 5, "hftl.evaluate_run": 5, "hftl.serve": 5, "hftl.compare": 5, "hftl.tune": 5,
    "hftl.cli": 5,
}  # fmt: skip


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise KeyError(f"{module} belongs to no layer: add its package to LAYERS in tests/test_layers.py")


def all_modules() -> list[str]:
    return ["hftl", *sorted(m.name for m in pkgutil.walk_packages([str(ROOT)], prefix="hftl."))]


def source_of(module: str) -> Path:
    path = ROOT.joinpath(*module.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def hftl_imports(module: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(module-level imports, imports inside functions) of hftl modules: (imported module, line)."""
    tree = ast.parse(source_of(module).read_text())
    package = module if source_of(module).name == "__init__.py" else module.rpartition(".")[0]
    top: list[tuple[str, int]] = []
    inner: list[tuple[str, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative import
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                # `from hftl.x import y`: y may be a submodule
                names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in child.names]
            for name in names:
                if name == "hftl" or name.startswith("hftl."):
                    (inner if in_function else top).append((name, child.lineno))
            visit(child, nested)

    visit(tree, False)
    return top, inner


def _is_module(name: str) -> bool:
    if not name.startswith("hftl."):
        return False
    path = ROOT.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in all_modules():
        top, _ = hftl_imports(module)
        targets = {name for name, _ in top if name != module}
        if source_of(module).name == "__init__.py":  # a package importing its own children to register them
            targets = {t for t in targets if not t.startswith(module + ".")}
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    return found


def upward_imports() -> list[str]:
    bad = []
    for module in all_modules():
        top, inner = hftl_imports(module)
        for name, line in top + inner:
            if layer_of(name) > layer_of(module):
                bad.append(f"{source_of(module).relative_to(ROOT.parent)}:{line}: {module} (layer {layer_of(module)}) "
                           f"imports {name} (layer {layer_of(name)})")  # fmt: skip
    return bad


@pytest.mark.parametrize("module", all_modules())
def test_every_module_imports(module):
    importlib.import_module(module)


def test_every_module_has_a_layer():
    for module in all_modules():
        layer_of(module)


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_upward_import():
    assert upward_imports() == []


if __name__ == "__main__":
    modules = all_modules()
    root = [m for m in modules if m.count(".") == 1 and source_of(m).name != "__init__.py"]
    hidden = [(m, n, line) for m in modules for n, line in hftl_imports(m)[1]]
    print(f"modules: {len(modules)}; root modules (hftl/*.py besides __init__): {len(root)}: {', '.join(root)}")
    print(f"hftl imports inside functions: {len(hidden)}")
    for layer in range(6):
        print(f"layer {layer}: {sorted({k for k, v in LAYERS.items() if v == layer})}")
    print("cycles:", cycles(import_graph()) or "none")
    print("upward imports:", *(upward_imports() or ["none"]), sep="\n  ")
