"""The installed package runs on its runtime dependencies alone.

`make demo` and the Docker image install ``sieve`` without extras, so every module the wheel ships (``pipeline``,
``collectors``) may import only the standard library, itself, and distributions its runtime requirements pull in.
The dev extras (pytest, the dashboard generator's grafana-foundation-sdk, promql-parser, ...) are for tests,
linters and ``dashboards/``, which the wheel does not ship. Checked by reading the imports, in the dev environment
that has everything installed.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SHIPPED = tuple(PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])


def _closure(requirements: list[str]) -> frozenset[str]:
    """Every distribution ``requirements`` pull in, following installed metadata (markers and extras honoured)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    queue = [(Requirement(r), frozenset[str]()) for r in requirements]
    while queue:
        requirement, parent_extras = queue.pop()
        marker = requirement.marker
        if marker and not any(marker.evaluate({"extra": e}) for e in (parent_extras or {""})):
            continue
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (a marker for another platform); nothing of it can be imported either
        queue.extend((Requirement(r), frozenset(requirement.extras)) for r in requires)
    return frozenset(names)


@cache
def runtime_distributions() -> frozenset[str]:
    return _closure(PYPROJECT["project"]["dependencies"])


@cache
def _module_distributions() -> dict[str, list[str]]:
    return {k: [canonicalize_name(d) for d in v] for k, v in metadata.packages_distributions().items()}


def provided_at_runtime(module: str) -> bool:
    """Whether a top-level module is importable with only the runtime dependencies installed."""
    if module in sys.stdlib_module_names or module in SHIPPED or module == "__future__":
        return True
    return any(d in runtime_distributions() for d in _module_distributions().get(module, []))


def _imports(node: ast.AST) -> Iterator[tuple[str, int]]:
    """Top-level module names imported anywhere under ``node`` (function bodies too), except under TYPE_CHECKING."""
    if isinstance(node, ast.Import):
        yield from ((alias.name.split(".")[0], node.lineno) for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        yield node.module.split(".")[0], node.lineno
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        children: list[ast.AST] = list(node.orelse)
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from _imports(child)


def test_every_shipped_module_imports_runtime_dependencies_only() -> None:
    offending = []
    for package in SHIPPED:
        for path in sorted((REPO / package).rglob("*.py")):
            for module, line in _imports(ast.parse(path.read_text(encoding="utf-8"))):
                if not provided_at_runtime(module):
                    offending.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not offending, "imports that only the dev extras or the repository provide:\n" + "\n".join(offending)


@pytest.mark.parametrize(
    ("module", "at_runtime"),
    [
        ("psycopg_pool", True),
        ("grafana_client", True),
        ("pgserver", True),
        ("opentelemetry", True),
        ("yaml", True),
        ("pipeline", True),
        ("json", True),
        ("pytest", False),
        ("hypothesis", False),
        ("grafana_foundation_sdk", False),  # the dashboard generator's, a dev extra
        ("promql_parser", False),
        ("dashboards", False),  # the generator lives in the repository, not in the wheel
        ("tests", False),
    ],
)
def test_what_counts_as_a_runtime_dependency(module: str, at_runtime: bool) -> None:
    assert provided_at_runtime(module) is at_runtime


def test_the_dev_extras_are_not_runtime_dependencies() -> None:
    dev = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert not dev & runtime_distributions(), "a dev tool became a runtime dependency"
