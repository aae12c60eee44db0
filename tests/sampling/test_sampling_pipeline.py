"""The span pipeline the composition root adds: span metrics counted off the event loop and published at
collection time (exactly what per-span SDK calls would export), RED with sampling off, every drop on /metrics
(queue-full included, under the names the SieveSpansShed alert reads), decisions handed to the log sampler in
batches, and effective keep rates for the demo report."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pipeline.names import DURATION_BUCKETS_S
from pipeline.names import sampling as names
from pipeline.sampling import StressRelief, TailSamplingConfig, build_span_pipeline, default_config
from pipeline.sampling.budget import BudgetSettings
from pipeline.sampling.policies import StatusCodeFilter
from pipeline.sampling.span_metrics import SpanCounts, SpanMetricsPublisher
from pipeline.sampling.testing import FakeClock, RecordingProcessor, make_span

REPO = Path(__file__).resolve().parents[2]


def _points(data: MetricsData | None) -> dict[str, dict[tuple[object, ...], object]]:
    assert data is not None
    out: dict[str, dict[tuple[object, ...], object]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:  # type: ignore[union-attr]
                    key = tuple(sorted((p.attributes or {}).items()))
                    if hasattr(p, "bucket_counts"):
                        value: object = (tuple(p.bucket_counts), round(p.sum, 9), p.count, p.min, p.max)
                    else:
                        value = p.value
                    out.setdefault(metric.name, {})[key] = value
    return out


def _spans(seed: int, count: int = 400) -> list:  # type: ignore[type-arg]
    rng = random.Random(seed)
    names_ = ["call_tool", "SELECT", "hello", "ping"]
    return [
        make_span(
            rng.getrandbits(128),
            rng.choice(names_),
            status=StatusCode.ERROR if rng.random() < 0.1 else StatusCode.UNSET,
            duration_ms=rng.expovariate(1 / 40),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_published_span_metrics_equal_per_span_sdk_calls(temporality: AggregationTemporality) -> None:
    """The bulk merge into the SDK's histogram exports exactly what one record() per span exports: the test
    that fails first if an SDK upgrade changes the aggregation internals the fast path relies on."""
    from opentelemetry.sdk.metrics import Counter, Histogram

    def provider() -> tuple[MeterProvider, InMemoryMetricReader]:
        reader = InMemoryMetricReader(preferred_temporality={Counter: temporality, Histogram: temporality})
        view = View(instrument_name="*.duration", aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S))
        return MeterProvider(metric_readers=[reader], views=[view]), reader

    bulk_provider, bulk_reader = provider()
    counts = SpanCounts()
    publisher = SpanMetricsPublisher(counts, bulk_provider)
    plain_provider, plain_reader = provider()
    histogram = plain_provider.get_meter("plain").create_histogram(
        names.SPAN_DURATION.name, unit="s", explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S)
    )
    for round_ in range(3):  # three collections: the cumulative and delta bookkeeping both matter
        spans = _spans(round_)
        counts.count(spans)
        for span in spans:
            histogram.record(
                (span.end_time - span.start_time) / 1e9,
                {
                    names.SPAN_NAME: span.name,
                    names.SPAN_KIND: span.kind.name,
                    names.STATUS_CODE: span.status.status_code.name,
                },
            )
        bulk = _points(bulk_reader.get_metrics_data())[names.SPAN_DURATION.name]
        plain = _points(plain_reader.get_metrics_data())[names.SPAN_DURATION.name]
        assert bulk == plain
    assert publisher._bulk.fast  # the fast path was taken, not the record() fallback
    bulk_provider.shutdown()
    plain_provider.shutdown()


def test_red_metrics_with_sampling_off_and_every_span_forwarded() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    downstream = RecordingProcessor()
    pipeline = build_span_pipeline(downstream, None, meters)
    assert not pipeline.sampling
    spans = _spans(5, 50)
    for span in spans:
        pipeline.on_end(span)
    pipeline.force_flush()
    assert downstream.spans == spans  # forwarded as they are: nothing stamped, nothing dropped
    calls = _points(reader.get_metrics_data())[names.SPAN_CALLS.name]
    assert sum(calls.values()) == 50  # type: ignore[arg-type]
    assert pipeline.stats()["sampling"] is False
    pipeline.shutdown()
    meters.shutdown()


def test_span_metrics_count_every_span_whatever_the_sampler_keeps() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    exporter = InMemorySpanExporter()
    config = TailSamplingConfig(policies=(StatusCodeFilter(name="errors", status_codes=("ERROR",)),))
    pipeline = build_span_pipeline(SimpleSpanProcessor(exporter), config, meters)
    provider = TracerProvider()
    provider.add_span_processor(pipeline)
    tracer = provider.get_tracer("t")
    for _ in range(30):
        with tracer.start_as_current_span("call_tool"):
            pass
    provider.force_flush()
    assert exporter.get_finished_spans() == ()  # nothing kept
    calls = _points(reader.get_metrics_data())[names.SPAN_CALLS.name]
    assert sum(calls.values()) == 30  # type: ignore[arg-type]
    provider.shutdown()
    meters.shutdown()


def test_queue_full_drops_reach_metrics_under_the_alerts_names() -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    registry = CollectorRegistry()
    meters = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    config = TailSamplingConfig(
        policies=(StatusCodeFilter(name="e", status_codes=("ERROR",)),),
        max_queue_spans=4,
        stress_relief=StressRelief(mode="never"),  # a full queue would also switch stress relief on
    )
    pipeline = build_span_pipeline(RecordingProcessor(), config, meters)
    with pipeline._lock:  # the worker cannot drain while we hold its lock: the queue fills deterministically
        for i in range(10):
            pipeline.on_end(make_span(i + 1))
    pipeline.force_flush()
    assert pipeline.stats()["shed_spans"]["queue_full"] == 6
    text = generate_latest(registry).decode()
    shed = {
        s.labels.get(names.SPANS_SHED.prometheus_label(names.SHED_REASON)): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == names.SPANS_SHED.prometheus_name
    }
    assert shed == {"queue_full": 6.0}
    # The alert reads exactly this metric and label.
    rules = yaml.safe_load((REPO / "dashboards/alerts/sieve.rules.yml").read_text())
    expr = next(r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == "SieveSpansShed")
    assert names.SPANS_SHED.prometheus_name in expr
    assert names.SPANS_SHED.prometheus_label(names.SHED_REASON) in expr
    pipeline.shutdown()
    meters.shutdown()


def test_decisions_reach_the_log_sampler_once_per_cycle() -> None:
    from pipeline.sampling.logs import LogSampler

    clock = FakeClock()
    config = TailSamplingConfig(
        policies=(StatusCodeFilter(name="e", status_codes=("ERROR",)),), budget=BudgetSettings(0)
    )
    pipeline = build_span_pipeline(RecordingProcessor(), config, MeterProvider(), clock=clock)
    sampler = LogSampler(decisions=pipeline, clock=clock)
    calls: list[int] = []
    original = sampler.on_decisions
    sampler.on_decisions = lambda batch: (calls.append(len(batch)), original(batch))  # type: ignore[method-assign]
    pipeline._batch_listeners = [sampler.on_decisions]
    for t in range(1, 6):
        pipeline.on_end(make_span(t, status=StatusCode.ERROR if t == 3 else StatusCode.UNSET))
    pipeline.force_flush()
    assert calls == [5]  # one call for the cycle's five decisions
    assert sampler.decisions.get(3) == (True, 1.0)
    assert sampler.decisions.get(2) is not None and sampler.decisions.get(2)[0] is False  # type: ignore[index]
    pipeline.shutdown()


def test_effective_rates_show_base_and_boosted_keep_probability() -> None:
    clock = FakeClock()
    pipeline = build_span_pipeline(RecordingProcessor(), default_config(with_extensions=True), MeterProvider(),
                                   clock=clock)  # fmt: skip
    rng = random.Random(3)
    for i in range(400):
        trace_id = rng.getrandbits(128)
        status = StatusCode.ERROR if i >= 200 and i % 3 == 0 else StatusCode.UNSET
        pipeline.on_end(make_span(trace_id, "call_tool", status=status))
        if i % 50 == 0:
            clock.advance(0.5)
            pipeline.force_flush()
    clock.advance(3)
    pipeline.force_flush()
    rates = pipeline.effective_rates()["demo/call_tool"]
    assert rates["base"] == pytest.approx(0.1)
    assert rates["boost"] > 1.5  # a third of the traces err
    assert rates["effective"] > 0.15  # 10 % -> up to 30 %, within the budget
    pipeline.shutdown()
