"""Today's Collector semantics, one row per behaviour, each citing the upstream test or README section it follows.

Upstream: open-telemetry/opentelemetry-collector-contrib, processor/tailsamplingprocessor (paths below are relative
to it), read for v0.144-v0.160. Each row is a pure check: fake clock, no threads. Where Sieve deliberately differs,
docs/sampling.md has the row instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from opentelemetry.trace import StatusCode

from pipeline.errors import ConfigError
from pipeline.names.sampling import Outcome, Reason, Trigger
from pipeline.sampling import load_tail_sampling
from pipeline.sampling.budget import BudgetSettings
from pipeline.sampling.buffer import TraceBuffer
from pipeline.sampling.cache import TailDecisionCache
from pipeline.sampling.config import TailSamplingConfig
from pipeline.sampling.decision import Vote
from pipeline.sampling.engine import DecisionEngine
from pipeline.sampling.policies import (
    AlwaysSample,
    BooleanAttribute,
    BuildContext,
    Composite,
    Drop,
    NumericAttribute,
    Probabilistic,
    RateAllocation,
    RateLimiting,
    StatusCodeFilter,
    StringAttribute,
)
from pipeline.sampling.testing import make_span, make_trace
from pipeline.sampling.trace import TraceView

ALWAYS = {"name": "a", "type": "always_sample"}


def view(*spans, trace_id: int = 0xABC) -> TraceView:  # type: ignore[no-untyped-def]
    return TraceView(trace_id, list(spans))


def config(*policies, **overrides) -> TailSamplingConfig:  # type: ignore[no-untyped-def]
    base = {"policies": policies or (AlwaysSample(name="all"),), "budget": BudgetSettings(0), "num_traces": 100}
    return TailSamplingConfig(**{**base, **overrides})


# -- one function per row --------------------------------------------------------------------------------------


def invert_match_votes_plain() -> None:
    # internal/sampling/util.go invertHasResourceOrSpanWithCondition with disableinvertdecisions (default since
    # v0.144, stable v0.152): Sampled when no resource or span matches, else NotSampled; no veto of other votes.
    inv = StringAttribute(name="inv", key="k", values=("v",), invert_match=True)
    engine = DecisionEngine([inv, AlwaysSample(name="all")])
    matched = engine.decide(view(make_span(1, attributes={"k": "v"})), 0.0)
    assert matched.keep and matched.reason == "all"  # an inverted NotSampled no longer vetoes a Sampled
    assert engine.decide(view(make_span(1)), 0.0).reason == "inv"


def drop_not_sampled_counts() -> None:
    # processor.go makeDecision records every policy's decision (drop policies included) and
    # count_traces_sampled{policy, decision} counts them; drop.go returns NotSampled when a sub-policy does not
    # match. The final decision treats it as any NotSampled.
    drop = Drop(name="no-health", drop_sub_policy=(StringAttribute(name="h", key="url.path", values=("/h",)),))
    engine = DecisionEngine([AlwaysSample(name="all"), drop])
    assert engine.decide(view(make_span(1)), 0.0).reason == "all"
    assert engine.decide(view(make_span(1, attributes={"url.path": "/h"})), 0.0).outcome is Outcome.DROPPED
    assert engine.policy_votes[("no-health", "not_sampled")] == 1
    assert engine.policy_votes[("no-health", "dropped")] == 1
    assert engine.policy_votes[("all", "sampled")] == 1  # evaluation stopped at the drop the second time


def rate_limiting_bucket_twice_the_rate() -> None:
    # internal/sampling/rate_limiting.go NewRateLimiting: burst 2 x spans_per_second; AllowN is false for a trace
    # larger than the burst, so it is never admitted.
    assert RateLimiting(name="r", spans_per_second=50).capacity == 100
    policy = RateLimiting(name="r", spans_per_second=50).build(BuildContext())
    assert policy.evaluate(view(*[make_span(1) for _ in range(101)]), 0.0).vote is Vote.NOT_SAMPLED
    assert policy.evaluate(view(*[make_span(2) for _ in range(100)]), 0.0).vote is Vote.SAMPLED


def numeric_bound_zero_is_no_bound() -> None:
    # processor_test.go TestNumericAttributeCases ("Only min_value set", "Only max_value set": 0 = not set).
    only_min = NumericAttribute(name="n", key="k", min_value=400, max_value=0)
    only_max = NumericAttribute(name="n", key="k", min_value=0, max_value=1000)
    assert only_min.evaluate(view(make_span(1, attributes={"k": 10**12})), 0.0).vote is Vote.SAMPLED
    assert only_max.evaluate(view(make_span(1, attributes={"k": -(10**12)})), 0.0).vote is Vote.SAMPLED
    assert only_min.evaluate(view(make_span(1, attributes={"k": 300})), 0.0).vote is Vote.NOT_SAMPLED


def root_wait_zero_disables_the_root_trigger() -> None:
    # processor.go processTrace: the root moves a trace to an earlier batch only if
    # DecisionWaitAfterRootReceived > 0 (processor_test.go TestRootReceivedBatcher sets 1s to turn it on).
    loaded = load_tail_sampling({"decision_wait_after_root_received": "0s", "policies": [ALWAYS]})
    assert loaded.decision_wait_after_root_received_s == 0.0
    buffer = TraceBuffer(config(decision_wait_after_root_received_s=0.0, decision_wait_s=10.0))
    for span in make_trace(1):
        buffer.add(span, 0.0)
    assert buffer.expire(9.9) == []  # the ended root did not trigger anything
    assert [r.trigger for r in buffer.expire(10.0)] == ["decision_wait"]


def late_span_keeps_decision_with_caches_off() -> None:
    # processor_decisions_test.go TestLateArrivingSpansAssignedOriginalDecision (no decision cache configured).
    errors = StatusCodeFilter(name="errors", status_codes=("ERROR",))
    buffer = TraceBuffer(config(errors, sampled_cache_size=0, non_sampled_cache_size=0))
    for span in make_trace(1, error=True) + make_trace(2):
        buffer.add(span, 0.0)
    buffer.expire(5.0)
    kept, dropped = buffer.add(make_span(1, "late", parent=9), 6.0), buffer.add(make_span(2, "late", parent=9), 6.0)
    assert kept[0].late and kept[0].verdict.keep
    assert dropped[0].late and not dropped[0].verdict.keep


def decision_cache_is_lru() -> None:
    # internal/cache/lru_cache.go (hashicorp LRU) and lru_cache_test.go: a lookup makes an entry most recent,
    # so the least recently *used* id is evicted.
    cache = TailDecisionCache(2, 2)
    cache.put_sampled(1, 1.0, "a")
    cache.put_sampled(2, 1.0, "b")
    assert cache.sampled(1) is not None  # touch 1
    cache.put_sampled(3, 1.0, "c")
    assert cache.sampled(2) is None and cache.sampled(1) is not None
    cache.put_dropped(10)
    cache.put_dropped(11)
    assert cache.dropped(10)
    cache.put_dropped(12)
    assert not cache.dropped(11) and cache.dropped(10)


def composite_listing_order() -> None:
    # composite_helper.go getNewCompositePolicy iterates composite_sub_policy in listing order;
    # internal/sampling/composite.go stops at the first sub-policy that samples. policy_order is not read.
    spec = Composite(
        name="c",
        max_total_spans_per_second=1000,
        policy_order=("errors", "all"),
        composite_sub_policy=(AlwaysSample(name="all"), StatusCodeFilter(name="errors", status_codes=("ERROR",))),
        rate_allocation=(RateAllocation(policy="all", percent=50), RateAllocation(policy="errors", percent=50)),
    )
    assert any("policy_order is ignored" in w for w in spec.warnings())
    policy = spec.build(BuildContext())
    error = view(make_span(1, status=StatusCode.ERROR))
    assert policy.evaluate(error, 0.0).vote is Vote.SAMPLED  # `all` came first and had room


def empty_values_accepted() -> None:
    # config.go StringAttributeCfg / TraceStateCfg: Values is a plain []string; `values: []` decodes and runs.
    loaded = load_tail_sampling(
        {
            "policies": [
                {"name": "s", "type": "string_attribute", "string_attribute": {"key": "k", "values": []}},
                {"name": "t", "type": "trace_state", "trace_state": {"key": "k", "values": None}},
            ]
        }
    )
    assert [p.name for p in loaded.policies] == ["s", "t"]
    assert DecisionEngine(loaded.policies).decide(view(make_span(1, attributes={"k": "x"})), 0.0).keep is False


def rate_allocation_over_100_accepted() -> None:
    # composite_helper.go getRateAllocationMap: percentages are used as given, never validated.
    raw = {
        "name": "c",
        "type": "composite",
        "composite": {
            "max_total_spans_per_second": 100,
            "composite_sub_policy": [ALWAYS | {"name": "x"}, ALWAYS | {"name": "y"}],
            "rate_allocation": [{"policy": "x", "percent": 80}, {"policy": "y", "percent": 70}],
        },
    }
    loaded = load_tail_sampling({"policies": [raw]})
    assert any("sums to 150 %" in w for w in loaded.warnings)


def block_on_overflow_and_shards_accepted() -> None:
    # config.go: block_on_overflow, num_shards and tail_storage are valid keys upstream; Sieve warns and ignores.
    loaded = load_tail_sampling({"block_on_overflow": True, "num_shards": 4, "policies": [ALWAYS]})
    assert len(loaded.warnings) == 2


def sampling_strategy_values() -> None:
    # factory_test.go TestCreateProcessorRejectsInvalidSamplingStrategy, TestCreateProcessorAllowsSpanIngest,
    # TestCreateProcessorRejectsStatefulPolicyForSpanIngest.
    with pytest.raises(ConfigError, match="sampling_strategy"):
        load_tail_sampling({"sampling_strategy": "invalid", "policies": [ALWAYS]})
    prob = {"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 1}}
    assert load_tail_sampling({"sampling_strategy": "span-ingest", "policies": [prob]}).sampling_strategy == (
        "span-ingest"
    )
    limiter = {"name": "r", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 1}}
    with pytest.raises(ConfigError, match="stateful"):
        load_tail_sampling({"sampling_strategy": "span-ingest", "policies": [limiter]})


def span_ingest_decides_on_ingest() -> None:
    # processor_test.go TestSpanIngestEvaluatesOnIngestAndFinalizesOnTerminalDecision: a sampled vote on ingest
    # releases the trace at once; a trace still pending at decision_wait is not sampled, without evaluation.
    force = BooleanAttribute(name="force", key="force", value=True)
    buffer = TraceBuffer(config(force, sampling_strategy="span-ingest", decision_wait_s=10.0))
    assert buffer.add(make_span(1, "a", parent=5), 0.0) == []
    released = buffer.add(make_span(1, "b", parent=5, attributes={"force": True}), 1.0)
    assert released[0].verdict.keep and len(released[0].spans) == 2 and released[0].trigger == "ingest"
    buffer.add(make_span(2, "c", parent=5), 0.0)
    pending = buffer.expire(10.0)
    assert pending[0].trace_id == 2 and not pending[0].verdict.keep


def maximum_trace_size_bytes_drops_early() -> None:
    # processor_test.go TestDropLargeTraces: a still-pending trace over the size is not sampled at once (its
    # own counter, not dropped_too_early); a small one is decided as usual.
    buffer = TraceBuffer(config(maximum_trace_size_bytes=1024))
    released = buffer.add(make_span(1, "big", parent=5, attributes={"foo": "bar" * 1024}), 0.0)
    assert released[0].verdict.reason == Reason.TOO_LARGE and not released[0].verdict.keep
    assert buffer.stats.early[Trigger.TOO_LARGE] == 1
    assert buffer.add(make_span(1, "more", parent=5), 1.0)[0].late  # later spans follow the decision
    assert buffer.add(make_span(2, "small", parent=5, attributes={"foo": "short"}), 0.0) == []
    loaded = load_tail_sampling({"maximum_trace_size_bytes": 2048, "policies": [ALWAYS]})
    assert loaded.maximum_trace_size_bytes == 2048


def probabilistic_hash_is_the_collectors() -> None:
    # internal/sampling/probabilistic.go: FNV-1a over salt + trace id against MaxUint64 x ratio (bit-exact vectors
    # in test_sampling_hashing.py); the default salt is shared by Sieve's own random policies.
    rng = random.Random(4)
    policy = Probabilistic(name="p", sampling_percentage=30)
    kept = sum(policy.evaluate(view(make_span(1), trace_id=rng.getrandbits(128)), 0.0).positive for _ in range(5000))
    assert 1350 < kept < 1650


ROWS: list[tuple[str, Callable[[], None]]] = [
    ("invert_match votes a plain sampled / not sampled", invert_match_votes_plain),
    ("a drop policy's not-sampled vote counts", drop_not_sampled_counts),
    ("rate_limiting bucket = 2 x spans_per_second, larger traces never", rate_limiting_bucket_twice_the_rate),
    ("numeric_attribute bound 0 = no bound", numeric_bound_zero_is_no_bound),
    ("decision_wait_after_root_received: 0s disables the root trigger", root_wait_zero_disables_the_root_trigger),
    ("late span keeps the decision with both caches at 0", late_span_keeps_decision_with_caches_off),
    ("decision caches evict the least recently used", decision_cache_is_lru),
    ("composite evaluates sub-policies in listing order", composite_listing_order),
    ("values: [] is accepted", empty_values_accepted),
    ("rate_allocation over 100 % is accepted", rate_allocation_over_100_accepted),
    ("block_on_overflow, num_shards are accepted", block_on_overflow_and_shards_accepted),
    ("sampling_strategy trace-complete | span-ingest", sampling_strategy_values),
    ("span-ingest decides as spans arrive", span_ingest_decides_on_ingest),
    ("maximum_trace_size_bytes", maximum_trace_size_bytes_drops_early),
    ("probabilistic uses the Collector's hash", probabilistic_hash_is_the_collectors),
]


@pytest.mark.parametrize(("semantic", "check"), ROWS, ids=[r[0] for r in ROWS])
def test_collector_semantics(semantic: str, check: Callable[[], None]) -> None:
    check()
