"""The SDK-facing processors with a real TracerProvider, InMemorySpanExporter and InMemoryMetricReader."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

from pipeline.names import DURATION_BUCKETS_S
from pipeline.names import sampling as names
from pipeline.sampling import (
    SpanMetricsProcessor,
    StressRelief,
    TailSamplingConfig,
    TailSamplingProcessor,
    default_config,
)
from pipeline.sampling.policies import Probabilistic, StatusCodeFilter
from pipeline.sampling.testing import FakeClock, RecordingProcessor, make_span

CONFIG = TailSamplingConfig(
    policies=(
        StatusCodeFilter(name="errors", status_codes=("ERROR",)),
        Probabilistic(name="none", sampling_percentage=0),
    )
)


@pytest.fixture
def setup() -> Iterator[tuple[Tracer, TailSamplingProcessor, InMemorySpanExporter, FakeClock, InMemoryMetricReader]]:
    exporter = InMemorySpanExporter()
    clock = FakeClock()
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    processor = TailSamplingProcessor(SimpleSpanProcessor(exporter), CONFIG, meter_provider=meters, clock=clock)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    yield provider.get_tracer("test"), processor, exporter, clock, reader
    provider.shutdown()
    meters.shutdown()


def _trace(tracer: Tracer, error: bool) -> None:
    with tracer.start_as_current_span("call_tool"):
        with tracer.start_as_current_span("db.lookup") as child:
            if error:
                child.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span("provider"):
            pass


def test_kept_traces_arrive_whole_with_sampling_attributes_and_th(setup) -> None:  # type: ignore[no-untyped-def]
    tracer, processor, exporter, _, _ = setup
    for i in range(20):
        _trace(tracer, error=i % 4 == 0)
    assert processor.force_flush(5000)
    spans = exporter.get_finished_spans()
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        assert span.context is not None
        by_trace.setdefault(span.context.trace_id, []).append(span)
    assert len(by_trace) == 5
    for trace_spans in by_trace.values():
        assert sorted(s.name for s in trace_spans) == ["call_tool", "db.lookup", "provider"]
        for span in trace_spans:
            assert span.attributes is not None and span.context is not None
            assert span.attributes[names.SPAN_REASON] == "errors"
            assert span.attributes[names.SPAN_PROBABILITY] == 1.0
            assert span.attributes[names.SPAN_ADJUSTED_COUNT] == 1.0
            assert span.context.trace_state.get("ot") == "th:0"
    stats = processor.stats()
    assert stats["traces_seen"] == 20
    assert stats["traces_kept"] == 5
    assert stats["traces_dropped"] == 15
    assert stats["kept_by_policy"] == {"errors": 5}
    assert stats["dropped_by_reason"] == {"not_sampled": 15}
    assert stats["spans_seen"] == 60 == stats["spans_kept"] + stats["spans_dropped"]
    assert stats["boost_level"] >= 1.0


def test_worker_decides_after_the_grace_without_flush(setup) -> None:  # type: ignore[no-untyped-def]
    tracer, processor, exporter, clock, _ = setup
    _trace(tracer, error=True)
    time.sleep(0.25)  # a worker tick at the same fake time: the grace has not passed
    assert exporter.get_finished_spans() == ()
    clock.advance(2.5)
    deadline = time.monotonic() + 3
    while len(exporter.get_finished_spans()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(exporter.get_finished_spans()) == 3
    assert processor.stats()["triggers"] == {"root": 1}


def test_late_span_follows_the_cached_decision(setup) -> None:  # type: ignore[no-untyped-def]
    tracer, processor, exporter, _, _ = setup
    with tracer.start_as_current_span("root") as root:
        root.set_status(Status(StatusCode.ERROR))
        ctx = root.get_span_context()
    processor.force_flush()
    late = make_span(ctx.trace_id, "background", parent=ctx.span_id)
    processor.on_end(late)
    processor.force_flush()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["root", "background"]
    assert spans[1].attributes is not None
    assert spans[1].attributes[names.SPAN_CACHED_DECISION] is True
    assert processor.stats()["late_spans"] == {"sampled": 1}


def test_self_metrics_are_published(setup) -> None:  # type: ignore[no-untyped-def]
    tracer, processor, _, _, reader = setup
    for i in range(4):
        _trace(tracer, error=i == 0)
    processor.force_flush()
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    for spec in (names.TRACES_RECEIVED, names.TRACES_DECIDED, names.SPANS_RECEIVED, names.SPANS_DECIDED,
                 names.BUFFER_TRACES, names.BUFFER_SPANS, names.BOOST_LEVEL, names.STRESS_ACTIVE,
                 names.DECISION_LATENCY):  # fmt: skip
        assert spec.name in metrics, spec.name
    decided = {
        (p.attributes[names.DECISION], p.attributes[names.POLICY]): p.value
        for p in metrics[names.TRACES_DECIDED.name].data.data_points  # type: ignore[union-attr]
    }
    assert decided == {("sampled", "errors"): 1, ("not_sampled", "none"): 3}


def test_on_end_never_raises_and_counts_what_it_sheds() -> None:
    downstream = RecordingProcessor()
    config = dataclasses.replace(CONFIG, max_queue_spans=5, stress_relief=StressRelief(mode="never"))
    processor = TailSamplingProcessor(downstream, config, clock=FakeClock())
    with processor._lock:  # hold the worker off so the queue really fills
        processor.on_end(None)  # type: ignore[arg-type]
        for i in range(10):
            processor.on_end(make_span(i + 1, status=StatusCode.ERROR))
    processor.force_flush()
    stats = processor.stats()
    assert stats["shed_spans"]["queue_full"] == 6
    assert stats["internal_errors"] == 1
    assert len(downstream.spans) == 4
    processor.shutdown()
    assert downstream.is_shutdown
    processor.on_end(make_span(99))  # after shutdown: ignored, no error
    processor.shutdown()  # idempotent


def test_shutdown_decides_or_drops_pending() -> None:
    for drop, expected in ((False, 1), (True, 0)):
        downstream = RecordingProcessor()
        config = dataclasses.replace(CONFIG, drop_pending_traces_on_shutdown=drop)
        processor = TailSamplingProcessor(downstream, config, clock=FakeClock())
        processor.on_end(make_span(1, status=StatusCode.ERROR))
        processor.shutdown()
        assert len(downstream.spans) == expected


def test_error_signal_is_public_and_shared() -> None:
    processor = TailSamplingProcessor(RecordingProcessor(), default_config(with_extensions=True), clock=FakeClock())
    try:
        assert processor.error_signal.level(0.0) == 1.0
        assert processor.error_signal is processor._buffer.engine.error_signal
    finally:
        processor.shutdown()


def test_span_metrics_before_sampling_with_bounded_names() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    span_metrics = SpanMetricsProcessor(meters, max_span_names=2)
    for name in ("a", "a", "b", "c", "d"):
        span_metrics.on_end(
            make_span(1, name, duration_ms=30, status=StatusCode.ERROR if name == "b" else StatusCode.OK)
        )
    span_metrics.on_end(None)  # type: ignore[arg-type]
    assert span_metrics.errors_caught == 1
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    calls = {
        (p.attributes[names.SPAN_NAME], p.attributes[names.STATUS_CODE]): p.value
        for p in metrics[names.SPAN_CALLS.name].data.data_points  # type: ignore[union-attr]
    }
    assert calls == {("a", "OK"): 2, ("b", "ERROR"): 1, ("other", "OK"): 2}
    errors = [p.value for p in metrics[names.SPAN_ERRORS.name].data.data_points]  # type: ignore[union-attr]
    assert errors == [1]
    points = metrics[names.SPAN_DURATION.name].data.data_points  # type: ignore[union-attr]
    assert all(isinstance(p, HistogramDataPoint) for p in points)
    point = next(p for p in points if p.attributes[names.SPAN_NAME] == "a")  # type: ignore[index]
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS_S
    assert point.sum == pytest.approx(0.06)
    meters.shutdown()


def test_all_declared_metric_names_are_unique_and_prefixed() -> None:
    from pipeline.names import ALL_METRICS

    assert all(spec.name.startswith("sieve.") for spec in names.METRICS)
    assert len({s.name for s in ALL_METRICS}) == len(ALL_METRICS)


def test_decision_listeners_hear_each_decided_trace_once() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from pipeline.sampling import TailSamplingProcessor, load_tail_sampling

    exporter = InMemorySpanExporter()
    config = load_tail_sampling(
        {"policies": [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]}
    )
    processor = TailSamplingProcessor(SimpleSpanProcessor(exporter), config)
    heard: list[tuple[int, bool, float, str]] = []
    processor.add_decision_listener(lambda *args: heard.append(args))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("ok") as ok:
        pass
    with tracer.start_as_current_span("bad") as bad:
        bad.set_status(Status(StatusCode.ERROR))
    provider.force_flush()
    provider.shutdown()
    decided = {trace_id: (keep, reason) for trace_id, keep, _p, reason in heard}
    assert len(heard) == 2
    assert decided[bad.get_span_context().trace_id] == (True, "errors")
    assert decided[ok.get_span_context().trace_id][0] is False
