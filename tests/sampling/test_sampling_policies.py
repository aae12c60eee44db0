"""Every Collector policy type, table-driven from the tail_sampling README and internal/sampling semantics."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import StatusCode, TraceState

from pipeline.errors import ConfigError
from pipeline.sampling.decision import Vote
from pipeline.sampling.policies import (
    AlwaysSample,
    And,
    BooleanAttribute,
    BuildContext,
    BytesLimiting,
    Composite,
    Drop,
    Latency,
    Not,
    NumericAttribute,
    PolicySpec,
    Probabilistic,
    RateAllocation,
    RateLimiting,
    SpanCount,
    StatusCodeFilter,
    StringAttribute,
    TraceFlags,
    TraceStateFilter,
)
from pipeline.sampling.testing import make_span
from pipeline.sampling.trace import TraceView

S, N, IS, INS, D = Vote.SAMPLED, Vote.NOT_SAMPLED, Vote.INVERT_SAMPLED, Vote.INVERT_NOT_SAMPLED, Vote.DROPPED


def view(*spans, trace_id: int = 0xABC) -> TraceView:  # type: ignore[no-untyped-def]
    return TraceView(trace_id, list(spans))


def vote(spec: PolicySpec, trace: TraceView, now: float = 0.0) -> Vote:
    return spec.build(BuildContext()).evaluate(trace, now).vote


def test_always_sample() -> None:
    assert vote(AlwaysSample(name="a"), view(make_span(1))) is S


@pytest.mark.parametrize(
    ("threshold", "upper", "durations_ms", "expected"),
    [
        (100, 0, [50], N),
        (100, 0, [100], S),  # no upper bound: >= threshold
        (100, 0, [150], S),
        (100, 200, [100], N),  # with upper bound: threshold < d <= upper
        (100, 200, [200], S),
        (100, 200, [201], N),
        (100, 0, [99.9999], N),  # milliseconds truncate
    ],
)
def test_latency(threshold: int, upper: int, durations_ms: list[float], expected: Vote) -> None:
    spans = [make_span(1, duration_ms=d) for d in durations_ms]
    assert vote(Latency(name="l", threshold_ms=threshold, upper_threshold_ms=upper), view(*spans)) is expected


def test_latency_spans_the_whole_trace() -> None:
    # Earliest start to latest end, ignoring what happened between.
    a = make_span(1, start_ns=0, duration_ms=10)
    b = make_span(1, start_ns=490_000_000, duration_ms=20)
    assert vote(Latency(name="l", threshold_ms=500), view(a, b)) is S


@pytest.mark.parametrize(
    ("codes", "statuses", "expected"),
    [
        (("ERROR",), [StatusCode.UNSET, StatusCode.ERROR], S),
        (("ERROR",), [StatusCode.OK, StatusCode.UNSET], N),
        (("ERROR", "UNSET"), [StatusCode.UNSET], S),
        (("OK",), [StatusCode.OK], S),
    ],
)
def test_status_code(codes: tuple[str, ...], statuses: list[StatusCode], expected: Vote) -> None:
    spans = [make_span(1, status=s) for s in statuses]
    assert vote(StatusCodeFilter(name="s", status_codes=codes), view(*spans)) is expected


@pytest.mark.parametrize(
    ("lo", "hi", "count", "expected"),
    [(2, 20, 1, N), (2, 20, 2, S), (2, 20, 20, S), (2, 20, 21, N), (3, 0, 100, S), (3, 0, 2, N)],
)
def test_span_count(lo: int, hi: int, count: int, expected: Vote) -> None:
    spans = [make_span(1) for _ in range(count)]
    assert vote(SpanCount(name="c", min_spans=lo, max_spans=hi), view(*spans)) is expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (TraceState([("key3", "value1")]), S),
        (TraceState([("key3", "other")]), N),
        (TraceState([("key4", "value1")]), N),
        (TraceState(), N),
    ],
)
def test_trace_state(state: TraceState, expected: Vote) -> None:
    spec = TraceStateFilter(name="t", key="key3", values=("value1", "value2"))
    assert vote(spec, view(make_span(1, trace_state=state))) is expected


def test_trace_flags() -> None:
    assert vote(TraceFlags(name="f"), view(make_span(1, sampled_flag=False), make_span(1))) is S
    assert vote(TraceFlags(name="f"), view(make_span(1, sampled_flag=False))) is N


@pytest.mark.parametrize(
    ("spec", "span_attrs", "resource_attrs", "expected"),
    [
        (StringAttribute(name="s", key="k", values=("v1", "v2")), {"k": "v1"}, {}, S),
        (StringAttribute(name="s", key="k", values=("v1",)), {"k": "v3"}, {}, N),
        (StringAttribute(name="s", key="k", values=("v1",)), {}, {"k": "v1"}, S),  # resource attributes count
        (StringAttribute(name="s", key="k", values=("v1",)), {"k": 1}, {}, N),  # only strings
        (StringAttribute(name="s", key="k", values=("v.*",), enabled_regex_matching=True), {"k": "val"}, {}, S),
        (
            StringAttribute(name="s", key="k", values=("^/v1/name/.+",), enabled_regex_matching=True),
            {"k": "/v1/name/7"},
            {},
            S,
        ),
        (StringAttribute(name="s", key="k", values=("x",), enabled_regex_matching=True), {"k": "abxcd"}, {}, S),
        (StringAttribute(name="s", key="k", values=("v1",), invert_match=True), {"k": "v2"}, {}, IS),
        (StringAttribute(name="s", key="k", values=("v1",), invert_match=True), {}, {}, IS),  # missing key
        (StringAttribute(name="s", key="k", values=("v1",), invert_match=True), {"k": "v1"}, {}, INS),
        (NumericAttribute(name="n", key="k", min_value=50, max_value=100), {"k": 50}, {}, S),
        (NumericAttribute(name="n", key="k", min_value=50, max_value=100), {"k": 101}, {}, N),
        (NumericAttribute(name="n", key="k", min_value=50), {"k": 10**9}, {}, S),  # open upper bound
        (NumericAttribute(name="n", key="k", max_value=0), {"k": -5}, {}, S),
        (NumericAttribute(name="n", key="k", min_value=1), {"k": True}, {}, N),  # bools are not numbers
        (NumericAttribute(name="n", key="k", min_value=1, max_value=2), {"k": 1.5}, {}, S),
        (NumericAttribute(name="n", key="k", min_value=1, max_value=2, invert_match=True), {"k": 5}, {}, IS),
        (NumericAttribute(name="n", key="k", min_value=1, max_value=2, invert_match=True), {"k": 1}, {}, INS),
        (BooleanAttribute(name="b", key="k", value=True), {"k": True}, {}, S),
        (BooleanAttribute(name="b", key="k", value=True), {"k": False}, {}, N),
        (BooleanAttribute(name="b", key="k", value=False), {"k": False}, {}, S),
        (BooleanAttribute(name="b", key="k", value=True), {"k": "true"}, {}, N),
        (BooleanAttribute(name="b", key="k", value=True, invert_match=True), {"k": True}, {}, INS),
        (BooleanAttribute(name="b", key="k", value=True, invert_match=True), {"k": False}, {}, IS),
    ],
)
def test_attribute_filters(
    spec: PolicySpec, span_attrs: dict[str, object], resource_attrs: dict[str, object], expected: Vote
) -> None:
    resource = Resource({"service.name": "svc", **resource_attrs})  # type: ignore[dict-item]
    span = make_span(1, attributes=span_attrs, resource=resource)  # type: ignore[arg-type]
    assert vote(spec, view(span, make_span(1))) is expected


def test_regex_cache_is_bounded() -> None:
    spec = StringAttribute(name="s", key="k", values=("^a",), enabled_regex_matching=True, cache_max_size=3)
    for i in range(10):
        vote(spec, view(make_span(1, attributes={"k": f"a{i}"})))
    assert len(spec._cache) <= 3


def test_probabilistic_bounds() -> None:
    spans = [make_span(1)]
    assert vote(Probabilistic(name="p", sampling_percentage=100), view(*spans, trace_id=123)) is S
    assert vote(Probabilistic(name="p", sampling_percentage=150), view(*spans, trace_id=123)) is S
    zero = Probabilistic(name="p", sampling_percentage=0)
    kept = sum(vote(zero, view(*spans, trace_id=random.getrandbits(128))) is S for _ in range(500))
    assert kept == 0


def test_rate_limiting_token_bucket_admits_a_large_trace_when_full() -> None:
    policy = RateLimiting(name="r", spans_per_second=10).build(BuildContext())
    big = view(*[make_span(1) for _ in range(25)])
    assert policy.evaluate(big, 0.0).vote is S  # a full bucket admits a trace larger than the limit (debt)
    small = view(make_span(2))
    assert policy.evaluate(small, 0.5).vote is N  # still in debt: -15 + 5
    assert policy.evaluate(small, 2.1).vote is S  # refilled


def test_rate_limiting_holds_average_rate() -> None:
    policy = RateLimiting(name="r", spans_per_second=100).build(BuildContext())
    trace = view(*[make_span(1) for _ in range(10)])
    kept = sum(policy.evaluate(trace, i * 0.01).vote is S for i in range(1000))  # 10 s, 1,000 spans/s offered
    assert 100 <= kept <= 115  # ~100 spans/s = 10 traces/s (+ initial burst)
    last = policy.evaluate(trace, 10.0)
    assert 0.05 < last.probability < 0.2  # predicted probability close to the admitted ratio


def test_bytes_limiting_refuses_traces_larger_than_burst() -> None:
    policy = BytesLimiting(name="b", bytes_per_second=100, burst_capacity=150).build(BuildContext())
    huge = view(make_span(1, attributes={"k": "x" * 500}))
    assert policy.evaluate(huge, 0.0).vote is N
    small = view(make_span(1, name="a"))
    assert policy.evaluate(small, 0.0).vote is S


def test_bytes_limiting_default_burst_is_twice_rate() -> None:
    policy = BytesLimiting(name="b", bytes_per_second=100).build(BuildContext())
    trace = view(make_span(1, name="x" * 100))  # ~165 bytes: over 1 s of rate, under the 200 B burst
    assert policy.evaluate(trace, 0.0).vote is S
    assert policy.evaluate(trace, 0.0).vote is N


def test_and_requires_every_sub_policy() -> None:
    err = StatusCodeFilter(name="e", status_codes=("ERROR",))
    spec = And(name="and", and_sub_policy=(err, AlwaysSample(name="a")))
    assert vote(spec, view(make_span(1, status=StatusCode.ERROR))) is S
    assert vote(spec, view(make_span(1))) is N
    # An inverted sub-vote becomes a plain sampled / not-sampled inside `and`.
    inv = StringAttribute(name="s", key="k", values=("v",), invert_match=True)
    assert vote(And(name="and", and_sub_policy=(inv, AlwaysSample(name="a"))), view(make_span(1))) is S
    blocked = view(make_span(1, attributes={"k": "v"}))
    assert vote(And(name="and", and_sub_policy=(inv, AlwaysSample(name="a"))), blocked) is N


def test_not_inverts_sampled_and_not_sampled_only() -> None:
    err = StatusCodeFilter(name="e", status_codes=("ERROR",))
    assert vote(Not(name="n", not_sub_policy=err), view(make_span(1))) is S
    assert vote(Not(name="n", not_sub_policy=err), view(make_span(1, status=StatusCode.ERROR))) is N
    inv = StringAttribute(name="s", key="k", values=("v",), invert_match=True)
    assert vote(Not(name="n", not_sub_policy=inv), view(make_span(1))) is IS  # bubbles up unchanged


def test_drop_matches_when_all_sub_policies_sample() -> None:
    health = StringAttribute(name="h", key="url.path", values=("/health",))
    spec = Drop(name="d", drop_sub_policy=(health,))
    assert vote(spec, view(make_span(1, attributes={"url.path": "/health"}))) is D
    assert vote(spec, view(make_span(1, attributes={"url.path": "/api"}))) is N


def test_composite_budget_and_order() -> None:
    spec = Composite(
        name="c",
        max_total_spans_per_second=10,
        policy_order=("errors", "all"),
        composite_sub_policy=(AlwaysSample(name="all"), StatusCodeFilter(name="errors", status_codes=("ERROR",))),
        rate_allocation=(RateAllocation(policy="errors", percent=50),),
    )
    assert spec.allocations() == {"all": 5.0, "errors": 5.0}  # unlisted sub-policies share the remainder
    policy = spec.build(BuildContext())
    error_trace = view(*[make_span(1, status=StatusCode.ERROR) for _ in range(3)])
    ok_trace = view(*[make_span(2) for _ in range(3)])
    assert policy.evaluate(error_trace, 0.1).vote is S  # errors: 3/5
    assert policy.evaluate(error_trace, 0.2).vote is N  # errors would be 6/5; first sampling sub decides
    assert policy.evaluate(ok_trace, 0.3).vote is S  # all: 3/5
    assert policy.evaluate(ok_trace, 0.4).vote is N
    assert policy.evaluate(ok_trace, 1.1).vote is S  # a new second resets the budget


@pytest.mark.parametrize(
    ("factory", "setting"),
    [
        (lambda: Latency(name="x", threshold_ms=-1), "policies.x.latency.threshold_ms"),
        (lambda: Latency(name="x", threshold_ms=10, upper_threshold_ms=5), "policies.x.latency.upper_threshold_ms"),
        (lambda: StatusCodeFilter(name="x", status_codes=("BAD",)), "policies.x.status_code.status_codes"),
        (lambda: StatusCodeFilter(name="x"), "policies.x.status_code.status_codes"),
        (
            lambda: StringAttribute(name="x", key="k", values=("(",), enabled_regex_matching=True),
            "policies.x.string_attribute.values",
        ),
        (lambda: NumericAttribute(name="x", key="k"), "policies.x.numeric_attribute.min_value"),
        (lambda: RateLimiting(name="x"), "policies.x.rate_limiting.spans_per_second"),
        (lambda: BytesLimiting(name="x"), "policies.x.bytes_limiting.bytes_per_second"),
        (lambda: SpanCount(name="x", min_spans=5, max_spans=2), "policies.x.span_count.max_spans"),
        (lambda: And(name="x"), "policies.x.and.and_sub_policy"),
        (lambda: Drop(name="x"), "policies.x.drop.drop_sub_policy"),
        (lambda: Not(name="x"), "policies.x.not.not_sub_policy"),
        (lambda: Probabilistic(name="x", sampling_percentage=-1), "policies.x.probabilistic.sampling_percentage"),
        (
            lambda: Composite(
                name="x",
                max_total_spans_per_second=1,
                composite_sub_policy=(AlwaysSample(name="a"),),
                policy_order=("zzz",),
            ),
            "policies.x.composite.policy_order",
        ),
    ],
)
def test_invalid_policies_fail_in_the_constructor(factory, setting: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as excinfo:
        factory()
    assert excinfo.value.setting == setting
    assert str(excinfo.value).startswith(f"invalid setting {setting}=")
