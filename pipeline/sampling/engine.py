"""Evaluates a trace against the configured policies, applies the combining rules, then the kept-volume budget.

``drop`` policies are evaluated first (any match ends evaluation, like upstream). With ``sample_on_first_match``
evaluation stops at the first *deterministic* ``Sampled`` vote; after a random one it goes on, because the later
policies' regions are needed for the exact probability (their votes cannot change the outcome or the reason). A
policy that raises counts as no vote (the Collector's ``sampling_policy_evaluation_error``).

The verdict's probability is ``P(policies keep) * budget scale`` (:mod:`pipeline.sampling.combine`,
:mod:`pipeline.sampling.budget`): the probability that the whole sampler keeps a trace like this one, given what
it had seen before. Every vote per policy is counted (``policy_votes``, the Collector's
``count_traces_sampled{policy, decision}``), a drop policy's not-sampled votes included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TypedDict

from opentelemetry.util.types import AttributeValue

from pipeline.names.sampling import Outcome, Reason
from pipeline.sampling.boost import ErrorSignal
from pipeline.sampling.budget import BudgetSettings, KeptBudget
from pipeline.sampling.combine import MIN_PROBABILITY, Combined, combine
from pipeline.sampling.decision import Decision, Tier, Verdict, Vote
from pipeline.sampling.policies import BuildContext, Drop, ErrorBoost, PolicySpec, Probabilistic
from pipeline.sampling.policies.hashing import DEFAULT_HASH_SALT, independent_uniform
from pipeline.sampling.trace import TraceView

BOOSTED_ABOVE = 1.001  # a key counts as boosted while its boost factor is above this
_BUDGET_TAG = 0x5EB0D6E7  # names the budget's own uniform of the trace
_VOTE_SLOT = {Vote.SAMPLED: 0, Vote.NOT_SAMPLED: 1, Vote.DROPPED: 2}


class EffectiveRate(TypedDict):
    """One key's keep probability: of an ordinary trace before any boost (``base``), the error boost, the budget's
    scale, and the probability the last such trace was kept with (``effective``)."""

    base: float
    boost: float
    budget_scale: float
    effective: float


class DecisionEngine:
    """Built policy evaluators, the error signal they share with the rest of the pipeline, and the budget."""

    def __init__(
        self,
        policies: Sequence[PolicySpec],
        *,
        sample_on_first_match: bool = False,
        budget: BudgetSettings | None = None,
    ) -> None:
        ctx = BuildContext()
        drops = [p for p in policies if isinstance(p, Drop)]
        others = [p for p in policies if not isinstance(p, Drop)]
        self._policies = [p.build(ctx) for p in (*drops, *others)]
        self._has_drop = bool(drops)
        self._observers = list(ctx.observers)
        self._markers = list(ctx.markers)
        self._first_match = sample_on_first_match
        if ctx.signals:
            self.error_signal = ctx.signals[0]
            self._own_signal = False
        else:
            # No error_boost policy: the processor still keeps the signal current for reports and the log sampler.
            self.error_signal = ErrorSignal()
            self._own_signal = True
        self.budget = KeptBudget(budget) if budget is not None and budget.enabled else None
        self.base_probability = _base_probability(others)
        self.policy_errors: Counter[str] = Counter()
        self._votes = [[0, 0, 0] for _ in self._policies]  # per policy: sampled, not_sampled, dropped
        self._evaluators = [(p.evaluate, v, p.name) for p, v in zip(self._policies, self._votes, strict=True)]
        self._last: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (policies' p, budget scale)

    def _evaluate(self, trace: TraceView, now: float) -> list[Decision]:
        if self._own_signal:
            self.error_signal.observe(trace.key, trace.has_error, now)
        for observer in self._observers:
            try:
                observer.observe(trace, now)
            except Exception:
                self.policy_errors["observe"] += 1
        decisions: list[Decision] = []
        append = decisions.append
        first_match = self._first_match
        not_sampled, sampled = Vote.NOT_SAMPLED, Vote.SAMPLED
        for evaluate, slots, name in self._evaluators:
            try:
                decision = evaluate(trace, now)
            except Exception:
                self.policy_errors[name] += 1
                continue
            append(decision)
            vote = decision.vote
            if vote is not_sampled:
                slots[1] += 1
            elif vote is sampled:
                slots[0] += 1
                if first_match and decision.source is None:
                    break  # the union is already everything: later policies cannot change the probability
            else:
                slots[2] += 1
                break  # dropped
        return decisions

    @property
    def policy_votes(self) -> Counter[tuple[str, str]]:
        """Votes per (policy, decision), like the Collector's ``count_traces_sampled{policy, decision}``."""
        out: Counter[tuple[str, str]] = Counter()
        for policy, slots in zip(self._policies, self._votes, strict=True):
            for vote, slot in _VOTE_SLOT.items():
                if slots[slot]:
                    out[(policy.name, vote.value)] += slots[slot]
        return out

    def decide(self, trace: TraceView, now: float) -> Verdict:
        """The verdict for a finished (or bound-hitting) trace."""
        return self._verdict(trace, combine(self._evaluate(trace, now)), now)

    def decide_on_ingest(self, batch: TraceView, now: float) -> Verdict | None:
        """``sampling_strategy: span-ingest``: a terminal verdict from the spans just received, or None (pending).

        As upstream's ``makeDecisionOnSpanIngest``: a drop policy that did not match may still match a later span,
        so while any drop policy is configured only a drop is terminal; otherwise a sampled vote is.
        """
        decisions = self._evaluate(batch, now)
        combined = combine(decisions)
        if combined.outcome is Outcome.DROPPED:
            return self._verdict(batch, combined, now)
        if combined.outcome is Outcome.SAMPLED and not self._has_drop:
            return self._verdict(batch, combined, now)
        return None

    def _verdict(self, trace: TraceView, combined: Combined, now: float) -> Verdict:
        if combined.outcome is Outcome.DROPPED:
            return Verdict(Outcome.DROPPED, 0.0, combined.reason, Tier.BASELINE)
        key = trace.key
        if combined.deterministic:
            tier = Tier.PRIORITY
        elif self.error_signal.boost(key, now) > BOOSTED_ABOVE:
            tier = Tier.BOOSTED
        else:
            tier = Tier.BASELINE
        scale = 1.0
        budget = self.budget
        if budget is not None:
            scale = budget.scale(tier, now)
            budget.observe(tier, combined.probability, now)
        if tier is not Tier.PRIORITY:
            self._last[key] = (combined.probability, scale)
        probability = combined.probability * scale
        if combined.outcome is not Outcome.SAMPLED:
            return Verdict(combined.outcome, probability, combined.reason, tier)
        if scale < 1.0 and independent_uniform(_BUDGET_TAG, trace.trace_id) >= scale:
            return Verdict(Outcome.NOT_SAMPLED, probability, Reason.BUDGET, tier)
        marks = self._marks(trace) if self._markers else None
        return Verdict(Outcome.SAMPLED, max(MIN_PROBABILITY, probability), combined.reason, tier, marks)

    def _marks(self, trace: TraceView) -> Mapping[int, Mapping[str, AttributeValue]] | None:
        """What the markers (the N+1 detector) add to a kept trace's spans; a marker that raises adds nothing."""
        merged: dict[int, dict[str, AttributeValue]] = {}
        for marker in self._markers:
            try:
                found = marker.marks(trace)
            except Exception:
                self.policy_errors["marks"] += 1
                continue
            for span_id, attributes in found.items():
                merged.setdefault(span_id, {}).update(attributes)
        return merged or None

    def effective_rates(self, now: float) -> dict[str, EffectiveRate]:
        """Per key ``"service/operation"``: the base keep probability of an ordinary (non-error, fast) trace, the
        error boost, the budget scale, and the effective probability the last such trace was kept with."""
        out: dict[str, EffectiveRate] = {}
        for (service, operation), (p, scale) in list(self._last.items()):
            out[f"{service}/{operation}"] = {
                "base": round(self.base_probability, 4),
                "boost": round(self.error_signal.boost((service, operation), now), 3),
                "budget_scale": round(scale, 4),
                "effective": round(p * scale, 4),
            }
        return out

    def budget_scales(self, now: float) -> dict[Tier, float]:
        return self.budget.scales(now) if self.budget is not None else {}


def _base_probability(policies: Sequence[PolicySpec]) -> float:
    """The keep probability of an ordinary trace before any boost: the largest default-salt random rate."""
    base = 0.0
    for p in policies:
        if isinstance(p, Probabilistic) and p.hash_salt in ("", DEFAULT_HASH_SALT):
            base = max(base, p.probability)
        elif isinstance(p, ErrorBoost):
            base = max(base, p.base_percentage / 100)
    return base
