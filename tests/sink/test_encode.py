"""Batch encoding, from real SDK objects (an in-memory reader and exporter), without a database."""

from __future__ import annotations

import json
import math

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from pipeline.export.postgres.encode import (
    attributes,
    dumps,
    event_row,
    finite,
    iso_from_ns,
    points_from_metrics,
    span_row,
)
from pipeline.names.sampling import SPAN_ADJUSTED_COUNT, SPAN_PROBABILITY, SPAN_REASON

RESOURCE = Resource({"service.name": "svc", "service.instance.id": "i-1"})


def collect(record) -> list[dict]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=RESOURCE)
    record(provider.get_meter("scope-a"))
    data = reader.get_metrics_data()
    provider.shutdown()
    return points_from_metrics(data)


def test_iso_timestamps_are_exact_to_the_microsecond_and_utc() -> None:
    assert iso_from_ns(0) == "1970-01-01T00:00:00+00:00"
    assert iso_from_ns(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456+00:00"


def test_counter_and_updowncounter_rows() -> None:
    def record(meter):
        meter.create_counter("c", unit="{op}").add(3, {"route": "a"})
        meter.create_up_down_counter("u").add(-2)

    rows = {r["name"]: r for r in collect(record)}
    c, u = rows["c"], rows["u"]
    assert c["kind"] == "counter" and c["value"] == 3 and c["unit"] == "{op}"
    assert c["attributes"] == {"route": "a"} and c["temporality"] == "cumulative"
    assert (c["service"], c["instance"], c["scope"]) == ("svc", "i-1", "scope-a")
    assert c["ts"].endswith("+00:00") and c["start_ts"] is not None
    assert u["kind"] == "updowncounter" and u["value"] == -2


def test_histogram_rows_carry_bounds_counts_and_extremes() -> None:
    def record(meter):
        h = meter.create_histogram("h", unit="s", explicit_bucket_boundaries_advisory=[0.1, 1.0])
        for v in (0.05, 0.5, 0.7, 3.0):
            h.record(v, {"op": "x"})

    (row,) = collect(record)
    assert row["kind"] == "histogram" and row["count"] == 4
    assert row["bucket_bounds"] == [0.1, 1.0] and row["bucket_counts"] == [1, 2, 1]
    assert row["min"] == 0.05 and row["max"] == 3.0 and math.isclose(row["sum"], 4.25)


def test_observable_gauge_rows_and_nan_readings_are_skipped() -> None:
    def record(meter):
        meter.create_observable_gauge("g", [lambda _o: [Observation(7.5)]])
        meter.create_observable_gauge("nan", [lambda _o: [Observation(float("nan"))]])

    rows = collect(record)
    assert [(r["name"], r["kind"], r["value"]) for r in rows] == [("g", "gauge", 7.5)]
    assert rows[0]["temporality"] is None


def test_non_finite_values_and_odd_attributes_become_json() -> None:
    assert finite(float("inf")) is None and finite(2.5) == 2.5 and finite(3) == 3
    attrs = attributes({"t": ("a", "b"), "f": float("nan"), "b": b"\x01", "n": 1, "ok": True})
    assert attrs == {"t": ["a", "b"], "f": "nan", "b": "01", "n": 1, "ok": True}
    json.loads(dumps(attrs))  # valid JSON, no NaN token


def make_span(**attrs) -> dict:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with (
        tracer.start_as_current_span("parent"),
        tracer.start_as_current_span("SELECT messages", kind=SpanKind.CLIENT, attributes=attrs) as span,
    ):
        span.set_status(Status(StatusCode.ERROR, "boom"))
    child = exporter.get_finished_spans()[0]
    row = span_row(child)
    assert row is not None
    return row


def test_span_row_maps_ids_kind_status_and_duration() -> None:
    row = make_span(**{"db.system.name": "postgresql"})
    assert len(row["trace_id"]) == 32 and len(row["span_id"]) == 16 and len(row["parent_span_id"]) == 16
    assert row["kind"] == "client" and row["status_code"] == "error" and row["status_message"] == "boom"
    assert row["duration_ms"] >= 0 and row["service"] == "svc"
    assert row["attributes"] == {"db.system.name": "postgresql"}
    assert row["sampling_probability"] is None and row["sampling_reason"] is None


def test_sampling_attributes_move_to_their_columns() -> None:
    row = make_span(**{SPAN_PROBABILITY: 0.25, SPAN_ADJUSTED_COUNT: 4.0, SPAN_REASON: "error", "k": "v"})
    assert (row["sampling_probability"], row["adjusted_count"], row["sampling_reason"]) == (0.25, 4.0, "error")
    assert row["attributes"] == {"k": "v"}


def test_adjusted_count_is_derived_from_the_probability_when_absent() -> None:
    row = make_span(**{SPAN_PROBABILITY: 0.1})
    assert math.isclose(row["adjusted_count"], 10.0)


def test_event_rows_get_a_fresh_id_and_a_copy_of_the_data() -> None:
    data = {"k": 1}
    a = event_row("cache_hit", data, 1_700_000_000_000_000_000, "svc")
    data["k"] = 2
    b = event_row("cache_hit", data, 1_700_000_000_000_000_000)
    assert a["data"] == {"k": 1} and a["id"] != b["id"] and a["source"] == "svc"
    assert a["ts"] == "2023-11-14T22:13:20+00:00"


def test_dumps_survives_values_json_cannot_encode() -> None:
    from datetime import date
    from decimal import Decimal

    assert json.loads(dumps({"d": date(2026, 1, 2), "x": Decimal("1.5")})) == {"d": "2026-01-02", "x": "1.5"}
