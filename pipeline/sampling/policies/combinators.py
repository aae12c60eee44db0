"""Policies made of policies: ``and``, ``not``, ``drop`` and ``composite``, with their exact regions.

* ``and`` / ``drop``: the vote is positive iff every sub-policy's is; the region is the intersection of the
  sub-regions. Like the Collector, evaluation stops at a sub-policy that cannot match (a deterministic negative);
  unlike it, a *random* negative does not stop evaluation, because the later sub-policies' regions are needed for
  the exact probability (the trace would have matched for other values of its uniform).
* ``not``: flips sampled / not sampled; the region is the complement.
* ``composite``: sub-policies in *listing order* (upstream's ``composite_helper.go`` builds them in the order of
  ``composite_sub_policy``; ``policy_order`` is accepted and ignored, as there). The first sub-policy that samples
  spends from its share of ``max_total_spans_per_second``. Sieve thins each share with a known probability
  (``min(1, share / offered spans per second)``) instead of upstream's first-come per-second counter, so the kept
  traces carry their true probability.

Sub-policies drawing from different uniforms (``probabilistic`` with distinct ``hash_salt`` values) combine as
independent events: an approximation, exact only when they really are independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.sampling.decision import Decision, Vote
from pipeline.sampling.rates import DecayedRate
from pipeline.sampling.region import (
    EMPTY,
    FULL,
    Region,
    below,
    complement,
    contains,
    difference,
    intersect,
    measure,
    prefix,
    union,
)
from pipeline.sampling.trace import TraceView

from .base import BuildContext, Policy, PolicySpec
from .hashing import DEFAULT_HASH_SALT

DEFAULT_SOURCE = "fnv:" + DEFAULT_HASH_SALT
COMPOSITE_HALF_LIFE_S = 5.0


def _meet(region: Region, source: str | None, d: Decision) -> tuple[Region, str | None]:
    """Intersect the region so far (of ``source``, or deterministic when None) with a random vote's region."""
    if source is None or d.source == source:
        return intersect(region, d.region), d.source
    # Different uniforms: independent events, expressed on a synthetic uniform of the same measure.
    return below(measure(region) * d.probability), "mixed(" + "|".join(sorted({source, str(d.source)})) + ")"


class _AndEvaluator:
    def __init__(self, name: str, subs: Sequence[Policy], drop: bool) -> None:
        self.name = name
        self._subs = tuple(subs)
        self._drop = drop

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        region: Region = FULL
        source: str | None = None
        matched = True
        for sub in self._subs:
            d = sub.evaluate(trace, now)
            if d.vote is Vote.NOT_SAMPLED:
                matched = False
            if d.source is None:
                if not d.region:  # a filter that did not match: nothing can make this match
                    region = EMPTY
                    break
                continue
            region, source = _meet(region, source, d)
        if self._drop:
            return Decision(Vote.DROPPED if matched else Vote.NOT_SAMPLED, self.name, region, source, is_drop=True)
        return Decision(Vote.SAMPLED if matched else Vote.NOT_SAMPLED, self.name, region, source)


@dataclass(frozen=True)
class And(PolicySpec):
    """Sampled only if every sub-policy samples (an empty list samples everything, as upstream's loop)."""

    TYPE = "and"
    and_sub_policy: tuple[PolicySpec, ...] = ()

    @property
    def stateful(self) -> bool:
        return any(p.stateful for p in self.and_sub_policy)

    def warnings(self) -> list[str]:
        return [w for p in self.and_sub_policy for w in p.warnings()]

    def build(self, ctx: BuildContext) -> Policy:
        return _AndEvaluator(self.name, [s.build(ctx) for s in self.and_sub_policy], drop=False)


@dataclass(frozen=True)
class Drop(PolicySpec):
    """Drops the trace, whatever any other policy says, if every sub-policy samples."""

    TYPE = "drop"
    drop_sub_policy: tuple[PolicySpec, ...] = ()

    @property
    def stateful(self) -> bool:
        return any(p.stateful for p in self.drop_sub_policy)

    def warnings(self) -> list[str]:
        return [w for p in self.drop_sub_policy for w in p.warnings()]

    def build(self, ctx: BuildContext) -> Policy:
        return _AndEvaluator(self.name, [s.build(ctx) for s in self.drop_sub_policy], drop=True)


class _NotEvaluator:
    def __init__(self, name: str, sub: Policy) -> None:
        self.name = name
        self._sub = sub

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        d = self._sub.evaluate(trace, now)
        vote = Vote.SAMPLED if d.vote is Vote.NOT_SAMPLED else Vote.NOT_SAMPLED
        return Decision(vote, self.name, complement(d.region), d.source)


@dataclass(frozen=True)
class Not(PolicySpec):
    """Inverts one sub-policy's sampled / not-sampled vote (contrib PR #44378)."""

    TYPE = "not"
    not_sub_policy: PolicySpec | None = None

    def __post_init__(self) -> None:
        self._require(self.not_sub_policy is not None, "not_sub_policy", None, "one policy")

    @property
    def stateful(self) -> bool:
        return self.not_sub_policy is not None and self.not_sub_policy.stateful

    def warnings(self) -> list[str]:
        return self.not_sub_policy.warnings() if self.not_sub_policy is not None else []

    def build(self, ctx: BuildContext) -> Policy:
        assert self.not_sub_policy is not None
        return _NotEvaluator(self.name, self.not_sub_policy.build(ctx))


@dataclass(frozen=True)
class RateAllocation:
    """A composite policy's share of its throughput for one sub-policy, in percent."""

    policy: str
    percent: int


class _CompositeEvaluator:
    def __init__(self, name: str, max_total: float, subs: Sequence[tuple[Policy, float]]) -> None:
        self.name = name
        self._max_total = max_total
        self._subs = tuple(subs)
        self._offered = [DecayedRate(COMPOSITE_HALF_LIFE_S) for _ in subs]

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        covered: Region = EMPTY
        source: str | None = None
        firsts: list[Region] = []
        for sub, _share in self._subs:
            d = sub.evaluate(trace, now)
            if d.source is not None:
                source = d.source if source is None or source == d.source else source
            firsts.append(difference(d.region, covered))  # where this sub-policy is the first to sample
            covered = union(covered, d.region)
            if covered == FULL:
                break
        spans = trace.span_count
        shares: list[float] = []
        expected = 0.0
        for i, first in enumerate(firsts):
            offered = self._offered[i]
            rate = offered.rate(now, min_span_s=1.0)  # before this trace: the probability must not depend on it
            offered.add(measure(first) * spans, now)
            share = self._subs[i][1]
            p = 0.0 if share <= 0 else (1.0 if rate <= share else share / rate)
            shares.append(p)
            expected += p * rate
        scale = 1.0 if expected <= self._max_total else (self._max_total / expected if self._max_total > 0 else 0.0)
        region = union(*[prefix(first, p * scale) for first, p in zip(firsts, shares, strict=True)] or [EMPTY])
        source = source or DEFAULT_SOURCE
        u = trace.uniform(source[4:]) if source.startswith("fnv:") else 0.0
        vote = Vote.SAMPLED if region and contains(region, u) else Vote.NOT_SAMPLED
        return Decision(vote, self.name, region, source)


@dataclass(frozen=True)
class Composite(PolicySpec):
    """Ordered sub-policies sharing a spans/s budget; the first sub-policy that samples spends its share.

    Sub-policies listed in ``rate_allocation`` get ``percent`` of ``max_total_spans_per_second`` (a percent <= 0
    means an equal share, like upstream). Sieve gives sub-policies *not* listed the unallocated remainder, split
    equally, so an ``always_sample`` member fills leftover capacity as the README describes (upstream gives them
    nothing; contrib#35971). The total is enforced across sub-policies. Allocations summing over 100 % are
    accepted, as upstream does.
    """

    TYPE = "composite"
    max_total_spans_per_second: int = 0
    policy_order: tuple[str, ...] = ()
    composite_sub_policy: tuple[PolicySpec, ...] = ()
    rate_allocation: tuple[RateAllocation, ...] = ()

    @property
    def stateful(self) -> bool:
        return True

    def warnings(self) -> list[str]:
        out: list[str] = []
        names = [p.name for p in self.composite_sub_policy]
        if self.policy_order and list(self.policy_order) != names[: len(self.policy_order)]:
            out.append(
                f"policies.{self.name}: policy_order is ignored (as by the Collector): sub-policies are evaluated "
                f"in listing order {names}"
            )
        unknown = [a.policy for a in self.rate_allocation if a.policy not in names]
        if unknown:
            out.append(f"policies.{self.name}: rate_allocation names no sub-policy {unknown}: ignored")
        total = sum(max(0, a.percent) for a in self.rate_allocation)
        if total > 100:
            out.append(f"policies.{self.name}: rate_allocation sums to {total} %; the total is still capped")
        return out + [w for p in self.composite_sub_policy for w in p.warnings()]

    def allocations(self) -> dict[str, float]:
        """Spans per second for each sub-policy name."""
        max_total = float(self.max_total_spans_per_second)
        subs = self.composite_sub_policy
        if not subs:
            return {}
        equal = max_total / len(subs)
        names = {p.name for p in subs}
        listed = {
            a.policy: (a.percent / 100 * max_total if a.percent > 0 else equal)
            for a in self.rate_allocation
            if a.policy in names
        }
        unlisted = [p.name for p in subs if p.name not in listed]
        remainder = max(0.0, max_total - sum(listed.values()))
        share = remainder / len(unlisted) if unlisted else 0.0
        return {p.name: listed.get(p.name, share) for p in subs}

    def build(self, ctx: BuildContext) -> Policy:
        alloc = self.allocations()
        subs = [(p.build(ctx), alloc[p.name]) for p in self.composite_sub_policy]
        return _CompositeEvaluator(self.name, float(self.max_total_spans_per_second), subs)
