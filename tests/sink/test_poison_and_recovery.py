"""Strings Postgres refuses, sent while the sink spools during a frozen database; then recovery and replay.

Issue 13 saw one lone surrogate, arriving while the sink spooled, destroy a batch of unrelated rows, uncounted.
Here spans, events and metric points keep flowing (real SDK providers -> the sink's exporters) while every
Postgres process is stopped, and among them: a span name, span attributes and a status message, an event payload
(value and key) and a metric attribute holding lone surrogates and NUL. Afterwards every row is in the database
exactly once (0 lost, collateral or not), the poisoned ones repaired as documented in ``repair.py``.

Then recovery: replay starts at the first probe after the database runs again. Asserted as a sequence, not a
time: at the thaw the breaker's cooldown is at its (short) ceiling, and between the thaw and the breaker closing
there is at most one failed probe (one that was already waiting on the frozen server when it resumed).
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
from opentelemetry.trace import Status, StatusCode

from pipeline.export.postgres import PostgresSink

from .conftest import FreezablePostgres, fast_settings
from .freeze import frozen

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(120)]

LONE = "\ud800"
NUL = "\x00"
REPAIRED_NUL = "\\u0000"  # the six characters a NUL becomes


def wait_for(check, what: str, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"hang guard: {what}"
        time.sleep(0.02)


class Emitter(threading.Thread):
    def __init__(self, sink: PostgresSink, tracer, counter) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name="emitter", daemon=True)
        self.sink, self.tracer, self.counter = sink, tracer, counter
        self.stop = threading.Event()
        self.spans = 0
        self.events = 0

    def run(self) -> None:
        while not self.stop.is_set():
            with self.tracer.start_as_current_span("op", attributes={"i": self.spans}):
                pass
            self.spans += 1
            self.counter.add(1, {"worker": "w1"})
            self.events += self.sink.record_event("tick", {"i": self.events})
            time.sleep(0.003)


def test_poisoned_strings_while_spooling_lose_nothing_and_replay_starts_at_the_first_probe(
    freezable_pg: FreezablePostgres, freezable_dsn: str, tmp_path: Path
) -> None:
    pg, dsn = freezable_pg, freezable_dsn
    settings = fast_settings(
        tmp_path / "spool",
        write_timeout_s=1.0,
        statement_timeout_s=0.8,
        probe_timeout_s=0.5,
        breaker_reset_s=0.25,
        breaker_reset_max_s=0.5,  # the ceiling after one failed probe
    )
    sink = PostgresSink(dsn, settings)
    resource = Resource({"service.name": "poison"})
    meters = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(sink.metric_exporter(), export_interval_millis=100)],
        resource=resource,
    )
    tracers = TracerProvider(resource=resource)
    tracers.add_span_processor(BatchSpanProcessor(sink.span_exporter(), schedule_delay_millis=50))
    tracer, meter = tracers.get_tracer("poison"), meters.get_meter("poison")
    emitter = Emitter(sink, tracer, meter.create_counter("poison.ops"))
    poisoned_counter = meter.create_counter("poison.odd")
    try:
        emitter.start()
        wait_for(lambda: sink.stats()["written"].get("events", 0) > 50, "rows written before the freeze")
        with frozen(pg) as state:
            wait_for(lambda: sink.stats()["spooled"].get("spans", 0) > 0, "spans spooling while frozen")
            # The poison, while the sink spools.
            with tracer.start_as_current_span(f"poison {LONE}", attributes={"a": NUL, "b": f"x{LONE}y"}) as span:
                span.set_status(Status(StatusCode.ERROR, f"bad {NUL} {LONE}"))
            assert sink.record_event("poison", {"s": LONE, "n": f"a{NUL}b", f"key{NUL}": 1})
            poisoned_counter.add(1, {"k": f"{LONE}{NUL}"})
            spooled = sink.stats()["spooled"]
            wait_for(
                lambda: all(
                    sink.stats()["spooled"].get(s, 0) > spooled.get(s, 0) for s in ("spans", "events", "points")
                ),
                "the poisoned rows' batches reach the spool",
            )
            # A long outage: probes fail until the cooldown reaches its ceiling.
            wait_for(
                lambda: sink.stats()["breaker_detail"]["cooldown_s"] == settings.breaker_reset_max_s,
                "the cooldown at its ceiling",
            )
            assert not sink.health()["ready"] and sink.stats()["dropped"] == {}
            before = sink.stats()
            state.thaw()
            wait_for(lambda: sink.health()["breaker"] == "closed", "the breaker closes after the thaw")
            after = sink.stats()
        wait_for(lambda: sink.health()["spool_bytes"] == 0, "the spool drains")
        assert sink.health()["ready"]
    finally:
        emitter.stop.set()
        emitter.join(5)
        tracers.shutdown()
        meters.shutdown()
        assert sink.flush(15), sink.health()
        stats = sink.stats()
        sink.shutdown(10)

    # Recovery as a sequence: the breaker closed once, through a probe; at most one probe failed after the thaw.
    assert after["breaker"].get("closed", 0) == before["breaker"].get("closed", 0) + 1
    failed_after_thaw = after["breaker"].get("open", 0) - before["breaker"].get("open", 0)
    assert failed_after_thaw <= 1, (before["breaker"], after["breaker"])
    assert after["probes"] - before["probes"] <= 2

    assert stats["dropped"] == {}, stats["dropped"]  # 0 lost: collateral or not
    assert stats["repaired"].get("spans", 0) >= 1 and stats["repaired"].get("events", 0) >= 1
    assert stats["repaired"].get("points", 0) >= 1
    with psycopg.connect(dsn) as conn:
        spans = conn.execute("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM monitoring.spans").fetchone()
        assert spans == (emitter.spans + 1, emitter.spans + 1)
        name, attrs, message = conn.execute(
            "SELECT name, attributes, status_message FROM monitoring.spans WHERE name LIKE 'poison%'"
        ).fetchone()
        assert name == "poison \ufffd" and attrs == {"a": REPAIRED_NUL, "b": "x\ufffdy"}
        assert message == f"bad {REPAIRED_NUL} \ufffd"
        events = conn.execute("SELECT count(*) FROM monitoring.events WHERE type = 'tick'").fetchone()[0]
        assert events == emitter.events
        poison = conn.execute("SELECT data FROM monitoring.events WHERE type = 'poison'").fetchone()[0]
        assert poison == {"s": "\ufffd", "n": f"a{REPAIRED_NUL}b", f"key{REPAIRED_NUL}": 1}
        points = conn.execute("SELECT count(*) FROM monitoring.metric_points").fetchone()[0]
        assert points == stats["enqueued"]["points"] - stats["skipped"].get("points", 0)
        odd = conn.execute("SELECT attributes FROM monitoring.metric_points WHERE name = 'poison.odd' LIMIT 1")
        assert odd.fetchone()[0] == {"k": "\ufffd" + REPAIRED_NUL}
    print(
        f"poison: sent {emitter.spans + 1} spans, {emitter.events + 1} events, {stats['enqueued']['points']} points;"
        f" written {stats['written']}, skipped {stats['skipped']}, spooled {stats['spooled']},"
        f" repaired {stats['repaired']}, lost 0 (dropped {stats['dropped']});"
        f" after the thaw: {failed_after_thaw} failed probe(s), {after['probes'] - before['probes']} probe(s) started"
    )
