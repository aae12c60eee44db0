"""The README's combining rules, and the keep probability they imply."""

from __future__ import annotations

import random

import pytest
from opentelemetry.trace import StatusCode

from pipeline.names.sampling import Outcome
from pipeline.sampling.combine import MIN_PROBABILITY, combine, keep_probability
from pipeline.sampling.decision import Decision, Vote
from pipeline.sampling.engine import DecisionEngine
from pipeline.sampling.policies import (
    AlwaysSample,
    BooleanAttribute,
    Drop,
    Probabilistic,
    StatusCodeFilter,
    StringAttribute,
)
from pipeline.sampling.region import EMPTY, FULL, below
from pipeline.sampling.testing import make_span
from pipeline.sampling.trace import TraceView

S, N, D = Vote.SAMPLED, Vote.NOT_SAMPLED, Vote.DROPPED


def d(vote: Vote, name: str, p: float | None = None, source: str | None = None) -> Decision:
    region = (FULL if vote is not N else EMPTY) if p is None else below(p)
    return Decision(vote, name, region, source, is_drop=vote is D)


@pytest.mark.parametrize(
    ("votes", "outcome", "reason"),
    [
        ([], Outcome.NOT_SAMPLED, "none"),
        ([d(N, "a")], Outcome.NOT_SAMPLED, "none"),
        ([d(S, "a")], Outcome.SAMPLED, "a"),
        ([d(N, "a"), d(S, "b"), d(S, "c")], Outcome.SAMPLED, "b"),  # first sampled is the reason
        ([d(S, "a"), d(D, "drop")], Outcome.DROPPED, "drop"),  # drop beats everything
        ([d(D, "drop"), d(S, "a")], Outcome.DROPPED, "drop"),
        ([Decision(N, "drop", EMPTY, is_drop=True), d(S, "a")], Outcome.SAMPLED, "a"),  # a drop that did not match
        ([Decision(N, "drop", EMPTY, is_drop=True)], Outcome.NOT_SAMPLED, "none"),
    ],
)
def test_combining_rules(votes: list[Decision], outcome: Outcome, reason: str) -> None:
    """README "Policy Decision Flow" without the inverted decisions (gone since v0.144)."""
    verdict = combine(votes)
    assert verdict.outcome is outcome
    assert verdict.reason == reason


def test_probability_of_filters_is_one() -> None:
    combined = combine([d(S, "errors"), d(N, "p", 0.1, "fnv:x")])
    assert combined.probability == 1.0
    assert combined.deterministic


def test_probability_nested_randomness_takes_the_union() -> None:
    votes = [d(S, "p10", 0.1, "fnv:x"), d(N, "boost", 0.05, "fnv:x")]
    assert combine(votes).probability == pytest.approx(0.1)
    assert not combine(votes).deterministic


def test_probability_independent_randomness_combines() -> None:
    votes = [d(S, "a", 0.1, "fnv:x"), d(N, "b", 0.2, "fnv:y")]
    assert combine(votes).probability == pytest.approx(1 - 0.9 * 0.8)


def test_probability_random_drop_reduces_it() -> None:
    # A drop of u < 0.5 on another uniform, a keep of u < 0.1: independent, 0.1 x 0.5.
    votes = [Decision(N, "drop", below(0.5), "fnv:z", is_drop=True), d(S, "a", 0.1, "fnv:x")]
    assert combine(votes).probability == pytest.approx(0.05)
    # On the same uniform the drop removes the whole keep region's overlap: keep [0.5, 0.6) of u.
    same = [Decision(N, "drop", below(0.5), "fnv:x", is_drop=True), Decision(S, "a", ((0.0, 0.6),), "fnv:x")]
    assert keep_probability(same) == pytest.approx(0.1)


def test_probability_of_a_not_sampled_trace_is_its_demand() -> None:
    assert combine([d(N, "p", 0.1, "fnv:x")]).probability == pytest.approx(0.1)


def test_probability_never_below_threshold_resolution() -> None:
    assert combine([d(S, "a", 1e-30, "fnv:x")]).probability == MIN_PROBABILITY


def view(*spans, trace_id: int = 7) -> TraceView:  # type: ignore[no-untyped-def]
    return TraceView(trace_id, list(spans))


def test_engine_puts_drop_policies_first_and_stops() -> None:
    engine = DecisionEngine(
        [
            AlwaysSample(name="all"),
            Drop(name="no-health", drop_sub_policy=(StringAttribute(name="h", key="url.path", values=("/h",)),)),
        ]
    )
    assert engine.decide(view(make_span(1, attributes={"url.path": "/h"})), 0.0).outcome is Outcome.DROPPED
    assert engine.decide(view(make_span(1)), 0.0).reason == "all"


def test_engine_sample_on_first_match_keeps_the_first_reason() -> None:
    policies = [StatusCodeFilter(name="errors", status_codes=("ERROR",)), AlwaysSample(name="all")]
    engine = DecisionEngine(policies, sample_on_first_match=True)
    assert engine.decide(view(make_span(1, status=StatusCode.ERROR)), 0.0).reason == "errors"
    assert engine.decide(view(make_span(1)), 0.0).reason == "all"


class _Broken:
    name = "broken"

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        raise RuntimeError("boom")


def test_engine_counts_policy_errors_as_no_vote() -> None:
    engine = DecisionEngine([BooleanAttribute(name="force", key="force", value=True)])
    engine._evaluators.insert(0, (_Broken().evaluate, [0, 0, 0], "broken"))
    verdict = engine.decide(view(make_span(1, attributes={"force": True})), 0.0)
    assert verdict.keep
    assert engine.policy_errors["broken"] == 1


def test_engine_probability_for_baseline_keeps() -> None:
    policies = [StatusCodeFilter(name="e", status_codes=("ERROR",)), Probabilistic(name="b", sampling_percentage=25)]
    engine = DecisionEngine(policies)  # no budget: 2,000 traces at one instant
    rng = random.Random(5)
    ids = [rng.getrandbits(128) for _ in range(2000)]  # FNV needs random ids: sequential ones hash alike
    verdicts = [engine.decide(view(make_span(t), trace_id=t), 0.0) for t in ids]
    kept = [v for v in verdicts if v.keep]
    assert all(v.reason == "b" and v.probability == pytest.approx(0.25) for v in kept)
    assert engine.policy_votes[("e", "not_sampled")] == 2000
    assert 0.2 < len(kept) / len(verdicts) < 0.3
