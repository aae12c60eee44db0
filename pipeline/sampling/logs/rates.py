"""Category rates under the error boost: pure functions of a base rate and the error signal's level.

While the error signal (``ErrorSignal.level(now)``, 1 when nothing fails) is above 1, rates are multiplied so the
lines around an incident are there; the signal's envelope decays with its half-life, and so does the boost.
"""

from __future__ import annotations

from typing import Protocol


class ErrorLevel(Protocol):
    """What the log sampler reads from the tail sampler's :class:`~pipeline.sampling.boost.ErrorSignal`."""

    def level(self, now: float) -> float: ...


def rate_multiplier(level: float, factor: float, max_multiplier: float) -> float:
    """``1 + factor * (level - 1)``, capped at ``max_multiplier``; exactly 1 while ``level <= 1``."""
    if level <= 1.0:
        return 1.0
    return min(max_multiplier, 1.0 + factor * (level - 1.0))


def boosted_rate(base: float, multiplier: float, cap: float) -> float:
    """``base * multiplier`` capped at ``cap``, never below ``base`` (a base above the cap is left alone)."""
    if multiplier == 1.0 or base <= 0.0:
        return base
    return max(base, min(cap, base * multiplier))


def combined_probability(category_rate: float, trace_probability: float) -> float:
    """Inclusion probability of a record kept through its trace: it lost its own draw, its trace was kept.

    The record is kept when either the category draw or the trace keeps it (independent draws), so
    ``P = 1 - (1 - rate) * (1 - p_trace)``; ``1 / P`` is its adjusted count.
    """
    p = 1.0 - (1.0 - category_rate) * (1.0 - trace_probability)
    return min(1.0, max(p, trace_probability, category_rate))
