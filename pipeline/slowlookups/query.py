"""Reading slow lookups from the Postgres sink (sql/functions/50_slow_lookups.sql): the slow groups by fingerprint
and plan, the plan changes of the window and the N+1 groups, on one connection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from opentelemetry.instrumentation.utils import suppress_instrumentation
from psycopg.rows import dict_row

from pipeline.durations import parse_window
from pipeline.slowlookups.model import LookupGroup, NPlusOne, PlanChange

# Sentry's N+1 DB span detector flags 5 repetitions (performance.issues.n_plus_one_db.count_threshold). It also
# asks for 50 ms of them in total; Sieve does not by default: an N+1 costs round trips, ~0.5 ms each on the
# embedded server's Unix socket and 1-50 ms across a network, so the count is what survives moving the database,
# and the report ranks by the time the loop takes where it runs now.
N_PLUS_ONE_MIN_COUNT = 5
N_PLUS_ONE_MIN_TOTAL_MS = 0.0
# Without the sampler's marks the N+1 search groups every statement span of its window (about 1.7 s for 1M spans
# here): it looks at the last 15 minutes of the report's window at most, which keeps the whole report under a
# second for a service ten times busier than the demo. An N+1 is a property of a code path, so a recurring loop
# shows in any recent quarter of an hour; with the sampler's marks the whole window is read.
N_PLUS_ONE_SCAN_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class NPlusOneOptions:
    """Which N+1 groups the report shows: the least repeats and total time, and how many."""

    min_count: int = N_PLUS_ONE_MIN_COUNT
    min_total_ms: float = N_PLUS_ONE_MIN_TOTAL_MS
    limit: int = 20
    enabled: bool = True


@dataclass(frozen=True)
class Window:
    """Everything the report reads for one window."""

    since: datetime
    until: datetime
    groups: list[LookupGroup]
    plan_changes: list[PlanChange]
    n_plus_one: list[NPlusOne]
    n_plus_one_source: str  # "scan": found in the stored spans; "marked": read from the sampler's marks; "off"
    n_plus_one_since: datetime | None = None  # the N+1 search's own start (a scan looks at the last hour at most)


def parse_since(text: str) -> timedelta:
    """``--since``: ``90s``, ``30m``, ``1h30m``, ``2d``, ``1w`` as a timedelta."""
    return parse_window("--since", text)


def _plan_node(plan: Any) -> dict[str, Any] | None:
    # EXPLAIN (FORMAT JSON) returns a one-element array of {"Plan": {...}, ...}.
    if isinstance(plan, list) and plan and isinstance(plan[0], dict):
        plan = plan[0]
    node = plan.get("Plan") if isinstance(plan, dict) else None
    return node if isinstance(node, dict) else None


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
        plan_hash=row["plan_hash"],
        plan_captured_at=row["plan_captured_at"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
    )


def _change(row: dict[str, Any]) -> PlanChange:
    def ms(key: str) -> float | None:
        return float(row[key]) if row[key] is not None else None

    return PlanChange(
        fingerprint=row["fingerprint"],
        operation=row["operation"] or "",
        from_plan_hash=row["from_plan_hash"],
        to_plan_hash=row["to_plan_hash"],
        changed_at=row["changed_at"],
        before_calls=int(row["before_calls"]),
        before_estimated_calls=float(row["before_estimated_calls"]),
        before_p50_ms=ms("before_p50_ms"),
        before_p95_ms=ms("before_p95_ms"),
        after_calls=int(row["after_calls"]),
        after_estimated_calls=float(row["after_estimated_calls"]),
        after_p50_ms=ms("after_p50_ms"),
        after_p95_ms=ms("after_p95_ms"),
    )


_EQUALS_FIRST_PARAM = re.compile(r'((?:"[^"]+"|\b[A-Za-z_][\w$]*)(?:\.(?:"[^"]+"|[A-Za-z_][\w$]*))?)\s*=\s*\$1(?!\d)')


def batched_statement(statement: str) -> str | None:
    """The loop's statement turned into one for all the items: ``col = $1`` becomes ``col = ANY($1)``.

    Only when ``$1`` is compared for equality exactly once; otherwise None (the fix is then said in words)."""
    matches = _EQUALS_FIRST_PARAM.findall(statement)
    if len(matches) != 1 or statement.count("$1") - len(re.findall(r"\$1\d", statement)) != 1:
        return None
    return _EQUALS_FIRST_PARAM.sub(lambda m: f"{m.group(1)} = ANY($1)", statement, count=1)


def _n_plus_one(row: dict[str, Any]) -> NPlusOne:
    statement = row["statement"] or ""
    batched = batched_statement(statement) if statement else None
    parent = row["parent_name"]
    if batched:
        fix = f"load all of them in one query under {parent}: pass the ids as an array ($1 = ANY) or join"
    else:
        fix = f"load all of them in one query under {parent}: a join, or a WHERE ... = ANY($1) on the ids"
    return NPlusOne(
        parent=parent,
        fingerprint=row["fingerprint"],
        operation=row["operation"] or "",
        statement=statement,
        occurrences=int(row["occurrences"]),
        traces=int(row["traces"]),
        executions_p50=float(row["executions_p50"]),
        executions_max=int(row["executions_max"]),
        total_ms_p50=float(row["total_ms_p50"]),
        total_ms_max=float(row["total_ms_max"]),
        total_ms_sum=float(row["total_ms_sum"]),
        marked=bool(row["marked"]),
        example_trace_ids=tuple(row["example_trace_ids"] or ()),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        fix=fix,
        batched_statement=batched,
    )


def fetch_window(
    dsn: str,
    since: timedelta,
    *,
    until: datetime | None = None,
    min_duration_ms: float = 0.0,
    limit: int = 50,
    n_plus_one: NPlusOneOptions | None = None,
) -> Window:
    """The window's slow groups (slowest-and-most-frequent first), plan changes and N+1 groups.

    N+1 groups come from the spans the tail sampler's detector marked when the window has any (an index read),
    else from grouping the statement spans of the window's last 15 minutes (``N_PLUS_ONE_SCAN_WINDOW``).
    """
    options = n_plus_one or NPlusOneOptions()
    end = until or datetime.now(UTC)
    start = end - since
    # Sieve reading its own sink is not application traffic: keep it out of the traces.
    with suppress_instrumentation(), psycopg.connect(dsn, row_factory=dict_row, connect_timeout=10) as conn:
        groups = conn.execute(
            "SELECT * FROM monitoring.get_slow_lookup_groups(%s, %s, %s, %s)",
            (start, end, min_duration_ms, limit),
        ).fetchall()
        changes = conn.execute("SELECT * FROM monitoring.get_plan_changes(%s, %s)", (start, end)).fetchall()
        repeats: list[dict[str, Any]] = []
        source = "off"
        n1_since: datetime | None = None
        if options.enabled:
            marked = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM monitoring.spans WHERE attributes ? 'sieve.db.n_plus_one' "
                "AND start_ts >= %s AND start_ts < %s) AS marked",
                (start, end),
            ).fetchone()
            source = "marked" if marked and marked["marked"] else "scan"
            n1_since = start if source == "marked" else max(start, end - N_PLUS_ONE_SCAN_WINDOW)
            repeats = conn.execute(
                "SELECT * FROM monitoring.get_n_plus_one_groups(%s, %s, %s, %s, %s, %s)",
                (n1_since, end, options.min_count, options.min_total_ms, options.limit, source == "marked"),
            ).fetchall()
    return Window(
        start,
        end,
        [_group(r) for r in groups],
        [_change(r) for r in changes],
        [_n_plus_one(r) for r in repeats],
        source,
        n1_since,
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
    window = fetch_window(
        dsn,
        since,
        until=until,
        min_duration_ms=min_duration_ms,
        limit=limit,
        n_plus_one=NPlusOneOptions(enabled=False),
    )
    return window.since, window.until, window.groups
