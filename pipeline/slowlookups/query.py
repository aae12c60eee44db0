"""Reading slow lookups from the Postgres sink (``monitoring.get_slow_lookup_groups``, sql/functions/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from opentelemetry.instrumentation.utils import suppress_instrumentation
from psycopg.rows import dict_row

from pipeline.durations import parse_window
from pipeline.slowlookups.model import LookupGroup


def parse_since(text: str) -> timedelta:
    """``--since``: ``90s``, ``30m``, ``1h30m``, ``2d``, ``1w`` as a timedelta."""
    return parse_window("--since", text)


def _plan_node(plan: Any) -> dict[str, Any] | None:
    # EXPLAIN (FORMAT JSON) returns a one-element array of {"Plan": {...}, ...}.
    if isinstance(plan, list) and plan and isinstance(plan[0], dict):
        plan = plan[0]
    if isinstance(plan, dict) and isinstance(plan.get("Plan"), dict):
        return plan["Plan"]
    return None


def _group(row: dict[str, Any]) -> LookupGroup:
    return LookupGroup(
        fingerprint=row["fingerprint"],
        operation=row["operation"] or "",
        statement=row["statement"] or "",
        calls=int(row["calls"]),
        p50_ms=float(row["p50_ms"]),
        p95_ms=float(row["p95_ms"]),
        max_ms=float(row["max_ms"]),
        pool_wait_ms=float(row["pool_wait_ms"] or 0),
        connect_ms=float(row["connect_ms"] or 0),
        execute_ms=float(row["execute_ms"] or 0),
        connects=int(row["connects"] or 0),
        idle_connects=int(row["idle_connects"] or 0),
        pool=row["pool"] or "",
        pool_max_size=row["pool_max_size"],
        example_trace_ids=tuple(row["example_trace_ids"] or ()),
        plan=_plan_node(row["plan"]),
        plan_analyzed=bool(row["plan_analyzed"]),
    )


def fetch_groups(
    dsn: str,
    since: timedelta,
    *,
    until: datetime | None = None,
    min_duration_ms: float = 0.0,
    limit: int = 50,
) -> tuple[datetime, datetime, list[LookupGroup]]:
    """The window read and its groups, slowest-and-most-frequent first."""
    end = until or datetime.now(UTC)
    start = end - since
    # Sieve reading its own sink is not application traffic: keep it out of the traces.
    with suppress_instrumentation(), psycopg.connect(dsn, row_factory=dict_row, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT * FROM monitoring.get_slow_lookup_groups(%s, %s, %s, %s)",
            (start, end, min_duration_ms, limit),
        ).fetchall()
    return start, end, [_group(r) for r in rows]
