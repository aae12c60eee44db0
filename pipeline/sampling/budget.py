"""The kept-volume budget: at most ``traces_per_second`` kept traces per second, served in priority order.

The form Refinery and Datadog users know: a throughput goal in kept traces per second (Refinery's
``GoalThroughputPerSec``, Datadog's ``TargetTPS`` of 10 plus ``ErrorTPS`` of 10 per agent). The default, 20 kept
traces/s per process, is Datadog's two budgets together.

Every decided trace has a *demand*: the probability ``pi`` that the policies keep it (1 for a trace a
deterministic policy keeps). Demand per tier is the larger of two decayed rates: one with half-life
``half_life_s`` and one four times faster, so a burst (after a quiet gap most of all) is seen within about a
second instead of several half-lives, and the demand relaxes only as fast as the slow one. The budget serves the
tiers in order - ``priority`` (errors, slow traces, other filter matches), then ``boosted`` (keys the error signal
raised), then ``baseline`` - and gives each the scale ``s = min(1, what it is given / its demand)``. A tier
with demand is always given at least ``min_share`` of the budget (10 %, or its demand if smaller), so no class
of traffic becomes invisible while an earlier tier would take everything. A trace the policies keep is then kept
iff an independent uniform of the trace is below ``s``: its inclusion probability is exactly ``pi * s``, both
known before either uniform is looked at. The scales depend on history only, so the stamped probability stays
exact while the kept volume follows the budget through an error burst (within the lag of the half-life).

Pure: the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.sampling.decision import Tier
from pipeline.sampling.rates import DecayedRate

MIN_HISTORY_S = 1.0  # a budget per second: never extrapolate a rate from less than a second of history
FAST_FACTOR = 4.0  # the fast estimate's half-life is the slow one's divided by this
FAST_MIN_HISTORY_S = 0.5


@dataclass(frozen=True)
class BudgetSettings:
    """``traces_per_second`` <= 0 turns the budget off."""

    traces_per_second: float = 20.0
    half_life_s: float = 2.0
    min_share: float = 0.1

    @property
    def enabled(self) -> bool:
        return self.traces_per_second > 0


class KeptBudget:
    """Demand per tier and the scales that keep the expected kept traces per second within the budget."""

    def __init__(self, settings: BudgetSettings) -> None:
        self.settings = settings
        self._demand = {tier: DecayedRate(settings.half_life_s) for tier in Tier}
        self._fast = {tier: DecayedRate(settings.half_life_s / FAST_FACTOR) for tier in Tier}
        self._scales_at: float | None = None
        self._scales: dict[Tier, float] = {}

    def scales(self, now: float) -> dict[Tier, float]:
        """The scale of every tier at ``now``, from the demand seen before ``now`` (computed once per instant:
        the sampler decides a whole cycle's traces at one ``now``)."""
        if now != self._scales_at:
            self._scales = self._compute(now)
            self._scales_at = now
        return self._scales

    def _compute(self, now: float) -> dict[Tier, float]:
        s = self.settings
        floor = s.min_share * s.traces_per_second
        needs = [self._need(tier, now) for tier in Tier]
        left = s.traces_per_second
        out: dict[Tier, float] = {}
        for i, tier in enumerate(Tier):
            need = needs[i]
            if need <= 0.0:
                out[tier] = 1.0
                continue
            reserved = sum(min(n, floor) for n in needs[i + 1 :])  # the later tiers' guaranteed shares
            given = max(min(need, floor), min(need, left - reserved))
            out[tier] = min(1.0, given / need)
            left = max(0.0, left - given)
        return out

    def scale(self, tier: Tier, now: float) -> float:
        if now != self._scales_at:
            self.scales(now)
        return self._scales[tier]

    def observe(self, tier: Tier, demand: float, now: float) -> None:
        """Count one decided trace of ``tier`` that the policies would keep with probability ``demand``."""
        if demand > 0.0:
            self._demand[tier].add(demand, now)
            self._fast[tier].add(demand, now)

    def _need(self, tier: Tier, now: float) -> float:
        return max(
            self._demand[tier].rate(now, min_span_s=MIN_HISTORY_S),
            self._fast[tier].rate(now, min_span_s=FAST_MIN_HISTORY_S),
        )

    def demand(self, now: float) -> dict[Tier, float]:
        """Expected kept traces per second per tier without the budget (for reports)."""
        return {tier: self._need(tier, now) for tier in Tier}
