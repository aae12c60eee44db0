"""Stop the database for seconds while telemetry keeps flowing; start it again; nothing is lost or doubled.

Runs against a Postgres of its own (``restartable_pg``), never the session server.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from pipeline.export.postgres import PostgresSink
from pipeline.migrate import migrate
from tests.conftest import RestartablePostgres

from .conftest import fast_settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OUTAGE_S = 4.0


class Emitter(threading.Thread):
    """The application: a span, a counter increment and an event per iteration, timing every iteration."""

    def __init__(self, sink: PostgresSink, tracer, counter) -> None:
        super().__init__(name="emitter", daemon=True)
        self.sink, self.tracer, self.counter = sink, tracer, counter
        self.stop = threading.Event()
        self.spans: list[tuple[str, str]] = []
        self.events_accepted = 0
        self.adds = 0
        self.slowest_s = 0.0

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            with self.tracer.start_as_current_span("op", attributes={"i": i}) as span:
                ctx = span.get_span_context()
            self.counter.add(1, {"worker": "w1"})
            self.adds += 1
            self.events_accepted += self.sink.record_event("tick", {"i": i})
            self.slowest_s = max(self.slowest_s, time.perf_counter() - started)
            self.spans.append((format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")))
            i += 1
            time.sleep(0.004)


def watch_breaker(sink: PostgresSink, seen: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        state = sink.health()["breaker"]
        if not seen or seen[-1] != state:
            seen.append(state)
        time.sleep(0.02)


def test_an_outage_loses_nothing_doubles_nothing_and_never_blocks_the_emitter(
    restartable_pg: RestartablePostgres, tmp_path: Path
) -> None:
    pg = restartable_pg
    migrate(pg.dsn)
    sink = PostgresSink(pg.dsn, fast_settings(tmp_path / "spool"))
    resource = Resource({"service.name": "outage"})
    reader = PeriodicExportingMetricReader(sink.metric_exporter(), export_interval_millis=100)
    meters = MeterProvider(metric_readers=[reader], resource=resource)
    tracers = TracerProvider(resource=resource)
    tracers.add_span_processor(BatchSpanProcessor(sink.span_exporter(), schedule_delay_millis=50))
    emitter = Emitter(sink, tracers.get_tracer("outage"), meters.get_meter("outage").create_counter("outage.ops"))
    seen: list[str] = []
    stop_watch = threading.Event()
    watcher = threading.Thread(target=watch_breaker, args=(sink, seen, stop_watch), daemon=True)
    try:
        emitter.start()
        watcher.start()
        time.sleep(0.7)
        pg.stop()
        time.sleep(OUTAGE_S)
        assert "open" in seen, seen
        assert sink.health()["spool_bytes"] > 0
        pg.start()
        deadline = time.monotonic() + 20
        while not (sink.health()["breaker"] == "closed" and sink.health()["spool_bytes"] == 0):
            assert time.monotonic() < deadline, sink.health()
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        emitter.stop.set()
        emitter.join(5)
        tracers.shutdown()  # drains the span batch processor into the sink
        meters.shutdown()  # one last collection and export
        assert sink.flush(15), sink.health()
        stop_watch.set()
        watcher.join(2)
        stats = sink.stats()
        sink.shutdown(10)

    assert seen[0] == "closed" and "open" in seen and seen[-1] == "closed", seen
    assert stats["breaker"]["open"] >= 1 and stats["breaker"]["closed"] >= 1
    assert stats["dropped"] == {}, stats["dropped"]
    assert stats["spooled"], "the outage should have sent rows to the spool"
    # Never blocked: an iteration that waited on the database would take at least the 0.5 s checkout timeout.
    assert emitter.slowest_s < 0.25, emitter.slowest_s

    with psycopg.connect(pg.dsn) as conn:
        stored = conn.execute("SELECT trace_id, span_id FROM monitoring.spans").fetchall()
        assert len(stored) == len(set(stored)) == len(emitter.spans)
        assert set(stored) == set(emitter.spans)
        events = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM monitoring.events").fetchone()
        assert events == (emitter.events_accepted, emitter.events_accepted)
        # Every exported point exactly once: the unique key makes a double impossible, so count them.
        points = conn.execute("SELECT count(*) FROM monitoring.metric_points").fetchone()[0]
        assert points == stats["enqueued"]["points"]
        # The last cumulative value is the whole count of increments.
        final = conn.execute(
            "SELECT value FROM monitoring.metric_points WHERE name = 'outage.ops' ORDER BY ts DESC LIMIT 1"
        ).fetchone()[0]
        assert final == emitter.adds
    assert stats["enqueued"]["spans"] == len(emitter.spans)
    print(
        f"outage: {len(emitter.spans)} spans, {emitter.events_accepted} events, {points} points;"
        f" spooled {stats['spooled']}, skipped {stats['skipped']}; slowest emit {emitter.slowest_s * 1000:.1f} ms"
    )
