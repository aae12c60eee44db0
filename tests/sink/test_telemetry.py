"""The sink's self-metrics reach a MeterProvider under the names of pipeline.names.sink."""

from __future__ import annotations

import time
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from pipeline.export.postgres import PostgresSink
from pipeline.names import BY_NAME
from pipeline.names import sink as names

from .conftest import fast_settings
from .test_writer import FakeStore, rows, wait_for


def collected(reader: InMemoryMetricReader) -> dict[str, list]:
    out: dict[str, list] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def test_self_metrics_are_registered_in_the_names_table() -> None:
    for spec in names.METRICS:
        assert BY_NAME[spec.name] is spec
    assert names.BREAKER_STATE.prometheus_name == "sieve_sink_breaker_state"
    assert names.ROWS_DROPPED.prometheus_name == "sieve_sink_rows_dropped_total"


def test_counters_and_the_breaker_gauge_are_exported(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    store = FakeStore()
    sink = PostgresSink("", fast_settings(tmp_path), meter_provider=provider, store=store)
    try:
        sink.enqueue("events", rows(0, 10))
        assert sink.flush(5)
        metrics = collected(reader)
        assert metrics[names.ROWS_WRITTEN.name][0].value == 10
        assert metrics[names.ROWS_WRITTEN.name][0].attributes == {names.SIGNAL: "events"}
        assert metrics[names.BREAKER_STATE.name][0].value == names.BREAKER_STATE_VALUES["closed"]
        assert names.BATCH_DURATION.name in metrics and names.QUEUE_ROWS.name in metrics

        store.down = True
        for k in range(4):
            sink.enqueue("events", rows(100 + k, 1))
            time.sleep(0.05)
        wait_for(lambda: sink.health()["breaker"] == "open")
        metrics = collected(reader)
        assert metrics[names.BREAKER_STATE.name][0].value == names.BREAKER_STATE_VALUES["open"]
        transitions = {
            p.attributes[names.BREAKER_STATE_LABEL]: p.value for p in metrics[names.BREAKER_TRANSITIONS.name]
        }
        assert transitions.get("open", 0) >= 1
        assert metrics[names.SPOOL_SIZE.name][0].value > 0
    finally:
        sink.shutdown(2)
        provider.shutdown()
