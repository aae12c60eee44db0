"""The exporters' boundary: a span or metric that cannot be encoded costs itself only, and is counted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric, MetricExportResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline.export.postgres import PostgresMetricExporter, PostgresSpanExporter, encode
from pipeline.export.postgres import exporters as exporters_module


class RecordingSink:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.dropped: dict[tuple[str, str], int] = {}

    def enqueue(self, signal: str, rows: Sequence[dict[str, Any]]) -> int:
        self.rows.setdefault(signal, []).extend(rows)
        return len(rows)

    def flush(self, timeout_s: float) -> bool:
        return True

    def count_dropped(self, signal: str, reason: str, n: int) -> None:
        self.dropped[(signal, reason)] = self.dropped.get((signal, reason), 0) + n


def test_a_span_that_cannot_be_encoded_is_counted_and_the_others_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for name in ("a", "poison", "b", "\ud800 lone"):
        provider.get_tracer("t").start_span(name).end()
    spans = memory.get_finished_spans()

    def span_row(span: Any) -> Any:
        if span.name == "poison":
            raise RuntimeError("cannot encode")
        return encode.span_row(span)

    monkeypatch.setattr(exporters_module, "span_row", span_row)
    sink = RecordingSink()
    result = PostgresSpanExporter(sink).export(spans)
    assert result is SpanExportResult.FAILURE  # the SDK logs it; the count below says how many
    assert [r["name"] for r in sink.rows["spans"]] == ["a", "b", "\ud800 lone"]  # repaired later, by the writer
    assert sink.dropped == {("spans", "unencodable"): 1}


def test_a_metric_that_cannot_be_encoded_is_counted_and_the_others_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("m")
    meter.create_counter("good").add(1, {"k": "v"})
    bad = meter.create_counter("bad")
    bad.add(1, {"k": "1"})
    bad.add(1, {"k": "2"})
    data = reader.get_metrics_data()
    provider.shutdown()
    real = encode._metric_rows

    def metric_rows(metric: Metric, base: dict[str, Any]) -> list[dict[str, Any]]:
        if metric.name == "bad":
            raise RuntimeError("cannot encode")
        return real(metric, base)

    monkeypatch.setattr(encode, "_metric_rows", metric_rows)
    sink = RecordingSink()
    assert PostgresMetricExporter(sink).export(data) is MetricExportResult.FAILURE  # logged by the SDK
    assert [r["name"] for r in sink.rows["points"]] == ["good"]
    assert sink.dropped == {("points", "unencodable"): 2}  # both points of the metric that failed
