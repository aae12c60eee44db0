"""Deferred histograms: a list append where the value is recorded, the same data as plain record() at collection."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from pipeline import metering
from pipeline.metering import DeferredHistogram
from pipeline.names import DURATION_BUCKETS_S
from pipeline.names.websocket import MESSAGE_DURATION, OP


def _points(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    data = reader.get_metrics_data()
    assert data is not None
    out = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    for p in m.data.data_points:  # type: ignore[union-attr]
                        out[tuple(sorted(p.attributes.items()))] = p
    return out


def test_deferred_values_equal_plain_records_for_every_reader() -> None:
    values = [0.0004, 0.003, 0.003, 0.07, 2.0, 45.0]
    plain_reader, deferred_readers = InMemoryMetricReader(), [InMemoryMetricReader(), InMemoryMetricReader()]
    plain = (
        MeterProvider(metric_readers=[plain_reader])
        .get_meter("t")
        .create_histogram(MESSAGE_DURATION.name, explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S))
    )
    deferred = DeferredHistogram(
        MeterProvider(metric_readers=deferred_readers).get_meter("t"), MESSAGE_DURATION, DURATION_BUCKETS_S, (OP,)
    )
    for v in values:
        plain.record(v, {OP: "call_tool"})
        deferred.record(v, "call_tool")
    deferred.record(1.0, "ping")
    (expected,) = _points(plain_reader, MESSAGE_DURATION.name).values()
    for reader in deferred_readers:
        got = _points(reader, MESSAGE_DURATION.name)
        point = got[((OP, "call_tool"),)]
        assert (point.count, point.sum, point.min, point.max) == (expected.count, expected.sum, 0.0004, 45.0)
        assert list(point.bucket_counts) == list(expected.bucket_counts)
        assert got[((OP, "ping"),)].count == 1
        # Nothing of the flush hook itself is exported.
        assert not [n for n in _names(reader) if n.startswith("sieve.internal")]


def _names(reader: InMemoryMetricReader) -> list[str]:
    data = reader.get_metrics_data()
    return [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics] if data else []


def test_without_collections_memory_stays_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(metering, "MAX_PENDING", 10)
    reader = InMemoryMetricReader()
    deferred = DeferredHistogram(MeterProvider(metric_readers=[reader]).get_meter("t"), MESSAGE_DURATION, (1.0,), (OP,))
    for _ in range(25):
        deferred.record(0.5, "x")
    assert sum(len(v) for v in deferred._pending.values()) == 5  # two merges of 10 happened where recorded
    assert _points(reader, MESSAGE_DURATION.name)[((OP, "x"),)].count == 25
