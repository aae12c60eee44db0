"""The values a policy returns and the value the engine returns.

A policy looks at a finished trace and returns a :class:`Decision`: its vote in the Collector's vocabulary
(``processor/tailsamplingprocessor/pkg/samplingpolicy``; since Collector v0.144 there are no inverted votes) and
the *region* of the trace's uniform for which that vote is "sampled" (:mod:`pipeline.sampling.region`). The region
is fixed by the trace's content and the sampler's history, never by the trace's own randomness, so its measure is
the true probability of the vote. Deterministic filters have no randomness (``source`` None): their region is
everything or nothing. Random votes name the uniform they draw from (``source``): Sieve's policies and the
Collector's default-salt ``probabilistic`` share one, so their regions nest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from opentelemetry.util.types import AttributeValue

from pipeline.names.sampling import Outcome
from pipeline.sampling.region import EMPTY, FULL, Region, below, measure


class Vote(StrEnum):
    """A policy's vote."""

    SAMPLED = "sampled"
    NOT_SAMPLED = "not_sampled"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class Decision:
    """One policy's vote on one trace, and the set of the trace's uniform for which it is positive.

    For a ``drop`` policy (``is_drop``) the region is where it *drops*; its vote is ``DROPPED`` or
    ``NOT_SAMPLED`` (a drop that did not match counts as a plain not-sampled vote, as upstream).
    """

    vote: Vote
    reason: str
    region: Region = EMPTY
    source: str | None = None
    is_drop: bool = False

    @property
    def positive(self) -> bool:
        return self.vote is not Vote.NOT_SAMPLED

    @property
    def probability(self) -> float:
        return measure(self.region)


_MATCHED: dict[str, Decision] = {}
_UNMATCHED: dict[str, Decision] = {}


def deterministic(matched: bool, reason: str) -> Decision:
    """A filter's vote: sampled for every value of the uniform, or for none (immutable, so shared)."""
    cache = _MATCHED if matched else _UNMATCHED
    decision = cache.get(reason)
    if decision is None:
        decision = Decision(Vote.SAMPLED if matched else Vote.NOT_SAMPLED, reason, FULL if matched else EMPTY)
        if len(cache) < 4096:
            cache[reason] = decision
    return decision


def threshold(u: float, probability: float, reason: str, source: str) -> Decision:
    """A random vote: sampled iff ``u < probability`` (``probability`` known before ``u`` is looked at)."""
    region = below(probability)
    vote = Vote.SAMPLED if u < probability else Vote.NOT_SAMPLED
    return Decision(vote, reason, region, source)


class Tier(StrEnum):
    """A verdict's budget tier; the kept-volume budget serves them in this order (pipeline/sampling/budget.py)."""

    PRIORITY = "priority"  # a deterministic policy matched: errors, slow traces, force-sample...
    BOOSTED = "boosted"  # the trace's key is boosted by the error signal
    BASELINE = "baseline"  # everything else a random policy may keep


@dataclass(frozen=True, slots=True)
class Verdict:
    """The final decision for a trace: keep or not, its inclusion probability, why, and its budget tier.

    ``probability`` is the probability that the sampler keeps a trace like this one, given what it had seen: the
    one stamped on a kept trace, and for a trace not kept the chance it had (0 when a drop policy matched).
    ``marks``: extra attributes for some of a kept trace's spans, by span id (the N+1 detector's), or None.
    """

    outcome: Outcome
    probability: float
    reason: str  # the deciding policy's name, or a pipeline.names.sampling.Reason
    tier: Tier = Tier.BASELINE
    marks: Mapping[int, Mapping[str, AttributeValue]] | None = None

    @property
    def keep(self) -> bool:
        return self.outcome is Outcome.SAMPLED
