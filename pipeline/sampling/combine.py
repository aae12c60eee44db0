"""The Collector's combining rules, plus the keep probability they imply.

Final decision (``processor/tailsamplingprocessor`` README):

1. any ``drop`` policy matched -> dropped;
2. else any ``InvertNotSampled`` -> not sampled (deprecated ``invert_match``);
3. else any ``Sampled`` -> sampled, the first such policy is the reason;
4. else any ``InvertSampled`` and no ``NotSampled`` -> sampled;
5. else not sampled.

Keep probability. Votes drawn from the same randomness are nested (each keeps iff ``u < p``), so their union keeps
with probability ``max(p)``; votes from different sources are treated as independent, ``1 - prod(1 - p)``;
deterministic matches contribute 1. A random ``drop`` that did not fire multiplies by ``1 - p_drop``. With only
filters and Collector-hash probabilistic policies (the default configuration) this is exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pipeline.sampling.decision import (
    NOT_SAMPLED_REASON,
    Decision,
    Outcome,
    Verdict,
    Vote,
)

MIN_PROBABILITY = 2.0**-56  # the smallest probability a 56-bit threshold can express


def _groups(decisions: Iterable[Decision], reduce_max: bool) -> dict[str | None, float]:
    groups: dict[str | None, float] = {}
    for d in decisions:
        p = d.probability
        old = groups.get(d.randomness)
        if old is None:
            groups[d.randomness] = p
        else:
            groups[d.randomness] = max(old, p) if reduce_max else min(old, p)
    return groups


def any_probability(decisions: Iterable[Decision]) -> float:
    """P(at least one of these votes is positive)."""
    log_miss = 0.0  # log1p / expm1 keep tiny probabilities from rounding to 0
    for p in _groups(decisions, reduce_max=True).values():
        p = min(1.0, max(0.0, p))
        if p >= 1.0:
            return 1.0
        log_miss += math.log1p(-p)
    return -math.expm1(log_miss)


def all_probability(decisions: Sequence[Decision]) -> tuple[float, str | None]:
    """P(every vote is positive), and the randomness source of the result."""
    groups = _groups(decisions, reduce_max=False)
    p = 1.0
    for value in groups.values():
        p *= min(1.0, max(0.0, value))
    random_groups = sorted(g for g in groups if g is not None)
    if not random_groups:
        return p, None
    if len(random_groups) == 1:
        return p, random_groups[0]
    return p, "all(" + "|".join(random_groups) + ")"


def combine(decisions: Sequence[Decision]) -> Verdict:
    """Apply the Collector's rules to the top-level votes, in policy order."""
    drops = [d for d in decisions if d.is_drop]
    for d in drops:
        if d.vote is Vote.DROPPED:
            return Verdict(Outcome.DROPPED, 0.0, d.reason)
    votes = [d for d in decisions if not d.is_drop]
    for d in votes:
        if d.vote is Vote.INVERT_NOT_SAMPLED:
            return Verdict(Outcome.NOT_SAMPLED, 0.0, d.reason)
    reason: str | None = next((d.reason for d in votes if d.vote is Vote.SAMPLED), None)
    if reason is None and not any(d.vote is Vote.NOT_SAMPLED for d in votes):
        reason = next((d.reason for d in votes if d.vote is Vote.INVERT_SAMPLED), None)
    if reason is None:
        return Verdict(Outcome.NOT_SAMPLED, 0.0, NOT_SAMPLED_REASON)
    probability = any_probability(votes)
    for d in drops:
        probability *= 1.0 - min(1.0, max(0.0, d.probability))
    if probability <= 0.0:
        # The vote happened, so the estimate is wrong somewhere (e.g. a limiter with no history): claim nothing.
        probability = 1.0
    return Verdict(Outcome.SAMPLED, max(MIN_PROBABILITY, min(1.0, probability)), reason)
