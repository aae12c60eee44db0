"""From a group of slow lookups to what to do about them: ``diagnose(group) -> list[Finding]``.

The group's time is split three ways: waiting for a pooled connection, opening one, executing. The diagnosis
follows the time, not the slowest single call: the old system chased a 0.544 s outlier of a query whose median
never changed, while the real 0.35 s sat in connection set-up after idle (docs/background.md section 3).
Each finding explains one share of the time, and findings are ordered by that share.

- pool wait share >= ``POOL_SATURATION_SHARE``: ``pool_saturation``;
- connect share dominant: ``connect_after_idle`` when most new connections came after the pool had been idle,
  else ``connect_setup``;
- a plan showing an index pattern (``plan.sorts_over_scans``) on a table large enough to matter:
  ``missing_index`` with the index that serves the lookup (equality columns, then ORDER BY, then one range);
- execution dominant and no such pattern: ``slow_execution`` (no plan captured, or a plan with no index story).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pglast.stream import maybe_double_quote_name

from pipeline.slowlookups.model import DiagnosedGroup, Finding, LookupGroup, Report
from pipeline.slowlookups.plan import IndexPattern, is_analyzed, key_nodes, plan_root, sorts_over_scans
from pipeline.sqlshape import SelectShape, SortColumn, TableUse, is_read_only_select, select_shape

# Half of the slow calls' time spent queueing for a connection: the pool, not the database, sets the latency.
POOL_SATURATION_SHARE = 0.5
# With three parts, the largest one holding at least 40% is where the time goes; below that no single cause
# explains the latency and naming one would mislead.
DOMINANT_SHARE = 0.4
# "Most" new connections came after idle: more than half of them.
IDLE_CONNECT_MAJORITY = 0.5
# Below about a thousand rows read, a scan plus sort costs well under a millisecond: an index would not be
# worth its cost on every write.
MIN_ROWS_TOUCHED = 1000.0
# Plain EXPLAIN does not say how many rows a Filter discarded; a scan costing 1000 units (about 1000 pages,
# 8 MB) is no longer cheap.
MIN_SCAN_COST = 1000.0
# Postgres truncates identifiers to NAMEDATALEN - 1 bytes.
MAX_IDENTIFIER_BYTES = 63


def diagnose(group: LookupGroup) -> list[Finding]:
    """Findings about one group, the one explaining the largest share of its time first."""
    shares = {
        "pool_wait": group.share(group.pool_wait_ms),
        "connect": group.share(group.connect_ms),
        "execute": group.share(group.execute_ms),
    }
    dominant = max(shares, key=lambda k: shares[k])
    dominant = dominant if shares[dominant] >= DOMINANT_SHARE else ""
    ranked: list[tuple[float, Finding]] = []
    if shares["pool_wait"] >= POOL_SATURATION_SHARE:
        ranked.append((shares["pool_wait"], _pool_saturation(group, shares)))
    if dominant == "connect":
        ranked.append((shares["connect"], _connect(group, shares)))
    index_findings = _missing_indexes(group, shares)
    ranked.extend((shares["execute"], f) for f in index_findings)
    if dominant == "execute" and not index_findings:
        ranked.append((shares["execute"], _slow_execution(group, shares)))
    ranked.sort(key=lambda pair: -pair[0])  # stable: equal shares keep the order above
    return [f for _, f in ranked]


def diagnose_all(groups: Iterable[LookupGroup], since: datetime, until: datetime) -> Report:
    """A report of the window: every group with its findings, in the order given."""
    return Report(since, until, tuple(DiagnosedGroup(g, tuple(diagnose(g))) for g in groups))


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _shares_evidence(shares: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in shares.items()}


def _pool_saturation(group: LookupGroup, shares: dict[str, float]) -> Finding:
    pool = f"pool '{group.pool}'" if group.pool else "the connection pool"
    size = f" (max_size {group.pool_max_size})" if group.pool_max_size else ""
    return Finding(
        kind="pool_saturation",
        summary=f"{pool} saturated: {_pct(shares['pool_wait'])} of the slow calls' time waited for a connection{size}",
        detail=(
            f"{group.pool_wait_ms:.0f} ms of {group.total_ms:.0f} ms over {group.calls} slow calls were spent queueing "
            "for a connection: more calls wanted one at once than the pool holds. Every call holds its connection "
            "for its whole execution, so fix slow executions first; then raise max_size if the server has room "
            "(max_connections), or limit concurrency before the pool."
        ),
        evidence={"time_share": _shares_evidence(shares), "pool": group.pool, "pool_max_size": group.pool_max_size},
    )


def _connect(group: LookupGroup, shares: dict[str, float]) -> Finding:
    per_connect = f", {group.connect_ms / group.connects:.0f} ms each" if group.connects else ""
    evidence: dict[str, Any] = {
        "time_share": _shares_evidence(shares),
        "connects": group.connects,
        "idle_connects": group.idle_connects,
        "connect_ms": round(group.connect_ms, 3),
    }
    figures = f"{group.connects} new connections{per_connect}"
    if group.connects and group.idle_connects / group.connects > IDLE_CONNECT_MAJORITY:
        return Finding(
            kind="connect_after_idle",
            summary=(
                f"connection set-up after idle: {_pct(shares['connect'])} of the slow calls' time opened "
                f"connections, {group.idle_connects} of {group.connects} after the pool had been idle"
            ),
            detail=(
                f"{figures}. The pool closes connections idle longer than its idle lifetime, so the first lookup "
                "after a quiet gap pays the connection set-up (TCP, TLS, authentication) before its query runs. "
                "The query is not the problem; an index will not help. Keep min_size connections warm and raise "
                "the idle lifetime above the usual gap between bursts (asyncpg: max_inactive_connection_lifetime; "
                "psycopg_pool: max_idle)."
            ),
            evidence=evidence,
        )
    return Finding(
        kind="connect_setup",
        summary=f"connection set-up: {_pct(shares['connect'])} of the slow calls' time opened new connections",
        detail=(
            f"{figures}, mostly while the pool was busy rather than after idle: the pool opens connections under "
            "load (min_size below steady concurrency, or connections recycled by max_queries / max_lifetime), or "
            "each connect is slow (DNS, TLS, authentication, a distant server). Raise min_size to the steady "
            "concurrency, recycle less often, or put a pooler (PgBouncer) close to the application."
        ),
        evidence=evidence,
    )


def _slow_execution(group: LookupGroup, shares: dict[str, float]) -> Finding:
    evidence: dict[str, Any] = {"time_share": _shares_evidence(shares)}
    if group.plan is None and group.statement and not is_read_only_select(group.statement):
        # Sieve never EXPLAINs a write (EXPLAIN ANALYZE would run it); say what slows writes instead.
        summary = f"execution: {_pct(shares['execute'])} of the slow calls' time ran this write"
        detail = (
            f"{group.execute_ms:.0f} ms of {group.total_ms:.0f} ms executed. Writes are not explained. What slows "
            "a write is usually waiting on a row lock another transaction holds (pg_stat_activity.wait_event), "
            "maintaining many indexes on every insert, or commit latency (synchronous_commit, WAL on slow "
            "storage); EXPLAIN (ANALYZE) it by hand inside a transaction you roll back."
        )
    elif group.plan is None:
        summary = f"execution: {_pct(shares['execute'])} of the slow calls' time ran the statement; no plan captured"
        detail = (
            f"{group.execute_ms:.0f} ms of {group.total_ms:.0f} ms executed. Without a plan Sieve cannot tell why: "
            "enable plan capture (SIEVE_STORAGE__EXPLAIN__ENABLED=true; plans are taken off the hot path for slow "
            "reads), or run EXPLAIN (ANALYZE, BUFFERS) on the statement with real parameter values."
        )
    else:
        nodes = key_nodes(group.plan)
        evidence["plan_key_nodes"] = [n.to_dict() for n in nodes]
        summary = f"execution: {_pct(shares['execute'])} of the slow calls' time ran the statement"
        small = [p for p in sorts_over_scans(group.plan) if not _material(p)]
        if small:
            # The plan was taken with one call's parameter values; a small group there says little about the rest.
            why = (
                f"the captured plan scans and sorts only {small[0].rows_sorted:,.0f} rows of "
                f"{small[0].scan.relation}, too few to need an index; if other parameter values select far more "
                "rows, EXPLAIN the statement with those"
            )
        else:
            why = "the plan shows no scan-and-sort an index would remove"
        detail = (
            f"{group.execute_ms:.0f} ms of {group.total_ms:.0f} ms executed, and {why}. Compare p50 with max: a few "
            "outliers point at locks, I/O or checkpoints rather than the plan; otherwise look at the plan's key "
            "nodes (rows, joins)."
        )
    return Finding(kind="slow_execution", summary=summary, detail=detail, evidence=evidence)


def _material(p: IndexPattern) -> bool:
    touched = p.rows_sorted + (p.rows_removed or 0.0)
    return touched >= MIN_ROWS_TOUCHED or p.scan.total_cost >= MIN_SCAN_COST


def _missing_indexes(group: LookupGroup, shares: dict[str, float]) -> list[Finding]:
    if group.plan is None:
        return []
    patterns = sorted(
        (p for p in sorts_over_scans(group.plan) if _material(p)),
        key=lambda p: -(p.rows_sorted + (p.rows_removed or 0.0)),
    )
    shape = select_shape(group.statement)
    findings: list[Finding] = []
    seen: set[str] = set()
    for p in patterns:
        table = shape.table(p.scan.relation or "", p.scan.alias, p.scan.schema) if shape else None
        name = table.name if table else (f"{p.scan.schema}.{p.scan.relation}" if p.scan.schema else p.scan.relation)
        if not name or name in seen:
            continue
        seen.add(name)
        keys = _index_keys(shape, table, p) if shape and table else ()
        findings.append(_index_finding(group, shares, p, name, keys))
    return findings


def _index_keys(shape: SelectShape, table: TableUse, p: IndexPattern) -> tuple[tuple[str, str], ...]:
    """(column, index key) pairs: equality columns, then the ORDER BY (when all on this table), then one range."""
    plan_text = " ".join(filter(None, (p.scan.filter, p.scan.index_cond)))
    equality = list(table.equality) + [c for c in shape.unresolved_equality if _mentions(plan_text, c)]
    ranges = list(table.ranges) + [c for c in shape.unresolved_ranges if _mentions(plan_text, c)]
    sort_text = " ".join(p.sort.sort_key) if p.sort else ""
    order = [s for s in shape.order_by if s.table == table.name or (s.table is None and _mentions(sort_text, s.column))]
    if len(order) != len(shape.order_by):
        order = []  # part of the ORDER BY is on another table: an index here cannot return rows in that order
    keys = [(c, _quote(c)) for c in dict.fromkeys(equality)]
    used = set(equality)
    for s in order:
        if s.column not in used:
            keys.append((s.column, _sort_key(s)))
            used.add(s.column)
    rest = [c for c in ranges if c not in used]
    if rest:
        keys.append((rest[0], _quote(rest[0])))
    return tuple(keys)


def _mentions(text: str, column: str) -> bool:
    return re.search(rf'(?<![\w$"]){re.escape(column)}(?![\w$"])', text) is not None


def _sort_key(s: SortColumn) -> str:
    key = _quote(s.column) + (" DESC" if s.descending else "")
    if s.explicit_nulls:
        key += " NULLS FIRST" if s.nulls_first else " NULLS LAST"
    return key


def _quote(name: str) -> str:
    return str(maybe_double_quote_name(name))


def index_name(table: str, columns: Iterable[str]) -> str:
    """Postgres' own default, ``<table>_<col>_<col>_idx``, cut to 63 bytes with a hash to keep it unique."""
    base = "_".join([table.rsplit(".", 1)[-1], *(c for c in columns)])
    name = f"{base}_idx"
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.blake2b(base.encode(), digest_size=4).hexdigest()
    room = MAX_IDENTIFIER_BYTES - len(f"_{digest}_idx")
    head = base.encode()[:room].decode(errors="ignore").rstrip("_")
    return f"{head}_{digest}_idx"


def create_index_statement(table: str, keys: tuple[str, ...], bare_columns: tuple[str, ...]) -> str:
    """``CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON <table> (<keys>);`` with identifiers quoted as needed."""
    qualified = ".".join(_quote(part) for part in table.split(".", 1))
    name = _quote(index_name(table, bare_columns))
    return f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {qualified} ({', '.join(keys)});"


def _index_finding(
    group: LookupGroup, shares: dict[str, float], p: IndexPattern, table: str, pairs: tuple[tuple[str, str], ...]
) -> Finding:
    scan, sort = p.scan, p.sort
    rows = "rows" if is_analyzed(group.plan or {}) else "estimated rows"
    removed = f", discarding {p.rows_removed:,.0f} through its Filter" if p.rows_removed else ""
    if p.pattern == "seq_scan_sort":
        how = f"{scan.label} reads the whole table{removed}, then a {sort.node_type if sort else 'Sort'} orders "
        how += f"{p.rows_sorted:,.0f} {rows} to return the first few"
    elif p.pattern == "index_scan_sort":
        how = f"{scan.label} (index {scan.index_name}) finds {p.rows_sorted:,.0f} {rows} by the filter, but the "
        how += "index lacks the sort column, so a Sort re-orders all of them"
    else:
        how = f"{scan.label} reads the whole table to keep {p.rows_sorted:,.0f} {rows}{removed}"
    evidence: dict[str, Any] = {
        "time_share": _shares_evidence(shares),
        "pattern": p.pattern,
        "scan": scan.to_dict(),
        "sort": sort.to_dict() if sort else None,
        "rows_sorted": p.rows_sorted,
        "rows_removed": p.rows_removed,
        "plan_analyzed": is_analyzed(group.plan or {}),
        "plan_total_cost": float(plan_root(group.plan or {}).get("Total Cost") or 0.0),
    }
    if not pairs:
        return Finding(
            kind="missing_index",
            summary=f"{table}: {how}",
            detail=f"The statement could not be read for its filter and sort columns; look at the plan. {how}.",
            table=table,
            evidence=evidence,
        )
    bare, keys = tuple(c for c, _ in pairs), tuple(k for _, k in pairs)
    return Finding(
        kind="missing_index",
        summary=f"missing index on {table} ({', '.join(keys)})",
        detail=(
            f"{how}; execution is {_pct(shares['execute'])} of the slow calls' time. An index on "
            f"({', '.join(keys)}) finds the rows by the equality columns and returns them already in order, so a "
            "LIMIT stops after N rows. CREATE INDEX CONCURRENTLY does not block writes but cannot run inside a "
            "transaction block."
        ),
        table=table,
        columns=keys,
        create_index=create_index_statement(table, keys, bare),
        evidence=evidence,
    )
