"""Exemplars from kept spans: the store's choice per bucket and interval, the span-to-series mapping, and the
exposition (OpenMetrics carries them on the right bucket and series, the classic text format does not)."""

from __future__ import annotations

import re

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest as text_format
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

from pipeline.exemplars import Candidate, ExemplarStore, attach_exemplars
from pipeline.exemplars.picker import ExemplarPicker, bucket_of
from pipeline.names import DURATION_BUCKETS_S
from pipeline.names import sampling as sm
from pipeline.names import storage as st
from pipeline.names import websocket as ws
from pipeline.sampling import SpanMetricsProcessor

SERIES = ("sieve_span_duration_seconds_bucket", ("call_tool", "SERVER", "UNSET"))


def cand(trace: int, value: float, error: bool = False) -> Candidate:
    return Candidate(trace, trace, value, 1_700_000_000.0 + trace, error)


def test_within_an_interval_errors_then_slower_win_and_a_new_interval_starts_afresh() -> None:
    store = ExemplarStore()
    store.offer(SERIES, 5, cand(1, 0.02))
    store.offer(SERIES, 5, cand(2, 0.04))
    store.offer(SERIES, 5, cand(3, 0.03))
    assert store.get(SERIES, 5) == cand(2, 0.04)
    store.offer(SERIES, 5, cand(4, 0.011, error=True))
    assert store.get(SERIES, 5) == cand(4, 0.011, error=True)
    store.next_generation()  # a scrape exposed it
    assert store.get(SERIES, 5) == cand(4, 0.011, error=True)  # a quiet bucket keeps its last exemplar
    store.offer(SERIES, 5, cand(5, 0.012))
    assert store.get(SERIES, 5) == cand(5, 0.012)  # the next interval's first kept example replaces it
    assert store.get(SERIES, 6) is None and store.get(("other", ()), 5) is None


def test_memory_is_bounded_by_series_oldest_forgotten_first() -> None:
    store = ExemplarStore(max_series=3)
    for i in range(5):
        store.offer(("m", (str(i),)), 0, cand(i + 1, 1.0))
    store.offer(("m", ("2",)), 0, cand(9, 1.0))  # used again: now the newest
    store.offer(("m", ("5",)), 0, cand(10, 1.0))
    assert len(store) == 3 and store.evicted == 3
    assert [store.get(("m", (k,)), 0) is not None for k in "012345"] == [False, False, True, False, True, True]


def test_bucket_of_matches_prometheus_le() -> None:
    bounds = DURATION_BUCKETS_S
    assert bucket_of(0.0005, bounds) == 0  # le is inclusive
    assert bucket_of(0.0006, bounds) == 1
    assert bucket_of(1e9, bounds) == len(bounds)  # +Inf


def _pipeline() -> tuple[TracerProvider, CollectorRegistry, CollectorRegistry]:
    """Span metrics into a Prometheus reader's registry; the picker on every span (sampling off: all kept)."""
    registry = CollectorRegistry(auto_describe=True)
    meters = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    provider = TracerProvider()
    provider.add_span_processor(SpanMetricsProcessor(meters))
    kept = SynchronousMultiSpanProcessor()
    provider.add_span_processor(kept)
    served = attach_exemplars(registry, kept)
    return provider, registry, served


def _span(provider: TracerProvider, name: str, seconds: float, **kw: object) -> str:
    start = 1_700_000_000_000_000_000
    span = provider.get_tracer("t").start_span(name, start_time=start, **kw)  # type: ignore[arg-type]
    if name == "failing":
        span.set_status(Status(StatusCode.ERROR, "boom"))
    span.end(end_time=start + int(seconds * 1e9))
    return format(span.get_span_context().trace_id, "032x")


def test_openmetrics_carries_each_exemplar_on_its_bucket_and_series_the_text_format_none() -> None:
    provider, registry, served = _pipeline()
    fast = _span(provider, "call_tool", 0.003, kind=SpanKind.SERVER)
    slow = _span(provider, "call_tool", 0.2, kind=SpanKind.SERVER)
    failing = _span(provider, "failing", 0.02)
    page = openmetrics(served).decode()
    exemplars = {
        m.group("trace"): m.group("line")
        for m in re.finditer(
            r'(?P<line>[^\n]*) # \{span_id="[0-9a-f]{16}",trace_id="(?P<trace>[0-9a-f]{32})"\}[^\n]*', page
        )
    }
    assert 'sieve_span_duration_seconds_bucket{le="0.005"' in exemplars[fast]
    assert 'span_name="call_tool"' in exemplars[fast]
    assert 'sieve_span_duration_seconds_bucket{le="0.25"' in exemplars[slow]
    # The failing span is an example of its duration bucket and of the error counter.
    failing_lines = [line for line in page.splitlines() if f'trace_id="{failing}"' in line]
    assert any(line.startswith("sieve_span_errors_total{") and " # {" in line for line in failing_lines)
    assert any('sieve_span_duration_seconds_bucket{le="0.025"' in line for line in failing_lines)
    assert "sieve_span_calls_total{" in page and not re.search(r"sieve_span_calls_total\{[^\n]*# \{", page)
    assert "# {" not in text_format(served).decode()  # the classic format has no exemplars
    assert "# {" not in openmetrics(registry).decode()  # the wrapped registry itself is left alone


def test_spans_map_to_the_websocket_and_storage_series_they_were_recorded_in() -> None:
    store = ExemplarStore()
    provider = TracerProvider()
    provider.add_span_processor(ExemplarPicker(store))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span(
        "call_tool", kind=SpanKind.SERVER, attributes={ws.OP: "call_tool", ws.ERROR_TYPE: "provider_error"}
    ), tracer.start_as_current_span(
        "get_conversation_messages",
        attributes={st.DB_SYSTEM: "postgresql", st.DB_OPERATION: "get_conversation_messages",
                    st.DRIVER: "asyncpg", st.EXECUTE_S: 0.001},
    ):  # fmt: skip
        pass
    names = {key[0]: key[1] for key in store._series}
    assert names[ws.MESSAGE_DURATION.prometheus_name + "_bucket"] == ("call_tool", "provider_error")
    assert names[ws.MESSAGES_RECEIVED.prometheus_name] == ("call_tool", "provider_error")
    assert names[st.OPERATION_DURATION.prometheus_name + "_bucket"] == (
        "postgresql", "get_conversation_messages", "asyncpg", "",
    )  # fmt: skip
    assert names[sm.SPAN_DURATION.prometheus_name + "_bucket"] in {
        ("call_tool", "SERVER", "UNSET"), ("get_conversation_messages", "INTERNAL", "UNSET"),
    }  # fmt: skip
    assert sm.SPAN_ERRORS.prometheus_name not in names  # nothing failed


def test_an_exemplar_is_never_attached_outside_its_bucket_nor_to_a_series_it_is_not_from() -> None:
    provider, _, served = _pipeline()
    _span(provider, "call_tool", 0.003, kind=SpanKind.SERVER)
    # A candidate whose value does not fit the bucket it was filed under (a misconfigured caller) is not shown.
    collector = next(iter(served._collector_to_names))
    store = collector._store
    store.offer(("sieve_span_duration_seconds_bucket", ("call_tool", "SERVER", "UNSET")), 0, cand(77, 3.0))
    page = openmetrics(served).decode()
    assert f"{77:032x}" not in page
    assert page.count("# {") == 1
