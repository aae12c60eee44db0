"""Adjusted counts: th encoding, tracestate composition, stamped copies, and counts rebuilt from kept data."""

from __future__ import annotations

import random

import pytest
from opentelemetry.trace import StatusCode, TraceState

from pipeline.names import sampling as names
from pipeline.sampling.budget import BudgetSettings
from pipeline.sampling.buffer import TraceBuffer
from pipeline.sampling.config import TailSamplingConfig
from pipeline.sampling.counting import (
    MAX_THRESHOLD,
    decode_threshold,
    encode_threshold,
    probability_of,
    stamp,
    threshold_for,
    upstream_probability,
    with_probability,
)
from pipeline.sampling.policies import ErrorBoost, Latency, Probabilistic, StatusCodeFilter
from pipeline.sampling.testing import make_span


@pytest.mark.parametrize(
    ("probability", "th"),
    [(1.0, "0"), (0.5, "8"), (0.25, "c"), (0.75, "4"), (0.125, "e"), (0.01, "fd70a3d70a3d71"), (0.1, "e6666666666666")],
)
def test_threshold_encoding_per_spec(probability: float, th: str) -> None:
    assert encode_threshold(threshold_for(probability)) == th
    assert probability_of(decode_threshold(th) or 0) == pytest.approx(probability, rel=1e-12)


def test_decode_rejects_bad_values() -> None:
    assert decode_threshold("") is None
    assert decode_threshold("xyz") is None
    assert decode_threshold("1" * 15) is None
    assert threshold_for(0.0) == MAX_THRESHOLD - 1


def test_tracestate_keeps_other_members_and_composes_upstream() -> None:
    state = TraceState([("vendor", "x"), ("ot", "th:8;rv:0123456789abcd")])
    assert upstream_probability(state) == 0.5
    updated = with_probability(state, 0.25)
    assert updated.get("ot") == "th:c;rv:0123456789abcd"
    assert updated.get("vendor") == "x"
    assert with_probability(TraceState(), 1.0).get("ot") == "th:0"


def test_stamp_copies_span_with_attributes_and_th() -> None:
    span = make_span(1, "root", attributes={"a": 1}, trace_state=TraceState([("ot", "th:8")]))
    copy = stamp(span, 0.5, "baseline")
    assert copy is not span
    assert copy.attributes is not None
    assert copy.attributes[names.SPAN_PROBABILITY] == 0.25  # tail 50 % x upstream 50 %
    assert copy.attributes[names.SPAN_ADJUSTED_COUNT] == 4.0
    assert copy.attributes[names.SPAN_REASON] == "baseline"
    assert copy.attributes["a"] == 1
    assert copy.context is not None and span.context is not None
    assert copy.context.trace_state.get("ot") == "th:c"
    assert (copy.context.trace_id, copy.context.span_id) == (span.context.trace_id, span.context.span_id)
    assert (copy.name, copy.parent, copy.start_time, copy.end_time, copy.resource) == (
        span.name, span.parent, span.start_time, span.end_time, span.resource,
    )  # fmt: skip
    assert names.SPAN_CACHED_DECISION not in copy.attributes
    assert stamp(span, 1.0, "x", cached=True).attributes[names.SPAN_CACHED_DECISION] is True  # type: ignore[index]


@pytest.mark.parametrize("with_boost", [False, True])
def test_counts_rebuilt_from_kept_data_match_the_truth(with_boost: bool) -> None:
    """100,000 traces: errors and slow traces kept at 100 %, the rest at 5 % (boosted while errors burst);
    the sum of adjusted counts of kept traces estimates the true counts per class within a few percent."""
    rng = random.Random(42)
    policies: tuple = (
        StatusCodeFilter(name="errors", status_codes=("ERROR",)),
        Latency(name="slow", threshold_ms=500),
        Probabilistic(name="baseline", sampling_percentage=5),
    )
    if with_boost:
        policies += (ErrorBoost(name="boost", base_percentage=5, max_boost=10, half_life_s=5, window_s=1),)
    # (slow: duration > 500 ms, exclusive since contrib PR #49595)
    buffer = TraceBuffer(TailSamplingConfig(policies=policies, num_traces=5000, budget=BudgetSettings(0)))
    truth = {"error": 0, "slow": 0, "ok": 0}
    estimate = {"error": 0.0, "slow": 0.0, "ok": 0.0}
    now = 0.0
    for i in range(100_000):
        now += 0.001
        burst = 40_000 <= i < 45_000
        error = rng.random() < (0.05 if burst else 0.005)
        slow = not error and rng.random() < 0.02
        kind = "error" if error else "slow" if slow else "ok"
        truth[kind] += 1
        span = make_span(
            rng.getrandbits(128),
            "root",
            status=StatusCode.ERROR if error else StatusCode.UNSET,
            duration_ms=800 if slow else 20,
        )
        buffer.add(span, now)
        for release in buffer.expire(now - 1.0):
            if release.verdict.keep:
                estimate[_kind(release.spans[0])] += 1.0 / release.verdict.probability
    for release in buffer.flush(now):
        if release.verdict.keep:
            estimate[_kind(release.spans[0])] += 1.0 / release.verdict.probability
    assert estimate["error"] == truth["error"]
    assert estimate["slow"] == truth["slow"]
    assert estimate["ok"] == pytest.approx(truth["ok"], rel=0.03)


def _kind(span) -> str:  # type: ignore[no-untyped-def]
    if span.status.status_code is StatusCode.ERROR:
        return "error"
    return "slow" if (span.end_time - span.start_time) >= 500_000_000 else "ok"


def test_a_buffered_span_keeps_what_the_kept_copy_needs() -> None:
    """The buffer holds BufferedSpan records (the SDK span object is freed); the stamped copy built from one
    equals the copy built from the original span."""
    from opentelemetry.sdk.trace import TracerProvider

    from pipeline.sampling.record import BufferedSpan
    from pipeline.sampling.testing import RecordingProcessor

    recorder = RecordingProcessor()
    provider = TracerProvider()
    provider.add_span_processor(recorder)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root", attributes={"a": 1, "b": "x"}) as root:
        root.add_event("e", {"k": "v"})
        root.set_status(StatusCode.ERROR)
    original = recorder.spans[0]
    record = BufferedSpan(original)
    assert dict(record.attributes) == dict(original.attributes or {})
    from_record, from_span = stamp(record, 0.5, "p"), stamp(original, 0.5, "p")
    for field in ("name", "context", "parent", "kind", "start_time", "end_time", "resource", "links"):
        assert getattr(from_record, field) == getattr(from_span, field), field
    assert from_record.attributes == from_span.attributes
    assert [e.name for e in from_record.events] == ["e"]
    assert from_record.status.status_code is StatusCode.ERROR
    assert from_record.instrumentation_scope == from_span.instrumentation_scope
    assert (from_record.dropped_attributes, from_record.dropped_events) == (0, 0)
    provider.shutdown()
