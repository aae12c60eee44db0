"""Properties over generated traffic: errors are kept, counts add up, memory stays bounded, hashes agree."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import StatusCode

from pipeline.names.sampling import Outcome
from pipeline.sampling import default_config
from pipeline.sampling.buffer import TraceBuffer
from pipeline.sampling.engine import DecisionEngine
from pipeline.sampling.policies import Probabilistic
from pipeline.sampling.testing import make_span
from pipeline.sampling.trace import TraceView

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

trace_ids = st.integers(min_value=1, max_value=(1 << 128) - 1)
span_plans = st.lists(
    st.tuples(
        st.integers(0, 7),  # which of 8 traces
        st.booleans(),  # is an error
        st.sampled_from(["/api", "/healthz", "/x"]),  # url.path
        st.integers(0, 3),  # clock step, in 100 ms
        st.booleans(),  # is a local root
    ),
    min_size=1,
    max_size=60,
)


def _run(plan, ids, config=None):  # type: ignore[no-untyped-def]
    config = config or default_config()
    buffer = TraceBuffer(config)
    releases = []
    now = 0.0
    for which, error, path, step, root in plan:
        now += step / 10
        span = make_span(
            ids[which],
            "root" if root else "child",
            parent=None if root else 42,
            status=StatusCode.ERROR if error else StatusCode.UNSET,
            attributes={"url.path": path},
        )
        releases += buffer.add(span, now) + buffer.expire(now)
    releases += buffer.flush(now + 100)
    return buffer, releases


@SETTINGS
@given(plan=span_plans, ids=st.lists(trace_ids, min_size=8, max_size=8, unique=True))
def test_error_traces_are_kept_unless_dropped(plan, ids) -> None:  # type: ignore[no-untyped-def]
    _, releases = _run(plan, ids)
    for release in releases:
        statuses = {s.status.status_code for s in release.spans}
        paths = {(s.attributes or {}).get("url.path") for s in release.spans}
        if StatusCode.ERROR in statuses and not release.late:
            if "/healthz" in paths:
                assert release.verdict.outcome is Outcome.DROPPED
            else:
                assert release.verdict.keep


@SETTINGS
@given(plan=span_plans, ids=st.lists(trace_ids, min_size=8, max_size=8, unique=True))
def test_kept_plus_dropped_equals_seen(plan, ids) -> None:  # type: ignore[no-untyped-def]
    buffer, releases = _run(plan, ids)
    s = buffer.stats
    kept = sum(c for (o, _), c in s.traces_decided.items() if o is Outcome.SAMPLED)
    dropped = sum(c for (o, _), c in s.traces_decided.items() if o is not Outcome.SAMPLED)
    assert kept + dropped == s.traces_received
    assert sum(s.spans_decided.values()) == s.spans_received == len(plan)
    assert sum(len(r.spans) for r in releases) == len(plan)  # every span released exactly once
    assert buffer.trace_count == 0


@SETTINGS
@given(
    n_traces=st.integers(1, 20),
    max_spans=st.integers(1, 50),
    per_trace=st.integers(1, 10),
    ids=st.lists(trace_ids, min_size=200, max_size=200, unique=True),
)
def test_memory_bounded_under_never_finishing_traces(n_traces, max_spans, per_trace, ids) -> None:  # type: ignore[no-untyped-def]
    config = dataclasses.replace(
        default_config(),
        num_traces=n_traces,
        max_buffered_spans=max_spans,
        max_spans_per_trace=per_trace,
        sampled_cache_size=30,
        non_sampled_cache_size=30,
    )
    buffer = TraceBuffer(config)
    for i, trace_id in enumerate(ids):
        for _ in range(3):  # children only: no root ever ends, no decision_wait passes
            buffer.add(make_span(trace_id, "child", parent=7), 0.001 * i)
            assert buffer.trace_count <= n_traces
            assert buffer.span_count <= max_spans
        assert len(buffer.cache) <= 60
    assert sum(buffer.stats.early.values()) > 0


@SETTINGS
@given(trace_id=trace_ids, percentage=st.floats(0, 100), salt=st.sampled_from(["", "tier-2", "x"]))
def test_probabilistic_decision_is_the_same_across_instances(trace_id, percentage, salt) -> None:  # type: ignore[no-untyped-def]
    view = TraceView(trace_id, [make_span(trace_id)])
    policy_a = Probabilistic(name="a", sampling_percentage=percentage, hash_salt=salt)
    policy_b = Probabilistic(name="b", sampling_percentage=percentage, hash_salt=salt)
    a = DecisionEngine([policy_a]).decide(view, 0.0)
    b = DecisionEngine([policy_b]).decide(view, 123.0)
    assert a.keep == b.keep
