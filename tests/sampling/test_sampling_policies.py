"""Every Collector policy type, table-driven from the tail_sampling README and internal/sampling semantics.

Where upstream changed recently the row cites it: invert_match votes a plain Sampled / NotSampled
(``internal/sampling/util.go`` ``invertHasResourceOrSpanWithCondition``, ``string_tag_filter_test.go`` and
``boolean_tag_filter_test.go`` "DisableInvertDecision" cases, the default since v0.144); the latency lower bound is
exclusive (contrib PR #49595, ``latency_test.go``). The Collector-semantics table in test_sampling_upstream.py
covers the rest.
"""

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

S, N, D = Vote.SAMPLED, Vote.NOT_SAMPLED, Vote.DROPPED


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
        (100, 0, [100], N),  # the lower bound is exclusive with or without an upper bound (contrib PR #49595)
        (100, 0, [101], S),
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
        (StringAttribute(name="s", key="k", values=("v1",), invert_match=True), {"k": "v2"}, {}, S),
        (StringAttribute(name="s", key="k", values=("v1",), invert_match=True), {}, {}, S),  # missing key
        (StringAttribute(name="s", key="k", values=("v1",), invert_match=True), {"k": "v1"}, {}, N),
        (StringAttribute(name="s", key="k", values=()), {"k": "v1"}, {}, N),  # `values: []` loads, never matches
        (StringAttribute(name="s", key="k", values=(), invert_match=True), {"k": "v1"}, {}, S),
        (NumericAttribute(name="n", key="k", min_value=50, max_value=100), {"k": 50}, {}, S),
        (NumericAttribute(name="n", key="k", min_value=50, max_value=100), {"k": 101}, {}, N),
        (NumericAttribute(name="n", key="k", min_value=50), {"k": 10**9}, {}, S),  # open upper bound
        (NumericAttribute(name="n", key="k", max_value=-1), {"k": -5}, {}, S),
        (NumericAttribute(name="n", key="k", min_value=0, max_value=10), {"k": -5}, {}, S),  # 0 = no bound
        (NumericAttribute(name="n", key="k", min_value=5, max_value=0), {"k": 10**9}, {}, S),  # 0 = no bound
        (NumericAttribute(name="n", key="k", min_value=1), {"k": True}, {}, N),  # bools are not numbers
        (NumericAttribute(name="n", key="k", min_value=1, max_value=2), {"k": 1.5}, {}, S),
        (NumericAttribute(name="n", key="k", min_value=1, max_value=2, invert_match=True), {"k": 5}, {}, S),
        (NumericAttribute(name="n", key="k", min_value=1, max_value=2, invert_match=True), {"k": 1}, {}, N),
        (BooleanAttribute(name="b", key="k", value=True), {"k": True}, {}, S),
        (BooleanAttribute(name="b", key="k", value=True), {"k": False}, {}, N),
        (BooleanAttribute(name="b", key="k", value=False), {"k": False}, {}, S),
        (BooleanAttribute(name="b", key="k", value=True), {"k": "true"}, {}, N),
        (BooleanAttribute(name="b", key="k", value=True, invert_match=True), {"k": True}, {}, N),
        (BooleanAttribute(name="b", key="k", value=True, invert_match=True), {"k": False}, {}, S),
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


def test_rate_limiting_bucket_is_twice_the_rate_and_never_admits_a_larger_trace() -> None:
    """rate_limiting.go: burst 2 x spans_per_second by default; AllowN fails for a trace over the burst."""
    policy = RateLimiting(name="r", spans_per_second=10).build(BuildContext())
    assert RateLimiting(name="r", spans_per_second=10).capacity == 20
    assert RateLimiting(name="r", spans_per_second=10, burst_capacity=7).capacity == 7
    big = view(*[make_span(1) for _ in range(21)])
    assert policy.evaluate(big, 0.0).vote is N  # larger than the bucket: never
    assert policy.evaluate(big, 0.0).probability == 0.0
    fits = view(*[make_span(2) for _ in range(20)])
    first = policy.evaluate(fits, 0.0)
    assert first.vote is S and first.probability == 1.0  # a fresh, full bucket keeps what fits, as upstream
    assert policy.evaluate(fits, 0.1).vote is N  # bucket spent: probability 0 until it refills
    assert policy.evaluate(fits, 0.1).probability == 0.0


def test_rate_limiting_thins_with_a_known_probability_and_holds_the_rate() -> None:
    policy = RateLimiting(name="r", spans_per_second=100).build(BuildContext())
    rng = random.Random(1)
    kept = 0
    estimate = 0.0
    for i in range(3000):  # 30 s, 1,000 spans/s offered in 10-span traces
        d = policy.evaluate(view(*[make_span(1) for _ in range(10)], trace_id=rng.getrandbits(128)), i * 0.01)
        if d.vote is S:
            kept += 1
            estimate += 1 / d.probability
    assert 250 <= kept <= 360  # ~10 traces/s after the first seconds of a fresh estimate
    assert estimate == pytest.approx(3000, rel=0.15)  # kept traces stand for the offered ones


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
    # invert_match is a plain sampled / not-sampled vote, inside `and` as anywhere.
    inv = StringAttribute(name="s", key="k", values=("v",), invert_match=True)
    assert vote(And(name="and", and_sub_policy=(inv, AlwaysSample(name="a"))), view(make_span(1))) is S
    blocked = view(make_span(1, attributes={"k": "v"}))
    assert vote(And(name="and", and_sub_policy=(inv, AlwaysSample(name="a"))), blocked) is N


def test_not_inverts_sampled_and_not_sampled() -> None:
    err = StatusCodeFilter(name="e", status_codes=("ERROR",))
    assert vote(Not(name="n", not_sub_policy=err), view(make_span(1))) is S
    assert vote(Not(name="n", not_sub_policy=err), view(make_span(1, status=StatusCode.ERROR))) is N
    inv = StringAttribute(name="s", key="k", values=("v",), invert_match=True)
    assert vote(Not(name="n", not_sub_policy=inv), view(make_span(1))) is N


def test_drop_matches_when_all_sub_policies_sample() -> None:
    health = StringAttribute(name="h", key="url.path", values=("/health",))
    spec = Drop(name="d", drop_sub_policy=(health,))
    assert vote(spec, view(make_span(1, attributes={"url.path": "/health"}))) is D
    assert vote(spec, view(make_span(1, attributes={"url.path": "/api"}))) is N


def test_composite_listing_order_and_shares() -> None:
    """composite_helper.go builds sub-policies in listing order; policy_order is ignored (with a warning)."""
    spec = Composite(
        name="c",
        max_total_spans_per_second=10,
        policy_order=("errors", "all"),
        composite_sub_policy=(AlwaysSample(name="all"), StatusCodeFilter(name="errors", status_codes=("ERROR",))),
        rate_allocation=(RateAllocation(policy="errors", percent=50),),
    )
    assert spec.allocations() == {"all": 5.0, "errors": 5.0}  # unlisted sub-policies share the remainder
    assert any("policy_order is ignored" in w for w in spec.warnings())
    policy = spec.build(BuildContext())
    error_trace = view(*[make_span(1, status=StatusCode.ERROR) for _ in range(3)])
    first = policy.evaluate(error_trace, 0.0)
    # `all` is listed first, so it is the first sub-policy to sample even an error trace; nothing was offered
    # before, so the first trace is kept with probability 1.
    assert first.vote is S and first.probability == 1.0
    rng = random.Random(2)
    kept = sum(
        policy.evaluate(view(*[make_span(2) for _ in range(3)], trace_id=rng.getrandbits(128)), 1 + i * 0.01).vote is S
        for i in range(2000)
    )  # 20 s at 300 spans/s offered, all of it to `all`'s 5 spans/s share
    assert 25 <= kept <= 55  # ~5 spans/s = 1.7 traces/s, plus the first seconds


@pytest.mark.parametrize(
    ("factory", "setting"),
    [
        (lambda: StatusCodeFilter(name="x", status_codes=("BAD",)), "policies.x.status_code.status_codes"),
        (lambda: StatusCodeFilter(name="x"), "policies.x.status_code.status_codes"),
        (
            lambda: StringAttribute(name="x", key="k", values=("(",), enabled_regex_matching=True),
            "policies.x.string_attribute.values",
        ),
        (lambda: NumericAttribute(name="x", key="k"), "policies.x.numeric_attribute.min_value"),
        (lambda: Not(name="x"), "policies.x.not.not_sub_policy"),
    ],
)
def test_invalid_policies_fail_in_the_constructor(factory, setting: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as excinfo:
        factory()
    assert excinfo.value.setting == setting
    assert str(excinfo.value).startswith(f"invalid setting {setting}=")
