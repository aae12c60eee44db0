"""One kept trace read back from the Postgres sink (``sieve trace TRACE_ID``): its spans as a tree, with what the
storage collector recorded on them (the pool wait / connect / execute split, fingerprints, plans) and the
application events that name the trace.

``parse_trace_id`` accepts what people paste: 32 hex digits, with or without ``0x``, any case. ``load_trace``
reads ``monitoring.get_trace`` and ``monitoring.get_trace_events`` (sql/functions/40_reads.sql) and returns None
when the sink has no span of the trace; ``retention_days`` says how long the sink keeps spans (for the hint).
Rendering is in :mod:`pipeline.slowlookups.waterfall`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from opentelemetry.instrumentation.utils import suppress_instrumentation
from psycopg.rows import dict_row

from pipeline.errors import DatabaseError, UsageError
from pipeline.names import storage as st

_TRACE_ID = re.compile(r"^(?:0x)?([0-9a-f]{32})$")


def parse_trace_id(text: str) -> str:
    """The trace id as the sink stores it (32 lower-case hex digits), or a UsageError naming what is accepted."""
    candidate = text.strip().lower()
    match = _TRACE_ID.match(candidate)
    if match is None or int(match.group(1), 16) == 0:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise UsageError(f"bad trace id {shown!r}: expected 32 hex digits (W3C trace id), with or without 0x")
    return match.group(1)


@dataclass(frozen=True)
class TraceSpan:
    """One stored span, with its place in the tree."""

    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    status_code: str
    status_message: str | None
    start: datetime
    duration_ms: float
    service: str
    attributes: Mapping[str, Any]
    plan: Any = None  # EXPLAIN (FORMAT JSON) document (spans.explain_plan), on EXPLAIN spans
    sampling_reason: str | None = None
    sampling_probability: float | None = None
    depth: int = 0

    @property
    def end(self) -> datetime:
        return self.start + timedelta(milliseconds=self.duration_ms)

    def attr(self, key: str) -> Any:
        return self.attributes.get(key)

    @property
    def is_operation(self) -> bool:
        """A repository operation of the storage collector (it carries the time split)."""
        return st.EXECUTE_S in self.attributes

    def split_ms(self) -> tuple[float, float, float] | None:
        """(pool wait, connect, execute) in ms, for an operation span."""
        if not self.is_operation:
            return None

        def ms(key: str) -> float:
            value = self.attributes.get(key)
            return float(value) * 1000 if isinstance(value, int | float) else 0.0

        return ms(st.POOL_WAIT_S), ms(st.CONNECT_S), ms(st.EXECUTE_S)


@dataclass(frozen=True)
class TraceEvent:
    """An application event that names the trace, from the sink's events table."""

    ts: datetime
    type: str
    data: Mapping[str, Any]
    source: str = ""


@dataclass(frozen=True)
class TraceView:
    """One trace read back from the sink: its spans as a tree, its events, and what is missing."""

    trace_id: str
    spans: tuple[TraceSpan, ...]  # depth first, children in start order
    events: tuple[TraceEvent, ...] = ()
    orphans: int = 0  # spans whose parent the sink does not have (dropped, or in another service)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def start(self) -> datetime:
        return min(s.start for s in self.spans)

    @property
    def end(self) -> datetime:
        return max(s.end for s in self.spans)

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000


def _tree(spans: list[TraceSpan]) -> tuple[tuple[TraceSpan, ...], int]:
    """Depth-first order with depths; spans whose parent is missing become roots (counted as orphans)."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[TraceSpan]] = {}
    orphans = 0
    for s in spans:
        parent = s.parent_span_id if s.parent_span_id in ids else None
        if s.parent_span_id is not None and parent is None:
            orphans += 1
        children.setdefault(parent, []).append(s)
    for group in children.values():
        group.sort(key=lambda s: (s.start, s.span_id))
    ordered: list[TraceSpan] = []
    stack = [(s, 0) for s in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:  # a cycle of parent ids (corrupt data) must not loop forever
            continue
        seen.add(span.span_id)
        ordered.append(replace(span, depth=depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(span.span_id, [])))
    return tuple(ordered), orphans


def _span(row: dict[str, Any]) -> TraceSpan:
    return TraceSpan(
        span_id=row["span_id"],
        parent_span_id=row["parent_span_id"],
        name=row["name"],
        kind=row["kind"],
        status_code=row["status_code"],
        status_message=row["status_message"],
        start=row["start_ts"],
        duration_ms=float(row["duration_ms"]),
        service=row["service"] or "",
        attributes=row["attributes"] or {},
        plan=row["explain_plan"],
        sampling_reason=row["sampling_reason"],
        sampling_probability=row["sampling_probability"],
    )


def build_view(trace_id: str, spans: list[TraceSpan], events: Sequence[TraceEvent] = ()) -> TraceView:
    ordered, orphans = _tree(spans)
    return TraceView(trace_id, ordered, tuple(events), orphans)


def load_trace(dsn: str, trace_id: str, *, connect_timeout_s: float = 5.0) -> TraceView | None:
    """The trace's kept spans and events from the sink, or None when it has none of its spans."""
    try:
        # Sieve reading its own sink is not application traffic: keep it out of the traces.
        with (
            suppress_instrumentation(),
            psycopg.connect(dsn, row_factory=dict_row, connect_timeout=max(1, round(connect_timeout_s))) as conn,
        ):
            rows = conn.execute("SELECT * FROM monitoring.get_trace(%s)", (trace_id,)).fetchall()
            if not rows:
                return None
            spans = [_span(r) for r in rows]
            start = min(s.start for s in spans)
            end = max(s.end for s in spans)
            events = [
                TraceEvent(r["ts"], r["type"], r["data"] or {}, r["source"] or "")
                for r in conn.execute(
                    "SELECT * FROM monitoring.get_trace_events(%s, %s, %s)",
                    (trace_id, start - timedelta(seconds=1), end + timedelta(seconds=1)),
                ).fetchall()
            ]
    except psycopg.errors.UndefinedFunction:
        raise DatabaseError(
            "the trace functions are missing: this database has not been migrated (run `sieve migrate`)"
        ) from None
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot read the sink: {str(exc).strip().splitlines()[0]}") from None
    return build_view(trace_id, spans, events)


def retention_days(dsn: str) -> int | None:
    """How many days the sink keeps spans (monitoring.config), or None if it cannot be read."""
    try:
        with suppress_instrumentation(), psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute("SELECT retention_days FROM monitoring.config").fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None
