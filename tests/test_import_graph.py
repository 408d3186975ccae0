"""The package's import graph, read from the source (every import, those inside functions included): no cycles, and
the foundation modules import nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "micmatch"

#: Modules everything else builds on, bottom first: each may import only modules listed before it.
FOUNDATION = ["micmatch.errors", "micmatch.validate", "micmatch.jsoncheck", "micmatch.outputs", "micmatch.audio",
              "micmatch.spectral", "micmatch.response", "micmatch.render"]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``name`` imports anywhere in its source. Importing any submodule runs the
    package's ``__init__`` first anyway, so the bare package is not an edge."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(head + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in modules else base)
    return {m for m in out if m in modules and m not in (name, "micmatch")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_core_import_graph_has_no_cycle():
    # The command-line package is checked once its commands are registered in one place (issue 15).
    graph = {name: {d for d in deps if not d.startswith("micmatch.cli")} for name, deps in _graph().items()
             if not name.startswith("micmatch.cli")}
    assert _cycles(graph) == []


@pytest.mark.parametrize("position", range(len(FOUNDATION)))
def test_foundation_modules_import_nothing_above_them(position):
    name = FOUNDATION[position]
    above = _graph()[name] - set(FOUNDATION[:position])
    assert above == set(), f"{name} imports {sorted(above)}"


def test_outputs_imports_only_errors():
    assert _graph()["micmatch.outputs"] == {"micmatch.errors"}
