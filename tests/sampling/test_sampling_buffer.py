"""The pure buffer core with a fake clock: triggers, grace, late spans, bounds, flush, stress relief."""

from __future__ import annotations

import dataclasses
import random

from opentelemetry.trace import StatusCode

from pipeline.names.sampling import Outcome
from pipeline.sampling.buffer import Release, TraceBuffer
from pipeline.sampling.config import StressRelief, TailSamplingConfig
from pipeline.sampling.policies import AlwaysSample, StatusCodeFilter
from pipeline.sampling.testing import make_span, make_trace

ERRORS = StatusCodeFilter(name="errors", status_codes=("ERROR",))


def config(**overrides: object) -> TailSamplingConfig:
    base = TailSamplingConfig(
        policies=(ERRORS,), decision_wait_s=10.0, decision_wait_after_root_received_s=2.0, num_traces=100
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def feed(buffer: TraceBuffer, spans, now: float) -> list[Release]:  # type: ignore[no-untyped-def]
    out: list[Release] = []
    for span in spans:
        out.extend(buffer.add(span, now))
    return out


def test_decides_grace_after_local_root_ends() -> None:
    buffer = TraceBuffer(config())
    feed(buffer, make_trace(1, error=True), now=0.0)
    assert buffer.expire(1.9) == []
    late_child = make_span(1, "late-child", parent=99)
    feed(buffer, [late_child], now=1.5)  # a child ending after its root, within the grace
    releases = buffer.expire(2.0)
    assert len(releases) == 1
    assert releases[0].trigger == "root"
    assert releases[0].verdict.outcome is Outcome.SAMPLED
    assert len(releases[0].spans) == 4  # whole trace, including the late child
    assert buffer.trace_count == 0
    assert buffer.span_count == 0


def test_remote_parent_counts_as_local_root() -> None:
    buffer = TraceBuffer(config())
    feed(buffer, [make_span(5, "server", remote_parent=True)], now=0.0)
    assert [r.trigger for r in buffer.expire(2.0)] == ["root"]


def test_decision_wait_when_root_never_ends() -> None:
    buffer = TraceBuffer(config())
    feed(buffer, [make_span(2, "child", parent=123)], now=0.0)
    feed(buffer, [make_span(3, "child", parent=124)], now=5.0)
    assert buffer.expire(9.99) == []
    first = buffer.expire(10.0)
    assert [r.trace_id for r in first] == [2]
    assert first[0].trigger == "decision_wait"
    assert first[0].age_s == 10.0
    assert [r.trace_id for r in buffer.expire(15.0)] == [3]


def test_late_spans_follow_cached_decisions() -> None:
    buffer = TraceBuffer(config())
    feed(buffer, make_trace(1, error=True), now=0.0)
    feed(buffer, make_trace(2), now=0.0)
    releases = buffer.expire(2.0)
    assert {r.trace_id: r.verdict.keep for r in releases} == {1: True, 2: False}
    kept_late = buffer.add(make_span(1, "background", parent=5), now=3.0)
    dropped_late = buffer.add(make_span(2, "background", parent=5), now=3.0)
    assert kept_late[0].late and kept_late[0].verdict.keep and kept_late[0].verdict.reason == "errors"
    assert dropped_late[0].late and not dropped_late[0].verdict.keep
    assert buffer.trace_count == 0
    assert buffer.stats.late[Outcome.SAMPLED] == 1
    assert buffer.stats.late[Outcome.NOT_SAMPLED] == 1


def test_without_cache_late_spans_keep_the_decision_while_a_collector_would_hold_the_trace() -> None:
    """processor_decisions_test.go TestLateArrivingSpansAssignedOriginalDecision: no decision cache configured, a
    late span still gets its trace's decision (upstream keeps the decided trace among its num_traces). Once
    num_traces newer decisions pushed it out, a late span starts a new trace, as upstream."""
    buffer = TraceBuffer(config(sampled_cache_size=0, non_sampled_cache_size=0, num_traces=2))
    feed(buffer, make_trace(1, error=True), now=0.0)
    buffer.expire(2.0)
    late = buffer.add(make_span(1, "background", parent=5), now=3.0)
    assert late and late[0].late and late[0].verdict.keep and late[0].verdict.reason == "errors"
    for t in (2, 3):
        feed(buffer, make_trace(t), now=4.0)
    buffer.expire(7.0)
    assert buffer.add(make_span(1, "background", parent=5), now=8.0) == []
    assert buffer.trace_count == 1
    assert buffer.stats.traces_received == 4


def test_num_traces_bound_decides_the_oldest_early() -> None:
    buffer = TraceBuffer(config(num_traces=3))
    out = feed(buffer, [make_span(t, "child", parent=1) for t in range(1, 6)], now=0.0)
    assert [r.trace_id for r in out] == [1, 2]
    assert all(r.trigger == "num_traces" for r in out)
    assert buffer.trace_count == 3
    assert buffer.stats.early["num_traces"] == 2


def test_span_limit_decides_the_trace_and_later_spans_follow() -> None:
    buffer = TraceBuffer(config(policies=(AlwaysSample(name="all"),), max_spans_per_trace=3))
    out = feed(buffer, [make_span(1, "child", parent=9) for _ in range(5)], now=0.0)
    assert out[0].trigger == "span_limit"
    assert len(out[0].spans) == 3
    assert [r.late for r in out[1:]] == [True, True]
    assert buffer.stats.early["span_limit"] == 1


def test_max_buffered_spans_decides_oldest() -> None:
    buffer = TraceBuffer(config(max_buffered_spans=5))
    out = feed(buffer, [make_span(t, "c", parent=1) for t in (1, 1, 1, 2, 2, 2)], now=0.0)
    assert [r.trace_id for r in out] == [1]
    assert out[0].trigger == "max_buffered_spans"
    assert buffer.span_count == 3


def test_flush_decides_everything_and_drop_releases_undecided() -> None:
    buffer = TraceBuffer(config())
    feed(buffer, [*make_trace(1, error=True), make_span(2, "c", parent=1)], now=0.0)
    out = buffer.flush(0.5)
    assert {r.trace_id: r.verdict.keep for r in out} == {1: True, 2: False}
    assert all(r.trigger == "flush" for r in out)
    feed(buffer, make_trace(3, error=True), now=1.0)
    dropped = buffer.flush(1.0, drop=True)
    assert dropped[0].verdict.reason == "shutdown"
    assert not dropped[0].verdict.keep
    assert buffer.stats.early["shutdown"] == 1
    assert buffer.expire(100.0) == []


def test_stress_relief_sheds_new_traces_by_trace_id_with_hysteresis() -> None:
    stress = StressRelief(activation_level=90, deactivation_level=75, sampling_percentage=50,
                          minimum_activation_duration_s=10)  # fmt: skip
    buffer = TraceBuffer(config(num_traces=10, stress_relief=stress))
    feed(buffer, [make_span(t, "c", parent=1) for t in range(1, 10)], now=0.0)  # 90 % full
    assert buffer.update_stress(0.0)
    ids = [random.getrandbits(128) for _ in range(400)]
    out = feed(buffer, [make_span(t, "c", parent=1) for t in ids], now=0.0)
    assert buffer.trace_count == 9  # nothing new buffered
    assert all(r.trigger == "stress_relief" for r in out)
    kept = {r.trace_id for r in out if r.verdict.keep}
    assert 0.35 < len(kept) / len(ids) < 0.65
    assert kept == {t for t in ids if buffer.stress.keep(t)}  # deterministic by trace id
    buffer.flush(1.0)
    assert buffer.update_stress(5.0)  # below deactivation, but the minimum duration has not passed
    assert not buffer.update_stress(10.0)
    assert buffer.stress.activations == 1


def test_error_in_any_span_keeps_and_counters_add_up() -> None:
    buffer = TraceBuffer(config())
    feed(buffer, make_trace(1, error=True) + make_trace(2) + make_trace(3), now=0.0)
    buffer.expire(2.0)
    s = buffer.stats
    assert s.traces_received == 3
    assert s.traces_decided[(Outcome.SAMPLED, "errors")] == 1
    assert s.traces_decided[(Outcome.NOT_SAMPLED, "none")] == 2
    assert s.spans_decided[(Outcome.SAMPLED, "errors")] == 3
    assert s.triggers["root"] == 3


def test_status_code_of_child_keeps_whole_trace() -> None:
    buffer = TraceBuffer(config())
    spans = [make_span(1, "child", parent=7, status=StatusCode.ERROR), make_span(1, "root", span_id=7)]
    feed(buffer, spans, now=0.0)
    (release,) = buffer.expire(3.0)
    assert release.verdict.keep
    assert len(release.spans) == 2
