"""Policies made of policies: ``and``, ``not``, ``drop`` and ``composite``.

``and``/``drop`` short-circuit on the first negative sub-vote like the Collector (so a limiter inside an ``and``
only spends tokens when the earlier filters passed); the probability of a short-circuited vote is computed from
the sub-votes evaluated so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.sampling.combine import all_probability
from pipeline.sampling.decision import NEGATIVE_VOTES, Decision, Vote
from pipeline.sampling.trace import TraceView

from .base import BuildContext, Policy, PolicySpec
from .limiting import AdmitRatio


def _all_positive(subs: Sequence[Policy], trace: TraceView, now: float) -> tuple[bool, float, str | None]:
    evaluated: list[Decision] = []
    for sub in subs:
        decision = sub.evaluate(trace, now)
        evaluated.append(decision)
        if decision.vote in NEGATIVE_VOTES:
            probability, randomness = all_probability(evaluated)
            return False, probability, randomness
    probability, randomness = all_probability(evaluated)
    return True, probability, randomness


class _AndEvaluator:
    def __init__(self, name: str, subs: Sequence[Policy], drop: bool) -> None:
        self.name = name
        self._subs = tuple(subs)
        self._drop = drop

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        matched, probability, randomness = _all_positive(self._subs, trace, now)
        if self._drop:
            vote = Vote.DROPPED if matched else Vote.NOT_SAMPLED
            return Decision(vote, probability, self.name, randomness, is_drop=True)
        return Decision(Vote.SAMPLED if matched else Vote.NOT_SAMPLED, probability, self.name, randomness)


@dataclass(frozen=True)
class And(PolicySpec):
    """Sampled only if every sub-policy samples."""

    TYPE = "and"
    and_sub_policy: tuple[PolicySpec, ...] = ()

    def __post_init__(self) -> None:
        self._require(bool(self.and_sub_policy), "and_sub_policy", [], "a non-empty list of policies")

    def build(self, ctx: BuildContext) -> Policy:
        return _AndEvaluator(self.name, [s.build(ctx) for s in self.and_sub_policy], drop=False)


@dataclass(frozen=True)
class Drop(PolicySpec):
    """Drops the trace, whatever any other policy says, if every sub-policy samples."""

    TYPE = "drop"
    drop_sub_policy: tuple[PolicySpec, ...] = ()

    def __post_init__(self) -> None:
        self._require(bool(self.drop_sub_policy), "drop_sub_policy", [], "a non-empty list of policies")

    def build(self, ctx: BuildContext) -> Policy:
        return _AndEvaluator(self.name, [s.build(ctx) for s in self.drop_sub_policy], drop=True)


class _NotEvaluator:
    def __init__(self, name: str, sub: Policy) -> None:
        self.name = name
        self._sub = sub

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        d = self._sub.evaluate(trace, now)
        # Upstream flips Sampled and NotSampled and lets every other decision through unchanged.
        flipped = {Vote.SAMPLED: Vote.NOT_SAMPLED, Vote.NOT_SAMPLED: Vote.SAMPLED}.get(d.vote)
        if flipped is None:
            return Decision(d.vote, d.probability, self.name, d.randomness)
        randomness = None if d.randomness is None else "not(" + d.randomness + ")"
        return Decision(flipped, 1.0 - d.probability, self.name, randomness)


@dataclass(frozen=True)
class Not(PolicySpec):
    """Inverts one sub-policy's sampled / not-sampled vote."""

    TYPE = "not"
    not_sub_policy: PolicySpec | None = None

    def __post_init__(self) -> None:
        self._require(self.not_sub_policy is not None, "not_sub_policy", None, "one policy")

    def build(self, ctx: BuildContext) -> Policy:
        assert self.not_sub_policy is not None
        return _NotEvaluator(self.name, self.not_sub_policy.build(ctx))


@dataclass(frozen=True)
class RateAllocation:
    policy: str
    percent: int


class _CompositeEvaluator:
    def __init__(self, name: str, max_total: int, subs: Sequence[tuple[Policy, float]]) -> None:
        self.name = name
        self._max_total = max_total
        self._subs = tuple(subs)
        self._spent = [0] * len(self._subs)
        self._second: int | None = None
        self._ratio = AdmitRatio()

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        second = math.floor(now)
        if second != self._second:
            self._second = second
            self._spent = [0] * len(self._subs)
        for i, (sub, allocated) in enumerate(self._subs):
            d = sub.evaluate(trace, now)
            if not d.positive:
                continue
            spans = self._spent[i] + trace.span_count
            admitted = spans <= allocated and sum(self._spent) + trace.span_count <= self._max_total
            if admitted:
                self._spent[i] = spans
            ratio = self._ratio.record(admitted, now)
            vote = Vote.SAMPLED if admitted else Vote.NOT_SAMPLED
            return Decision(vote, d.probability * ratio, self.name, "composite:" + self.name)
        return Decision(Vote.NOT_SAMPLED, 0.0, self.name)


@dataclass(frozen=True)
class Composite(PolicySpec):
    """Ordered sub-policies sharing a spans/s budget; the first sub-policy that samples spends its share.

    Sub-policies listed in ``rate_allocation`` get ``percent`` of ``max_total_spans_per_second`` (a percent <= 0
    means an equal share, like upstream). Sieve gives sub-policies *not* listed the unallocated remainder, split
    equally, so an ``always_sample`` member fills leftover capacity as the README describes (upstream gives them
    nothing; contrib#35971). The total is enforced across sub-policies.
    """

    TYPE = "composite"
    max_total_spans_per_second: int = 0
    policy_order: tuple[str, ...] = ()
    composite_sub_policy: tuple[PolicySpec, ...] = ()
    rate_allocation: tuple[RateAllocation, ...] = ()

    def __post_init__(self) -> None:
        self._require(
            self.max_total_spans_per_second > 0,
            "max_total_spans_per_second",
            self.max_total_spans_per_second,
            "an integer > 0",
        )
        self._require(bool(self.composite_sub_policy), "composite_sub_policy", [], "a non-empty list of policies")
        names = [p.name for p in self.composite_sub_policy]
        for name in self.policy_order:
            self._require(name in names, "policy_order", name, f"one of the sub-policy names {names}")
        for alloc in self.rate_allocation:
            self._require(alloc.policy in names, "rate_allocation", alloc.policy, f"one of {names}")
        total = sum(max(0, a.percent) for a in self.rate_allocation)
        self._require(total <= 100, "rate_allocation", total, "percentages summing to at most 100")

    def allocations(self) -> dict[str, float]:
        """Spans per second for each sub-policy name."""
        max_total = float(self.max_total_spans_per_second)
        equal = max_total / len(self.composite_sub_policy)
        listed = {a.policy: (a.percent / 100 * max_total if a.percent > 0 else equal) for a in self.rate_allocation}
        unlisted = [p.name for p in self.composite_sub_policy if p.name not in listed]
        remainder = max(0.0, max_total - sum(listed.values()))
        share = remainder / len(unlisted) if unlisted else 0.0
        return {p.name: listed.get(p.name, share) for p in self.composite_sub_policy}

    def build(self, ctx: BuildContext) -> Policy:
        by_name = {p.name: p for p in self.composite_sub_policy}
        order = list(self.policy_order) + [n for n in by_name if n not in self.policy_order]
        alloc = self.allocations()
        subs = [(by_name[n].build(ctx), alloc[n]) for n in order]
        return _CompositeEvaluator(self.name, self.max_total_spans_per_second, subs)
