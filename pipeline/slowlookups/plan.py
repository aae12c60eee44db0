"""An EXPLAIN (FORMAT JSON) plan as a few flat key nodes, and the two shapes that say "an index is missing".

``flatten(plan)`` walks the plan tree depth first into ``PlanNode`` values; ``key_nodes`` keeps the nodes a
person reads to see where a lookup's time goes (limits, sorts, joins, scans). Plain EXPLAIN and EXPLAIN ANALYZE
both work: actual rows and times are None when the plan was not analyzed. Actual rows are per loop in Postgres'
output; here they are multiplied by the loops, so a parallel scan's figure is the rows of all its workers.

``sorts_over_scans(plan)`` finds a Sort (or Incremental Sort, top-N included) whose input comes from one scan of
one relation, and names the pattern:

- ``seq_scan_sort``: a Seq Scan with a Filter feeds the Sort. Every row of the table is read to find the few
  that match, then all of those are sorted to return the first N.
- ``index_scan_sort``: an Index, Index Only or Bitmap Heap Scan serves the filter, but the index lacks the sort
  column, so every matching row is fetched and re-sorted.

Both mean one composite index (equality columns, then the sort columns) would return the rows already in order.
``seq_scan_filter`` is the same without a Sort: a Seq Scan discards most of a table through a Filter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Pattern = Literal["seq_scan_sort", "index_scan_sort", "seq_scan_filter"]

_SORTS = frozenset({"Sort", "Incremental Sort"})
_INDEX_SCANS = frozenset({"Index Scan", "Index Only Scan", "Bitmap Heap Scan"})
_JOINS = frozenset({"Nested Loop", "Hash Join", "Merge Join"})
# Nodes that pass rows through unchanged in order or content: a Sort's input is still "that scan" beneath them.
_PASS_THROUGH = frozenset({"Gather", "Gather Merge", "Materialize", "Memoize", "Result", "Unique"})


@dataclass(frozen=True)
class PlanNode:
    """One node of a plan, without its children."""

    node_type: str  # "Seq Scan", "Sort", ...; a parallel scan is ``parallel=True``
    depth: int  # 0 for the top node
    relation: str | None = None
    schema: str | None = None  # only in EXPLAIN (VERBOSE) output
    alias: str | None = None
    index_name: str | None = None  # for a Bitmap Heap Scan: the index(es) of its Bitmap Index Scans
    filter: str | None = None
    index_cond: str | None = None  # Index Cond, or a Bitmap Heap Scan's Recheck Cond
    sort_key: tuple[str, ...] = ()
    presorted_key: tuple[str, ...] = ()  # Incremental Sort: the prefix the input already has
    sort_method: str | None = None  # ANALYZE only: "top-N heapsort", "quicksort", "external merge"
    parallel: bool = False
    plan_rows: float = 0.0
    actual_rows: float | None = None  # all loops
    rows_removed_by_filter: float | None = None  # all loops
    total_cost: float = 0.0
    actual_total_ms: float | None = None  # per loop, as Postgres reports it

    @property
    def is_scan(self) -> bool:
        return self.relation is not None

    @property
    def rows(self) -> float:
        """Actual rows when analyzed, else the planner's estimate."""
        return self.actual_rows if self.actual_rows is not None else self.plan_rows

    @property
    def label(self) -> str:
        """``Seq Scan on public.messages m``: how EXPLAIN's text format names the node."""
        name = ("Parallel " if self.parallel else "") + self.node_type
        if self.index_name and self.node_type in ("Index Scan", "Index Only Scan"):
            name += f" using {self.index_name}"
        if self.relation:
            rel = f"{self.schema}.{self.relation}" if self.schema else self.relation
            name += f" on {rel}" + (f" {self.alias}" if self.alias and self.alias != self.relation else "")
        return name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the tuples as lists."""
        out = asdict(self)
        out["sort_key"] = list(self.sort_key)
        out["presorted_key"] = list(self.presorted_key)
        return out


@dataclass(frozen=True)
class IndexPattern:
    """A plan shape that a composite index would remove."""

    pattern: Pattern
    scan: PlanNode
    sort: PlanNode | None  # None for ``seq_scan_filter``
    rows_sorted: float  # rows the scan fed to the sort (actual when analyzed)
    rows_removed: float | None  # rows the scan's Filter discarded (ANALYZE only)


def plan_root(plan: Mapping[str, Any] | list[Any]) -> Mapping[str, Any]:
    """The "Plan" node, from either the whole EXPLAIN output (``[{"Plan": ...}]``) or the node itself."""
    if isinstance(plan, list):
        plan = plan[0] if plan else {}
    node = plan.get("Plan") if isinstance(plan, Mapping) else None
    return node if isinstance(node, Mapping) else plan


def is_analyzed(plan: Mapping[str, Any] | list[Any]) -> bool:
    return "Actual Loops" in plan_root(plan)


def flatten(plan: Mapping[str, Any] | list[Any]) -> tuple[PlanNode, ...]:
    """Every node of the plan, depth first, parents before children."""
    return tuple(node for node, _raw in _walk(plan_root(plan), 0))


def key_nodes(plan: Mapping[str, Any] | list[Any]) -> tuple[PlanNode, ...]:
    """The nodes that say where time goes: Limit, sorts, joins, aggregates and scans of relations."""
    return tuple(n for n in flatten(plan) if n.is_scan or n.node_type in _SORTS | _JOINS | {"Limit", "Aggregate"})


def sorts_over_scans(plan: Mapping[str, Any] | list[Any]) -> tuple[IndexPattern, ...]:
    """Sorts fed by a single filtered scan, and filtered Seq Scans with no Sort above: see the module docstring."""
    found: list[IndexPattern] = []
    sorted_scans: set[int] = set()
    for node, raw in _walk(plan_root(plan), 0):
        if node.node_type not in _SORTS:
            continue
        below = _single_scan(raw, node.depth)
        if below is None:
            continue
        scan, scan_raw = below
        if not _sort_names_relation(node.sort_key, scan):
            continue
        if scan.node_type == "Seq Scan" and scan.filter:
            pattern: Pattern = "seq_scan_sort"
        elif scan.node_type in _INDEX_SCANS and scan.index_cond:
            pattern = "index_scan_sort"
        else:
            continue
        sorted_scans.add(id(scan_raw))
        found.append(IndexPattern(pattern, scan, node, scan.rows, scan.rows_removed_by_filter))
    for node, raw in _walk(plan_root(plan), 0):
        if node.node_type == "Seq Scan" and node.filter and id(raw) not in sorted_scans:
            found.append(IndexPattern("seq_scan_filter", node, None, node.rows, node.rows_removed_by_filter))
    return tuple(found)


def _walk(raw: Mapping[str, Any], depth: int) -> Iterator[tuple[PlanNode, Mapping[str, Any]]]:
    yield _node(raw, depth), raw
    for child in raw.get("Plans") or ():
        yield from _walk(child, depth + 1)


def _node(raw: Mapping[str, Any], depth: int) -> PlanNode:
    loops = float(raw.get("Actual Loops") or 1)
    actual = raw.get("Actual Rows")
    removed = raw.get("Rows Removed by Filter")
    index_name = raw.get("Index Name")
    if index_name is None and raw.get("Node Type") == "Bitmap Heap Scan":
        index_name = ", ".join(_bitmap_indexes(raw)) or None
    return PlanNode(
        node_type=str(raw.get("Node Type", "?")),
        depth=depth,
        relation=raw.get("Relation Name"),
        schema=raw.get("Schema"),
        alias=raw.get("Alias"),
        index_name=index_name,
        filter=raw.get("Filter"),
        index_cond=raw.get("Index Cond") or raw.get("Recheck Cond"),
        sort_key=tuple(raw.get("Sort Key") or ()),
        presorted_key=tuple(raw.get("Presorted Key") or ()),
        sort_method=raw.get("Sort Method"),
        parallel=bool(raw.get("Parallel Aware", False)),
        plan_rows=float(raw.get("Plan Rows") or 0.0),
        actual_rows=None if actual is None else float(actual) * loops,
        rows_removed_by_filter=None if removed is None else float(removed) * loops,
        total_cost=float(raw.get("Total Cost") or 0.0),
        actual_total_ms=None if raw.get("Actual Total Time") is None else float(raw["Actual Total Time"]),
    )


def _bitmap_indexes(raw: Mapping[str, Any]) -> list[str]:
    """The indexes under a Bitmap Heap Scan (several under a BitmapAnd / BitmapOr)."""
    names = [str(raw["Index Name"])] if raw.get("Index Name") else []
    for child in raw.get("Plans") or ():
        names.extend(_bitmap_indexes(child))
    return names


def _single_scan(raw: Mapping[str, Any], depth: int) -> tuple[PlanNode, Mapping[str, Any]] | None:
    """The one relation scan that feeds this node through pass-through nodes only, else None (joins, unions)."""
    children: Sequence[Any] = raw.get("Plans") or ()
    while len(children) == 1:
        child = children[0]
        depth += 1
        node = _node(child, depth)
        if node.is_scan:
            return node, child
        if node.node_type not in _PASS_THROUGH:
            return None
        children = child.get("Plans") or ()
    return None


def _sort_names_relation(sort_key: tuple[str, ...], scan: PlanNode) -> bool:
    """Every sort key is a column of the scanned relation: unqualified, or qualified by its alias or name."""
    if not sort_key:
        return False
    names = {scan.alias, scan.relation}
    for key in sort_key:
        expr = key.split(" ", 1)[0]
        if "(" in expr:
            return False  # an expression such as lower(name): not a plain column
        qualifier = expr.rsplit(".", 1)[0] if "." in expr else None
        if qualifier is not None and qualifier.strip('"') not in names:
            return False
    return True
