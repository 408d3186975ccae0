"""The package's shape stays as DESIGN.md draws it: no import cycles, one job per module, small modules.

Imports are read from the source (module level and deferred imports inside functions alike), so a deferred import
that goes from a lower module back to a higher one counts as the cycle it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "micmatch"
MAX_LINES = 520  # "about 500": a module may pass 500 by a docstring paragraph, not by a second job


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Names of micmatch modules that ``name`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # "from micmatch import audio" imports the submodule micmatch.audio, not the package's __init__.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    # Compiled extensions (micmatch._logpower from _logpower.c) are modules too, with no imports of their own.
    extensions = {_module_name(p) for p in PKG.rglob("*.c")}
    known = set(mods) | extensions
    graph = {name: _imports(name, path, known) for name, path in mods.items()}
    graph.update({name: set() for name in extensions})
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_import_graph_has_no_cycles():
    assert _cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("upper", ["micmatch.cli", "micmatch.bench"])
def test_only_the_command_line_imports_the_upper_layers(upper):
    """cli is the top; bench sits below it; nothing in the library reaches up into either."""
    allowed = {"micmatch.cli": ("micmatch.cli", "micmatch.__main__"),
               "micmatch.bench": ("micmatch.bench", "micmatch.cli")}[upper]
    offenders = [f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
                 if _is_under(t, upper) and not any(_is_under(m, a) for a in allowed)]
    assert offenders == []


def test_the_numpy_core_does_not_import_the_torch_package():
    """Modules outside learn/ (and the commands and benchmark that use it) reach learn/ only lazily, if at all."""
    offenders = []
    for name, path in _modules().items():
        if any(_is_under(name, p) for p in ("micmatch.learn", "micmatch.cli", "micmatch.bench")):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: a deferred import inside a function is how the core offers torch
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if mod and (mod.split(".")[0] == "torch" or _is_under(mod, "micmatch.learn")):
                    offenders.append(f"{name}: {mod}")
    assert offenders == []


def test_modules_are_small_and_say_their_job():
    long = {}
    undocumented = []
    for name, path in _modules().items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            long[name] = n
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        if name.rsplit(".", 1)[-1] != "__main__" and not (doc and doc.strip().splitlines()[0].strip()):
            undocumented.append(name)
    assert long == {}
    assert undocumented == []


#: Modules everything else builds on, bottom first: each may import only modules listed before it.
FOUNDATION = ["micmatch.errors", "micmatch.validate", "micmatch.jsoncheck", "micmatch.outputs", "micmatch.audio",
              "micmatch.spectral", "micmatch.response", "micmatch.render"]


@pytest.mark.parametrize("position", range(len(FOUNDATION)))
def test_foundation_modules_import_nothing_above_them(position):
    name = FOUNDATION[position]
    above = import_graph()[name] - set(FOUNDATION[:position]) - {"micmatch._logpower"}
    assert above == set(), f"{name} imports {sorted(above)}"


def test_outputs_imports_only_errors():
    assert import_graph()["micmatch.outputs"] == {"micmatch.errors"}
