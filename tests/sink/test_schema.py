"""The monitoring schema against real Postgres: idempotent batched inserts, malformed batches, partitions,
retention, the old single-row API and the read functions."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

pytestmark = pytest.mark.postgres

NOW = datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.isoformat()


def event(ts: datetime = NOW, **over) -> dict:
    return {"id": str(uuid.uuid4()), "ts": iso(ts), "type": "cache_hit", "data": {"k": 1}, **over}


def span(name: str = "SELECT", duration_ms: float = 1.0, **over) -> dict:
    return {
        "start_ts": iso(NOW),
        "trace_id": uuid.uuid4().hex,
        "span_id": uuid.uuid4().hex[:16],
        "name": name,
        "kind": "client",
        "duration_ms": duration_ms,
        "attributes": {"db.system.name": "postgresql", "db.query.text": f"select {duration_ms}"},
        **over,
    }


def call(conn: psycopg.Connection, fn: str, batch: object) -> int:
    return conn.execute(f"SELECT monitoring.{fn}(%s::jsonb)", (json.dumps(batch),)).fetchone()[0]


def count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM monitoring.{table}").fetchone()[0]


@pytest.fixture
def conn(migrated_dsn: str):
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        yield c


def test_a_retried_batch_never_doubles_a_row(conn: psycopg.Connection) -> None:
    events = [event() for _ in range(5)]
    spans = [span() for _ in range(3)]
    points = [{"ts": iso(NOW), "name": "m", "kind": "gauge", "value": 1.5, "attributes": {"b": 1, "a": 2}}]
    assert (call(conn, "insert_events", events), call(conn, "insert_events", events)) == (5, 0)
    assert (call(conn, "insert_spans", spans), call(conn, "insert_spans", spans)) == (3, 0)
    assert (call(conn, "insert_points", points), call(conn, "insert_points", points)) == (1, 0)
    # The same series with its attributes in another order is the same natural key.
    reordered = [{**points[0], "attributes": {"a": 2, "b": 1}}]
    assert call(conn, "insert_points", reordered) == 0
    assert (count(conn, "events"), count(conn, "spans"), count(conn, "metric_points")) == (5, 3, 1)


@pytest.mark.parametrize(
    ("fn", "batch", "message"),
    [
        ("insert_events", {"not": "an array"}, "expected a JSON array of objects, got object"),
        ("insert_events", [1], "element 1 is not a JSON object"),
        ("insert_events", "GOOD+MISSING", "element 2 lacks required key(s) data, type"),
        ("insert_events", "GOOD+NOTS", "element 2 lacks required key(s) ts"),
        ("insert_events", "GOOD+BADTYPE", "element 2 has a value of the wrong type"),
        ("insert_events", "GOOD+FUTURE", "element 2 is invalid: ts"),
        ("insert_spans", "SPAN+BADID", "element 2 is invalid: trace_id 'xyz' is not 32 lower-case hex digits"),
        ("insert_spans", "SPAN+BADKIND", "kind 'sideways' is not internal"),
        ("insert_points", "POINT+NOVALUE", 'a counter needs "value"'),
        ("insert_points", "POINT+BUCKETS", "bucket_counts must have one element more than bucket_bounds"),
    ],
)
def test_a_malformed_batch_is_a_clear_error_and_inserts_nothing(
    conn: psycopg.Connection, fn: str, batch: object, message: str
) -> None:
    good_point = {"ts": iso(NOW), "name": "m", "kind": "counter", "value": 1}
    cases = {
        "GOOD+MISSING": [event(), {"id": str(uuid.uuid4()), "ts": iso(NOW)}],
        "GOOD+NOTS": [event(), {**event(), "ts": None}],
        "GOOD+BADTYPE": [event(), event(id="not-a-uuid")],
        "GOOD+FUTURE": [event(), event(ts=NOW + timedelta(days=30))],
        "SPAN+BADID": [span(), span(trace_id="xyz")],
        "SPAN+BADKIND": [span(), span(kind="sideways")],
        "POINT+NOVALUE": [good_point, {"ts": iso(NOW), "name": "m2", "kind": "counter"}],
        "POINT+BUCKETS": [
            good_point,
            {"ts": iso(NOW), "name": "h", "kind": "histogram", "count": 1, "bucket_bounds": [1], "bucket_counts": [1]},
        ],
    }
    payload = cases.get(batch, batch) if isinstance(batch, str) else batch
    with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
        call(conn, fn, payload)
    assert message in str(info.value)
    assert count(conn, "events") + count(conn, "spans") + count(conn, "metric_points") == 0


def test_an_oversized_batch_is_refused_whole(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE monitoring.config SET max_batch_rows = 10")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="batch of 11 elements exceeds the limit of 10"):
        call(conn, "insert_events", [event() for _ in range(11)])
    assert count(conn, "events") == 0


def partitions(conn: psycopg.Connection, table: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1",
            (f"monitoring.{table}",),
        )
    ]


def test_maintain_makes_partitions_ahead_and_drops_them_after_the_retention(conn: psycopg.Connection) -> None:
    today = NOW.date()
    assert conn.execute("SELECT * FROM monitoring.maintain(7, 2)").fetchone()[0] == 9  # 3 tables x 3 days
    expected = [f"events_p{(today + timedelta(days=d)):%Y%m%d}" for d in range(3)]
    assert partitions(conn, "events") == expected
    # A row from 3 days ago gets its partition on demand; one older than the retention is skipped, not stored.
    assert call(conn, "insert_events", [event(ts=NOW - timedelta(days=3))]) == 1
    assert call(conn, "insert_events", [event(ts=NOW - timedelta(days=9))]) == 0
    assert f"events_p{(today - timedelta(days=3)):%Y%m%d}" in partitions(conn, "events")
    # Shorter retention: the 3-day-old partition goes, by DROP.
    created, dropped = conn.execute("SELECT * FROM monitoring.maintain(1, 2)").fetchone()
    assert (created, dropped) == (0, 1)
    assert partitions(conn, "events") == expected
    assert conn.execute("SELECT retention_days FROM monitoring.config").fetchone()[0] == 1
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_retention_days"):
        conn.execute("SELECT * FROM monitoring.maintain(0, 2)")


def test_indexes_fit_the_queries(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
        " WHERE indrelid IN ('monitoring.events'::regclass, 'monitoring.spans'::regclass,"
        " 'monitoring.metric_points'::regclass)"
    ).fetchall()
    defs = " | ".join(d for _, d in rows)
    assert "USING brin (ts)" in defs and "USING brin (start_ts)" in defs
    assert "(type, ts DESC)" in defs and "(name, start_ts DESC)" in defs
    assert "UNIQUE" in defs and "(trace_id, span_id, start_ts)" in defs
    assert "(duration_ms DESC) WHERE (db_system IS NOT NULL)" in defs


def test_the_old_single_row_api_still_works(conn: psycopg.Connection) -> None:
    first = conn.execute("SELECT monitoring.insert_metric('performance', '{\"duration_ms\": 12}')").fetchone()[0]
    second = conn.execute("SELECT monitoring.insert_metric('performance', '{\"duration_ms\": 13}')").fetchone()[0]
    assert second > first
    recent = conn.execute("SELECT id, type, data FROM monitoring.get_recent_metrics('performance', 5, 10)").fetchall()
    assert recent == [(second, "performance", {"duration_ms": 13}), (first, "performance", {"duration_ms": 12})]
    assert conn.execute("SELECT count(*) FROM monitoring.get_recent_metrics('performance', 5, 1)").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM monitoring.metrics_raw").fetchone()[0] == 2
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT monitoring.insert_metric('', '{}')")


def test_a_trace_reads_back_whole_in_start_order(conn: psycopg.Connection) -> None:
    trace = uuid.uuid4().hex
    batch = [
        span(name=name, trace_id=trace, start_ts=iso(NOW - timedelta(milliseconds=ms)))
        for name, ms in (("child", 5), ("root", 10), ("grandchild", 1))
    ]
    batch.append(span(name="another trace"))
    call(conn, "insert_spans", batch)
    names = [r[0] for r in conn.execute("SELECT name FROM monitoring.get_trace(%s)", (trace,))]
    assert names == ["root", "child", "grandchild"]


def test_recent_points_of_a_metric(conn: psycopg.Connection) -> None:
    call(
        conn,
        "insert_points",
        [
            {"ts": iso(NOW - timedelta(seconds=s)), "name": "ws.connections", "kind": "gauge", "value": s}
            for s in (1, 2, 3)
        ],
    )
    values = [r[0] for r in conn.execute("SELECT value FROM monitoring.get_recent_points('ws.connections', 5, 2)")]
    assert values == [1.0, 2.0]
