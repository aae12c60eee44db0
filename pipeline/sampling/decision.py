"""The values a policy returns and the value the combining rules return.

A policy looks at a finished trace and returns a :class:`Decision`: its vote in the Collector's vocabulary
(``processor/tailsamplingprocessor/pkg/samplingpolicy``), the probability that this vote is positive given the
trace's content, and the *randomness source* the vote was drawn from. Deterministic filters (status code,
latency, attributes) have no randomness: their probability is 1 or 0. Random votes (probabilistic, dynamic, error
boost) name their source so the combining rules can compute the trace's true inclusion probability: votes drawn
from the same hash are nested (keep iff ``u < p``), votes from different sources are independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Vote(Enum):
    """A policy's vote. ``INVERT_*`` are the Collector's deprecated ``invert_match`` outcomes."""

    SAMPLED = "sampled"
    NOT_SAMPLED = "not_sampled"
    INVERT_SAMPLED = "invert_sampled"
    INVERT_NOT_SAMPLED = "invert_not_sampled"
    DROPPED = "dropped"


POSITIVE_VOTES = frozenset({Vote.SAMPLED, Vote.INVERT_SAMPLED})
NEGATIVE_VOTES = frozenset({Vote.NOT_SAMPLED, Vote.INVERT_NOT_SAMPLED})


@dataclass(frozen=True, slots=True)
class Decision:
    """One policy's vote on one trace.

    ``probability`` is the chance, given the trace's content, that the policy's positive outcome happens (sampled,
    or dropped for a ``drop`` policy). ``randomness`` names the source of that chance (``None`` = deterministic).
    ``is_drop`` marks the votes of ``drop`` policies, which take part in the combining rules differently.
    """

    vote: Vote
    probability: float
    reason: str
    randomness: str | None = None
    is_drop: bool = False

    @property
    def positive(self) -> bool:
        return self.vote in POSITIVE_VOTES


def deterministic(matched: bool, reason: str) -> Decision:
    """A filter's vote: sampled with probability 1, or not sampled."""
    if matched:
        return Decision(Vote.SAMPLED, 1.0, reason)
    return Decision(Vote.NOT_SAMPLED, 0.0, reason)


def inverted(matched: bool, reason: str) -> Decision:
    """A deprecated ``invert_match`` vote: ``matched`` means the inverted condition held for every span."""
    if matched:
        return Decision(Vote.INVERT_SAMPLED, 1.0, reason)
    return Decision(Vote.INVERT_NOT_SAMPLED, 0.0, reason)


class Outcome(Enum):
    """What happened to a trace, in the Collector's metric vocabulary."""

    SAMPLED = "sampled"
    NOT_SAMPLED = "not_sampled"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The final decision for a trace: keep or not, its effective keep probability, and why."""

    outcome: Outcome
    probability: float
    reason: str

    @property
    def keep(self) -> bool:
        return self.outcome is Outcome.SAMPLED


NOT_SAMPLED_REASON = "none"
