"""Throughput limits: ``rate_limiting`` (spans/s) and ``bytes_limiting`` (bytes/s), both token buckets.

The Collector moved ``rate_limiting`` to a token bucket with ``burst_capacity`` (contrib PR #48226) so a trace
larger than the per-second limit can still pass; ``bytes_limiting`` refuses a trace larger than its burst.
A limiter's vote depends on arrival order, not on the trace id, so its keep probability is unknown; the
Collector silently under-counts here (contrib#49710). Sieve reports a *predicted* probability instead: the
recent admitted/offered ratio, decayed with a 10 s half-life, so kept spans still carry a usable adjusted count.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.ratelimit import TokenBucket
from pipeline.sampling.decision import Decision, Vote
from pipeline.sampling.trace import TraceView

from .base import BuildContext, Policy, PolicySpec

ADMIT_HALF_LIFE_S = 10.0
MIN_PROBABILITY = 1e-6


class AdmitRatio:
    """Exponentially decayed admitted/offered ratio: the predicted keep probability of a limiter."""

    __slots__ = ("admitted", "last", "offered")

    def __init__(self) -> None:
        self.offered = 0.0
        self.admitted = 0.0
        self.last: float | None = None

    def record(self, admitted: bool, now: float) -> float:
        if self.last is not None and now > self.last:
            decay = 0.5 ** ((now - self.last) / ADMIT_HALF_LIFE_S)
            self.offered *= decay
            self.admitted *= decay
        self.last = now if self.last is None else max(self.last, now)
        self.offered += 1.0
        self.admitted += 1.0 if admitted else 0.0
        return max(MIN_PROBABILITY, self.admitted / self.offered)


class _LimiterEvaluator:
    def __init__(self, name: str, bucket: TokenBucket, allow_debt: bool, by_bytes: bool) -> None:
        self.name = name
        self._bucket = bucket
        self._allow_debt = allow_debt
        self._by_bytes = by_bytes
        self._ratio = AdmitRatio()

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        amount = trace.size_bytes if self._by_bytes else trace.span_count
        admitted = self._bucket.take(amount, now, allow_debt=self._allow_debt)
        probability = self._ratio.record(admitted, now)
        vote = Vote.SAMPLED if admitted else Vote.NOT_SAMPLED
        return Decision(vote, probability, self.name, "limiter:" + self.name)


@dataclass(frozen=True)
class RateLimiting(PolicySpec):
    """At most ``spans_per_second`` spans of kept traces per second on average, bursts up to ``burst_capacity``."""

    TYPE = "rate_limiting"
    spans_per_second: int = 0
    burst_capacity: int = 0  # 0: same as spans_per_second

    def __post_init__(self) -> None:
        self._require(self.spans_per_second > 0, "spans_per_second", self.spans_per_second, "an integer > 0")
        self._require(self.burst_capacity >= 0, "burst_capacity", self.burst_capacity, "an integer >= 0")

    def build(self, ctx: BuildContext) -> Policy:
        capacity = self.burst_capacity or self.spans_per_second
        return _LimiterEvaluator(
            self.name, TokenBucket(self.spans_per_second, capacity), allow_debt=True, by_bytes=False
        )


@dataclass(frozen=True)
class BytesLimiting(PolicySpec):
    """At most ``bytes_per_second`` (estimated OTLP bytes) per second; burst defaults to twice that."""

    TYPE = "bytes_limiting"
    bytes_per_second: int = 0
    burst_capacity: int = 0  # 0: 2 x bytes_per_second, as documented upstream

    def __post_init__(self) -> None:
        self._require(self.bytes_per_second > 0, "bytes_per_second", self.bytes_per_second, "an integer > 0")
        self._require(self.burst_capacity >= 0, "burst_capacity", self.burst_capacity, "an integer >= 0")

    def build(self, ctx: BuildContext) -> Policy:
        capacity = self.burst_capacity or 2 * self.bytes_per_second
        return _LimiterEvaluator(
            self.name, TokenBucket(self.bytes_per_second, capacity), allow_debt=False, by_bytes=True
        )
