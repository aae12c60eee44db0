"""The structure the design states: no import cycles anywhere in the two packages (the layers are import-linter's),
and a docstring on every class that is not private."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), over direct imports, lazy ones included."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
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

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(grimp.build_graph("pipeline", "collectors")) == []


def test_the_check_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y"]]


def _classes_without_docstring(source: str, path: str) -> list[str]:
    """Classes whose name does not start with ``_``, at any depth (private modules included: their classes are
    the package's own vocabulary), that have no docstring."""
    tree = ast.parse(source)
    return [
        f"{path}:{node.lineno} {node.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and ast.get_docstring(node) is None
    ]


def test_every_class_says_what_it_is_for() -> None:
    missing = []
    for package in ("pipeline", "collectors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            missing += _classes_without_docstring(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert missing == []


def test_the_docstring_check_finds_a_bare_class() -> None:
    source = 'class Told:\n    """For this."""\n\n\nclass Bare:\n    x: int\n\n\nclass _Private:\n    pass\n'
    assert _classes_without_docstring(source, "m.py") == ["m.py:5 Bare"]
