"""The two N+1 finders agree: the tail sampler's detector (pipeline/sampling/nplusone.py) on a trace in memory, and
``monitoring.get_n_plus_one_groups`` (sql/functions/50_slow_lookups.sql) on the same spans stored - grouping every
stored span (``scan``), or reading only the detector's marks through the partial index (``marked``).

Each case is its own trace with its own statement shape, kept by an always-sample policy next to ``n_plus_one`` so
the spans go to the sink whatever the detector says; the report must find what the detector found, no more."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan

from pipeline.export.postgres.encode import span_row
from pipeline.names import storage as n
from pipeline.sampling.counting import stamp
from pipeline.sampling.engine import DecisionEngine
from pipeline.sampling.policies import AlwaysSample, NPlusOne
from pipeline.sampling.testing import make_span
from pipeline.sampling.trace import TraceView

pytestmark = pytest.mark.postgres

MS = 1_000_000
T0 = time.time_ns() - 60 * 1_000_000_000  # a minute ago: inside the report's window


def _trace(trace_id: int, children: list[Child]) -> list[ReadableSpan]:
    """A ``call_tool`` root and ``children``: (name, start ms, duration ms, attributes, parent: None = the root,
    else the index of an earlier child)."""
    root_id = trace_id * 1000
    spans: list[ReadableSpan] = []
    for i, (name, at_ms, ms, attributes, parent) in enumerate(children):
        parent_id = root_id if parent is None else root_id + 1 + parent
        spans.append(make_span(trace_id, name, parent=parent_id, span_id=root_id + 1 + i, start_ns=T0 + int(at_ms * MS),
                               duration_ms=ms, attributes=attributes))  # fmt: skip
    spans.append(make_span(trace_id, "call_tool", span_id=root_id, start_ns=T0, duration_ms=200))
    return spans


def _fp(case: int) -> str:
    return f"{case:016x}"


def _op(case: int, **extra: Any) -> dict[str, Any]:
    return {n.FINGERPRINT: _fp(case), n.STATEMENT: f"SELECT * FROM t{case} WHERE id = $1", n.EXECUTE_S: 0.0008,
            **extra}  # fmt: skip


Child = tuple[str, float, float, dict[str, Any], int | None]


def _loop(case: int, count: int, *, gap_ms: float = 0.2, ms: float = 1.0, parent: int | None = None,
          name: str = "get_file", start: float = 0.0) -> list[Child]:  # fmt: skip
    return [(name, start + i * (ms + gap_ms), ms, _op(case), parent) for i in range(count)]


CASES: dict[str, list[Child]] = {
    "loop of 6": _loop(1, 6),
    "loop of 4": _loop(2, 4),
    "parallel 6": [("get_file", 0.0, 5.0, _op(3), None) for _ in range(6)],
    "inside one operation": [
        ("list_files", 1.0, 6.0, _op(4, **{n.REPEATS: 7, n.STATEMENTS: 8, n.EXECUTE_S: 0.004}), None)
    ],
    "statement spans under the operation": [
        ("list_files", 1.0, 12.0, _op(5, **{n.REPEATS: 6, n.STATEMENTS: 6}), None),
        *_loop(5, 6, parent=0, name="SELECT", start=1.5),
    ],
    "interleaved shapes": [("get_a" if i % 2 else "get_b", i * 1.2, 1.0, _op(6 + i % 2), None) for i in range(10)],
}


def _store(dsn: str) -> set[tuple[str, str, int, str | None]]:
    """Decide every case's trace, store the kept copies; (parent, fingerprint, executions, operation) found."""
    engine = DecisionEngine([NPlusOne(name="n-plus-one"), AlwaysSample(name="all")])
    found: set[tuple[str, str, int, str | None]] = set()
    rows = []
    for trace_id, children in enumerate(CASES.values(), start=1):
        spans = _trace(trace_id, children)
        view = TraceView(trace_id, spans)
        verdict = engine.decide(view, 0.0)
        names = {s.context.span_id: s.name for s in spans if s.context is not None}
        for r in view.n_plus_one(5):
            operation = None if r.inside_operation else names[r.span_ids[0]]
            found.add((names[r.parent_span_id], r.fingerprint, r.count, operation))
        kept = [stamp(s, verdict.probability, verdict.reason, marks=verdict.marks) for s in spans]
        rows += [row for row in (span_row(s) for s in kept) if row is not None]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT monitoring.insert_spans(%s::jsonb)", (json.dumps(rows),))
    return found


def _groups(dsn: str, *, marked_only: bool) -> set[tuple[str, str, int, str | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT parent_name, fingerprint, executions_max, operation, executions_p50, marked"
            " FROM monitoring.get_n_plus_one_groups(now() - %s::interval, now(), 5, 0, 20, %s)",
            (timedelta(hours=1), marked_only),
        ).fetchall()
    assert all(row[4] == row[2] and row[5] for row in rows)  # one occurrence each; every one was marked
    return {(parent, fp, count, operation) for parent, fp, count, operation, *_ in rows}


def test_the_report_finds_what_the_detector_found_by_scan_and_by_marks(migrated_dsn: str) -> None:
    found = _store(migrated_dsn)
    assert found == {
        ("call_tool", _fp(1), 6, "get_file"),
        ("list_files", _fp(4), 7, None),  # the operation is the loop's parent; its statements are no spans
        ("list_files", _fp(5), 6, "SELECT"),  # counted once, from the statement spans
        ("call_tool", _fp(6), 5, "get_b"),
        ("call_tool", _fp(7), 5, "get_a"),
    }
    assert _groups(migrated_dsn, marked_only=False) == found
    assert _groups(migrated_dsn, marked_only=True) == found


def test_the_marked_read_can_use_the_partial_index(migrated_dsn: str) -> None:
    _store(migrated_dsn)
    with psycopg.connect(migrated_dsn) as conn:
        partitions = {  # the index is declared on the partitioned table: each partition has its own copy
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'monitoring.spans_n_plus_one'::regclass"
            ).fetchall()
        }
        conn.execute("SET enable_seqscan = off")  # a few rows: the planner would rather scan; can it use the index?
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT 1 FROM monitoring.spans AS s WHERE s.attributes ? 'sieve.db.n_plus_one'"
                " AND s.start_ts >= now() - interval '1 hour' AND s.start_ts < now()"
            ).fetchall()
        )
    assert partitions and any(name in plan for name in partitions), plan
