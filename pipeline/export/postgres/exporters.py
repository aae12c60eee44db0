"""OpenTelemetry exporters that hand metric points and kept spans to the sink's queue.

Both only encode and enqueue: the SDK's reader thread (``PeriodicExportingMetricReader``) or span batch thread
(``BatchSpanProcessor``) is never held by the database. A full queue makes an export return FAILURE (the SDK
logs it) after the sink has counted the dropped rows. A span or metric that cannot be encoded costs itself only,
counted as dropped with reason ``unencodable``; the rest of the export goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import Aggregation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pipeline.export.postgres.encode import points_from_metrics, span_row

log = logging.getLogger(__name__)

# Flushing on an exporter's shutdown waits at most this long: the sink's own shutdown does the final flush.
_SHUTDOWN_FLUSH_S = 5.0


class SinkQueue(Protocol):
    """The part of ``PostgresSink`` the exporters use."""

    def enqueue(self, signal: str, rows: Sequence[dict[str, Any]]) -> int: ...

    def flush(self, timeout_s: float) -> bool: ...

    def count_dropped(self, signal: str, reason: str, n: int) -> None: ...


class PostgresMetricExporter(MetricExporter):
    """Push exporter for ``PeriodicExportingMetricReader``: one row per data point into monitoring.metric_points.

    Temporality defaults to the SDK's (cumulative), like Prometheus: each row is a running total, so a lost row
    loses resolution, not counts.
    """

    def __init__(
        self,
        sink: SinkQueue,
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Aggregation] | None = None,
    ) -> None:
        super().__init__(preferred_temporality=preferred_temporality, preferred_aggregation=preferred_aggregation)
        self._sink = sink

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        failed = 0

        def lost(metric: Metric, exc: Exception) -> None:
            nonlocal failed
            log.error("encoding metric %r for Postgres failed: %s: %s", metric.name, type(exc).__name__, exc)
            failed += _point_count(metric)

        try:
            rows = points_from_metrics(metrics_data, on_error=lost)
        except Exception:  # an exporter must not raise into the SDK's reader
            log.exception("encoding metric points for Postgres failed")
            self._sink.count_dropped("points", "unencodable", 1)
            return MetricExportResult.FAILURE
        if failed:
            self._sink.count_dropped("points", "unencodable", failed)
        if not rows:
            return MetricExportResult.FAILURE if failed else MetricExportResult.SUCCESS
        accepted = self._sink.enqueue("points", rows)
        return MetricExportResult.SUCCESS if accepted == len(rows) and not failed else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._sink.flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        # The reader's final collection was just enqueued: try to write it. The sink itself stays up (spans and
        # events share it); PostgresSink.shutdown() ends it.
        self._sink.flush(min(timeout_millis / 1000, _SHUTDOWN_FLUSH_S))


class PostgresSpanExporter(SpanExporter):
    """Exporter for kept spans, meant to sit behind the SDK's ``BatchSpanProcessor``."""

    def __init__(self, sink: SinkQueue) -> None:
        self._sink = sink

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rows = []
        failed = 0
        for span in spans:
            try:
                row = span_row(span)
            except Exception as exc:  # one odd span costs itself, not the batch around it
                log.error("encoding a span for Postgres failed: %s: %s", type(exc).__name__, exc)
                failed += 1
                continue
            if row is not None:
                rows.append(row)
        if failed:
            self._sink.count_dropped("spans", "unencodable", failed)
        if not rows:
            return SpanExportResult.FAILURE if failed else SpanExportResult.SUCCESS
        accepted = self._sink.enqueue("spans", rows)
        return SpanExportResult.SUCCESS if accepted == len(rows) and not failed else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._sink.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        self._sink.flush(_SHUTDOWN_FLUSH_S)


def _point_count(metric: Metric) -> int:
    """How many rows a metric that failed to encode would have made (at least one, to count the loss)."""
    try:
        return max(1, len(metric.data.data_points))
    except Exception:
        return 1
