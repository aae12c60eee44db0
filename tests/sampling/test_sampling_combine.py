"""The README's combining rules, and the keep probability they imply."""

from __future__ import annotations

import random

import pytest
from opentelemetry.trace import StatusCode

from pipeline.sampling.combine import MIN_PROBABILITY, all_probability, any_probability, combine
from pipeline.sampling.decision import Decision, Outcome, Vote
from pipeline.sampling.engine import DecisionEngine
from pipeline.sampling.policies import (
    AlwaysSample,
    BooleanAttribute,
    Drop,
    Probabilistic,
    StatusCodeFilter,
    StringAttribute,
)
from pipeline.sampling.testing import make_span
from pipeline.sampling.trace import TraceView

S, N, IS, INS, D = Vote.SAMPLED, Vote.NOT_SAMPLED, Vote.INVERT_SAMPLED, Vote.INVERT_NOT_SAMPLED, Vote.DROPPED


def d(vote: Vote, name: str, p: float | None = None, randomness: str | None = None) -> Decision:
    probability = p if p is not None else (1.0 if vote in (S, IS, D) else 0.0)
    return Decision(vote, probability, name, randomness, is_drop=vote is D)


@pytest.mark.parametrize(
    ("votes", "outcome", "reason"),
    [
        ([], Outcome.NOT_SAMPLED, "none"),
        ([d(N, "a")], Outcome.NOT_SAMPLED, "none"),
        ([d(S, "a")], Outcome.SAMPLED, "a"),
        ([d(N, "a"), d(S, "b"), d(S, "c")], Outcome.SAMPLED, "b"),  # first sampled is the reason
        ([d(S, "a"), d(D, "drop")], Outcome.DROPPED, "drop"),  # drop beats everything
        ([d(D, "drop"), d(S, "a"), d(IS, "i")], Outcome.DROPPED, "drop"),
        ([d(S, "a"), d(INS, "i")], Outcome.NOT_SAMPLED, "i"),  # inverted not-sampled vetoes (deprecated)
        ([d(IS, "i")], Outcome.SAMPLED, "i"),  # inverted sampled with no not-sampled keeps
        ([d(IS, "i"), d(N, "a")], Outcome.NOT_SAMPLED, "none"),  # ... but any not-sampled blocks it
        ([d(IS, "i"), d(S, "a")], Outcome.SAMPLED, "a"),
        ([Decision(N, 0.0, "drop", is_drop=True), d(S, "a")], Outcome.SAMPLED, "a"),  # a drop that did not match
    ],
)
def test_combining_rules(votes: list[Decision], outcome: Outcome, reason: str) -> None:
    verdict = combine(votes)
    assert verdict.outcome is outcome
    assert verdict.reason == reason


def test_probability_of_filters_is_one() -> None:
    assert combine([d(S, "errors"), d(N, "p", 0.1, "fnv:x")]).probability == 1.0


def test_probability_nested_randomness_takes_the_max() -> None:
    votes = [d(S, "p10", 0.1, "fnv:x"), d(N, "boost", 0.05, "fnv:x")]
    assert combine(votes).probability == pytest.approx(0.1)


def test_probability_independent_randomness_combines() -> None:
    votes = [d(S, "a", 0.1, "fnv:x"), d(N, "b", 0.2, "fnv:y")]
    assert combine(votes).probability == pytest.approx(1 - 0.9 * 0.8)


def test_probability_random_drop_reduces_it() -> None:
    votes = [Decision(N, 0.5, "drop", "fnv:z", is_drop=True), d(S, "a", 0.1, "fnv:x")]
    assert combine(votes).probability == pytest.approx(0.05)


def test_probability_never_below_threshold_resolution() -> None:
    assert combine([d(S, "a", 1e-30, "fnv:x")]).probability == MIN_PROBABILITY


def test_all_probability_groups() -> None:
    p, randomness = all_probability([d(S, "f"), d(S, "p", 0.3, "fnv:x"), d(S, "q", 0.2, "fnv:x")])
    assert (p, randomness) == (pytest.approx(0.2), "fnv:x")
    p, randomness = all_probability([d(S, "p", 0.5, "a"), d(S, "q", 0.5, "b")])
    assert p == pytest.approx(0.25)
    assert randomness == "all(a|b)"
    assert any_probability([]) == 0.0


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
    engine._policies.insert(0, _Broken())
    verdict = engine.decide(view(make_span(1, attributes={"force": True})), 0.0)
    assert verdict.keep
    assert engine.policy_errors["broken"] == 1


def test_engine_probability_for_baseline_keeps() -> None:
    policies = [StatusCodeFilter(name="e", status_codes=("ERROR",)), Probabilistic(name="b", sampling_percentage=25)]
    engine = DecisionEngine(policies)
    rng = random.Random(5)
    ids = [rng.getrandbits(128) for _ in range(2000)]  # FNV needs random ids: sequential ones hash alike
    verdicts = [engine.decide(view(make_span(t), trace_id=t), 0.0) for t in ids]
    kept = [v for v in verdicts if v.keep]
    assert all(v.reason == "b" and v.probability == pytest.approx(0.25) for v in kept)
    assert 0.2 < len(kept) / len(verdicts) < 0.3
