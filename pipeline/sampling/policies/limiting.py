"""Throughput limits: ``rate_limiting`` (spans/s) and ``bytes_limiting`` (bytes/s).

Upstream (``internal/sampling/rate_limiting.go``, ``bytes_limiting.go``): a token bucket of ``burst_capacity``
tokens (default 2 x the rate for both since contrib PR #48226), refilled continuously; a trace is admitted if the
bucket holds its size, so a trace larger than the bucket is never admitted. First-come admission gives every
refused trace probability 0 and every admitted one an unknown probability (the under-counting of contrib#49710).

Sieve keeps the bucket and its size rule and replaces first-come admission by *thinning*: a trace the bucket could
hold is kept iff the trace's uniform is below ``p = min(1, rate / offered rate) * fill``, where the offered rate is
a decayed estimate of what reached the policy before this trace and ``fill`` ramps from 1 (bucket at least
half full) down to 0 (empty), so the bucket rarely runs dry. ``p`` depends only on history and the trace's size,
never on its randomness, so it is the vote's exact probability; kept traces still spend tokens, so the bucket
bounds bursts as upstream's does.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.ratelimit import TokenBucket
from pipeline.sampling.decision import Decision, Vote
from pipeline.sampling.rates import DecayedRate
from pipeline.sampling.region import EMPTY, below
from pipeline.sampling.trace import TraceView

from .base import BuildContext, Policy, PolicySpec
from .hashing import DEFAULT_HASH_SALT

OFFERED_HALF_LIFE_S = 5.0
MIN_HISTORY_S = 1.0  # a rate per second is not extrapolated from less than a second of history
SOURCE = "fnv:" + DEFAULT_HASH_SALT


class _LimiterEvaluator:
    def __init__(self, name: str, rate: float, capacity: float, by_bytes: bool) -> None:
        self.name = name
        self._rate = rate
        self._capacity = capacity
        self._bucket = TokenBucket(rate, capacity)
        self._offered = DecayedRate(OFFERED_HALF_LIFE_S)
        self._by_bytes = by_bytes

    def probability(self, amount: float, now: float) -> float:
        """The keep probability of a trace of ``amount`` offered at ``now`` (counts the offer)."""
        if self._rate <= 0 or amount > self._capacity:
            return 0.0  # upstream: AllowN(n) is false for n > burst, and a zero limit admits nothing
        offered = self._offered.rate(now, min_span_s=MIN_HISTORY_S)  # what reached the policy before this trace
        self._offered.add(amount, now)
        bucket = self._bucket
        bucket.refill(now)
        if bucket.tokens < amount:
            return 0.0
        p = 1.0 if offered <= self._rate else self._rate / offered
        return p * min(1.0, bucket.tokens / (0.5 * self._capacity))

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        amount = trace.size_bytes if self._by_bytes else trace.span_count
        p = self.probability(amount, now)
        if p <= 0.0:
            return Decision(Vote.NOT_SAMPLED, self.name, EMPTY, SOURCE)
        keep = trace.uniform(DEFAULT_HASH_SALT) < p
        if keep:
            self._bucket.tokens -= amount
        return Decision(Vote.SAMPLED if keep else Vote.NOT_SAMPLED, self.name, below(p), SOURCE)


@dataclass(frozen=True)
class RateLimiting(PolicySpec):
    """About ``spans_per_second`` spans of kept traces per second; bursts up to ``burst_capacity`` spans
    (0: twice ``spans_per_second``, as upstream); a trace larger than the burst is never kept."""

    TYPE = "rate_limiting"
    spans_per_second: int = 0
    burst_capacity: int = 0

    @property
    def capacity(self) -> int:
        return self.burst_capacity if self.burst_capacity > 0 else 2 * self.spans_per_second

    @property
    def stateful(self) -> bool:
        return True

    def build(self, ctx: BuildContext) -> Policy:
        return _LimiterEvaluator(self.name, float(self.spans_per_second), float(self.capacity), by_bytes=False)


@dataclass(frozen=True)
class BytesLimiting(PolicySpec):
    """About ``bytes_per_second`` (estimated OTLP bytes) per second; burst defaults to twice that."""

    TYPE = "bytes_limiting"
    bytes_per_second: int = 0
    burst_capacity: int = 0

    @property
    def capacity(self) -> int:
        return self.burst_capacity if self.burst_capacity > 0 else 2 * self.bytes_per_second

    @property
    def stateful(self) -> bool:
        return True

    def build(self, ctx: BuildContext) -> Policy:
        return _LimiterEvaluator(self.name, float(self.bytes_per_second), float(self.capacity), by_bytes=True)
