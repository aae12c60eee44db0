"""Real SDK providers -> the sink's exporters -> Postgres, read back from the tables."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from pipeline.export.postgres import PostgresSink
from pipeline.names.sampling import SPAN_ADJUSTED_COUNT, SPAN_PROBABILITY, SPAN_REASON

from .conftest import fast_settings

pytestmark = pytest.mark.postgres

RESOURCE = Resource({"service.name": "roundtrip", "service.instance.id": "rt-1"})


@pytest.fixture
def sink(migrated_dsn: str, tmp_path: Path):
    sink = PostgresSink(migrated_dsn, fast_settings(tmp_path / "spool"))
    yield sink
    sink.shutdown(5)


def test_metrics_from_a_real_meter_provider_are_read_back(sink: PostgresSink, migrated_dsn: str) -> None:
    # A long interval: the test drives collection with force_flush, so it knows exactly what was exported.
    reader = PeriodicExportingMetricReader(sink.metric_exporter(), export_interval_millis=60_000)
    provider = MeterProvider(metric_readers=[reader], resource=RESOURCE)
    meter = provider.get_meter("sieve.test")
    requests = meter.create_counter("test.requests", unit="{request}")
    inflight = meter.create_up_down_counter("test.inflight")
    latency = meter.create_histogram("test.latency", unit="s", explicit_bucket_boundaries_advisory=[0.01, 0.1, 1])
    meter.create_observable_gauge("test.queue_depth", [lambda _o: [Observation(42, {"queue": "q1"})]])
    requests.add(3, {"route": "/a", "ok": True})
    requests.add(2, {"route": "/b", "ok": False})
    inflight.add(5)
    inflight.add(-2)
    for value in (0.005, 0.05, 0.05, 2.0):
        latency.record(value, {"op": "lookup"})
    assert provider.force_flush(10_000)
    assert sink.flush(10)

    with psycopg.connect(migrated_dsn) as conn:
        counters = conn.execute(
            "SELECT attributes, value, kind, unit, service, instance, scope, temporality FROM monitoring.metric_points"
            " WHERE name = 'test.requests' ORDER BY attributes->>'route'"
        ).fetchall()
        assert [(a, v, k) for a, v, k, *_ in counters] == [
            ({"route": "/a", "ok": True}, 3.0, "counter"),
            ({"route": "/b", "ok": False}, 2.0, "counter"),
        ]
        assert counters[0][3:] == ("{request}", "roundtrip", "rt-1", "sieve.test", "cumulative")
        assert conn.execute(
            "SELECT kind, value FROM monitoring.metric_points WHERE name = 'test.inflight'"
        ).fetchone() == ("updowncounter", 3.0)
        assert conn.execute(
            "SELECT kind, value, attributes FROM monitoring.metric_points WHERE name = 'test.queue_depth'"
        ).fetchone() == ("gauge", 42.0, {"queue": "q1"})
        histogram = conn.execute(
            "SELECT count, sum, min, max, bucket_bounds, bucket_counts, attributes FROM monitoring.metric_points"
            " WHERE name = 'test.latency'"
        ).fetchone()
        assert histogram[0] == 4 and histogram[1] == pytest.approx(2.105)
        assert histogram[2:] == (0.005, 2.0, [0.01, 0.1, 1.0], [1, 2, 0, 1], {"op": "lookup"})
        # Through the reader's read function too.
        assert len(conn.execute("SELECT * FROM monitoring.get_recent_points('test.requests', 5, 10)").fetchall()) == 2
    # Shutting the provider down exports once more (cumulative: the same totals at a new timestamp).
    provider.shutdown()
    with psycopg.connect(migrated_dsn) as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT ts) FROM monitoring.metric_points WHERE name = 'test.requests'"
        ).fetchone() == (4, 2)


def test_kept_spans_are_queryable(sink: PostgresSink, migrated_dsn: str) -> None:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(BatchSpanProcessor(sink.span_exporter(), schedule_delay_millis=50))
    tracer = provider.get_tracer("sieve.test")
    with tracer.start_as_current_span("ws.message call_tool", kind=SpanKind.SERVER) as root:
        root.set_attribute(SPAN_PROBABILITY, 0.5)
        root.set_attribute(SPAN_ADJUSTED_COUNT, 2.0)
        root.set_attribute(SPAN_REASON, "latency")
        with tracer.start_as_current_span(
            "SELECT messages", kind=SpanKind.CLIENT, attributes={"db.system.name": "postgresql", "db.query.text": "q"}
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "timeout"))
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000)
    assert sink.flush(10)
    provider.shutdown()

    with psycopg.connect(migrated_dsn) as conn:
        rows = conn.execute(
            "SELECT name, kind, status_code, status_message, parent_span_id, sampling_probability, adjusted_count,"
            " sampling_reason, db_system, service, duration_ms >= 0 FROM monitoring.get_trace(%s)"
            " ORDER BY parent_span_id NULLS FIRST",
            (trace_id,),
        ).fetchall()
        root_id = format(root.get_span_context().span_id, "016x")
        assert rows == [
            ("ws.message call_tool", "server", "unset", None, None, 0.5, 2.0, "latency", None, "roundtrip", True),
            (
                "SELECT messages",
                "client",
                "error",
                "timeout",
                root_id,
                None,
                None,
                None,
                "postgresql",
                "roundtrip",
                True,
            ),
        ]
        attrs = conn.execute("SELECT attributes FROM monitoring.spans WHERE parent_span_id IS NULL").fetchone()[0]
        assert SPAN_REASON not in attrs  # moved to its column
        storage = conn.execute(
            "SELECT name, attributes ->> 'db.query.text' FROM monitoring.spans WHERE db_system IS NOT NULL"
        ).fetchall()
        assert storage == [("SELECT messages", "q")]


def test_events_through_the_event_api(sink: PostgresSink, migrated_dsn: str) -> None:
    for i in range(5):
        assert sink.record_event("websocket_health", {"active_connections": i})
    assert sink.flush(10)
    with psycopg.connect(migrated_dsn) as conn:
        rows = conn.execute("SELECT data FROM monitoring.get_recent_metrics('websocket_health', 5, 10)").fetchall()
    assert sorted(r[0]["active_connections"] for r in rows) == [0, 1, 2, 3, 4]
