"""One metric reader for Prometheus and the pushed exporters: each measurement aggregated once, data shared."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExporter, MetricExportResult, MetricsData
from prometheus_client import CollectorRegistry, generate_latest

from pipeline.export.reader import SharedMetricReader


class Collecting(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[MetricsData] = []
        self.shut_down = False

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.shut_down = True


def _sum(data: MetricsData, name: str) -> float:
    return sum(
        p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points  # type: ignore[union-attr]
    )


def _scraped(registry: CollectorRegistry, name: str) -> Sequence[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if line.startswith(name)]


def test_scrapes_and_pushes_see_the_same_cumulative_data() -> None:
    registry = CollectorRegistry()
    pushed = Collecting()
    reader = SharedMetricReader(registry, [pushed], push_interval_s=3600)
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("t").create_counter("turns")
    counter.add(3)
    assert _scraped(registry, "turns_total")[0].endswith(" 3.0")
    reader.push()
    counter.add(2)
    assert _scraped(registry, "turns_total")[0].endswith(" 5.0")  # a push takes nothing away from the scrape
    provider.shutdown()  # the final collection is pushed, then the exporter is shut down
    assert [_sum(b, "turns") for b in pushed.batches] == [3, 5]
    assert pushed.shut_down


def test_one_reader_is_one_aggregation_per_measurement() -> None:
    """With a second reader the SDK aggregates every measurement twice; the shared reader needs no second one."""

    def storages(provider: MeterProvider) -> int:
        consumer: Any = provider._measurement_consumer  # the SDK's per-reader storages
        return len(consumer._reader_storages)

    shared = MeterProvider(metric_readers=[SharedMetricReader(CollectorRegistry(), [Collecting()])])
    assert storages(shared) == 1
    two = MeterProvider(metric_readers=[SharedMetricReader(CollectorRegistry()), InMemoryMetricReader()])
    assert storages(two) == 2
    shared.shutdown()
    two.shutdown()
