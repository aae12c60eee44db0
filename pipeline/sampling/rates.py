"""Arrival rates estimated from history, with the clock passed in: what thinning probabilities are computed from.

A :class:`DecayedRate` is an exponentially decayed sum of amounts (traces, spans, bytes, expected keeps) with a
half-life; ``rate(now)`` turns it into a per-second rate. Without a seed it corrects for the short history of a
fresh estimator (the decayed sum of a constant rate only reaches ``rate * half_life / ln 2`` after a few
half-lives), so the first seconds are neither over- nor under-estimated. Pure: no clock, no locks.
"""

from __future__ import annotations

import math

_LN2 = math.log(2.0)


class DecayedRate:
    """Exponentially decayed amount per second. ``seed_rate`` > 0 starts as if that rate had always been seen."""

    __slots__ = ("_first", "_half_life", "_last", "_seeded", "_sum")

    def __init__(self, half_life_s: float, seed_rate: float = 0.0) -> None:
        self._half_life = half_life_s
        self._sum = seed_rate * half_life_s / _LN2
        self._seeded = seed_rate > 0.0
        self._last: float | None = None
        self._first: float | None = None

    def _decay_to(self, now: float) -> None:
        last = self._last
        if last is None:
            self._last = self._first = now
        elif now > last:
            self._sum *= math.pow(0.5, (now - last) / self._half_life)
            self._last = now

    def add(self, amount: float, now: float) -> None:
        self._decay_to(now)
        self._sum += amount

    def total(self, now: float) -> float:
        """The decayed sum at ``now``."""
        self._decay_to(now)
        return self._sum

    def span_s(self, now: float) -> float:
        """How many seconds of history the decayed sum effectively covers (at most ``half_life / ln 2``)."""
        self._decay_to(now)
        full = self._half_life / _LN2
        if self._seeded or self._first is None:
            return full
        return full * (1.0 - math.pow(0.5, (now - self._first) / self._half_life))

    def rate(self, now: float, *, min_span_s: float = 0.0) -> float:
        """Amount per second; ``min_span_s`` keeps a very young estimator from dividing by almost nothing."""
        span = max(self.span_s(now), min_span_s)
        return self._sum / span if span > 0 else 0.0
