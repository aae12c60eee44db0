"""The Collector's combining rules, and the exact keep probability they imply.

Final decision (``processor/tailsamplingprocessor`` README, "Policy Decision Flow", as of v0.144 where the
deprecated inverted decisions were switched off):

1. any ``drop`` policy matched -> dropped (its name is the reason);
2. else any ``Sampled`` vote -> sampled, the first such policy in listing order is the reason;
3. else not sampled. A ``drop`` policy that did not match is an ordinary ``NotSampled`` vote.

Keep probability. Every vote is "sampled iff the trace's uniform of its ``source`` lies in its region"
(:mod:`pipeline.sampling.region`); deterministic votes have no source and the region everything/nothing. Per
source, the kept set is the union of the sampling regions minus the union of the drop regions. Votes drawn from the
same uniform nest, so this is exact; different sources (a ``probabilistic`` policy with its own ``hash_salt``) are
independent hashes of the trace id and combine as independent events::

    P(keep) = prod_g P(no drop in g) - prod_g P(no drop and no keep in g)

With the default configuration every random policy shares one source, so the stamped probability is exactly the
probability that the whole policy set keeps a trace like this one, whichever policy fired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.names.sampling import Outcome, Reason
from pipeline.sampling.decision import Decision, Vote
from pipeline.sampling.region import EMPTY, FULL, Region, complement, difference, measure, union

MIN_PROBABILITY = 2.0**-56  # the smallest probability a 56-bit threshold can express


@dataclass(frozen=True, slots=True)
class Combined:
    """The policies' verdict before the kept-volume budget: outcome, reason, the probability that the policies
    keep a trace like this one (also when this one was not kept), and whether a deterministic policy (errors,
    latency, attributes) voted to keep it."""

    outcome: Outcome
    reason: str
    probability: float
    deterministic: bool


def keep_probability(decisions: Sequence[Decision]) -> float:
    """P(some policy samples and no drop policy drops), from the votes' regions."""
    # The common case without set algebra: no drop region, keeps that are FULL or one [0, p) of one uniform.
    best = 0.0
    source: str | None = None
    for d in decisions:
        region = d.region
        if not region:
            continue
        if d.is_drop or len(region) != 1 or region[0][0] != 0.0:
            return _keep_probability(decisions)
        if d.source is None:
            return 1.0  # a deterministic keep (FULL)
        if source is None:
            source = d.source
        elif source != d.source:
            return _keep_probability(decisions)
        best = max(best, region[0][1])
    return best


def _has_random_drop(decisions: Sequence[Decision]) -> bool:
    return any(d.is_drop and d.region and d.source is not None for d in decisions)


def _keep_probability(decisions: Sequence[Decision]) -> float:
    keeps: dict[str | None, list[Region]] = {}
    drops: dict[str | None, list[Region]] = {}
    for d in decisions:
        if d.region:  # an empty region (a filter that did not match) changes nothing
            target = drops if d.is_drop else keeps
            target.setdefault(d.source, []).append(d.region)
    if not drops and any(r == FULL for r in keeps.get(None, ())):
        return 1.0  # a deterministic keep and no drop policy: the common case, without the set algebra
    no_drop = 1.0
    no_drop_no_keep = 1.0
    for source in set(keeps) | set(drops):
        dropped = union(*drops.get(source, [EMPTY]))
        kept = difference(union(*keeps.get(source, [EMPTY])), dropped)
        allowed = measure(complement(dropped))
        no_drop *= allowed
        no_drop_no_keep *= max(0.0, allowed - measure(kept))
    return max(0.0, min(1.0, no_drop - no_drop_no_keep))


def combine(decisions: Sequence[Decision]) -> Combined:
    """Apply the Collector's rules to the top-level votes (drop policies first, then listing order)."""
    reason: str | None = None
    deterministic = False
    for d in decisions:
        vote = d.vote
        if vote is Vote.NOT_SAMPLED:
            continue
        if vote is Vote.DROPPED:
            return Combined(Outcome.DROPPED, d.reason, 0.0, False)
        if reason is None:
            reason = d.reason
        if d.source is None:
            deterministic = True
    if reason is None:
        # Not kept this time; the probability is still what the policies would keep such a trace with (the
        # budget's demand).
        return Combined(Outcome.NOT_SAMPLED, Reason.NONE, keep_probability(decisions), False)
    probability = 1.0 if deterministic and not _has_random_drop(decisions) else keep_probability(decisions)
    probability = max(MIN_PROBABILITY, probability)
    return Combined(Outcome.SAMPLED, reason, probability, deterministic)
