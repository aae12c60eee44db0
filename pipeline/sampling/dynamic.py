"""Per-key sample rates aiming at a goal throughput: Refinery's EMA throughput sampler, clock passed in.

Every ``adjustment_interval_s`` the counts per key update an exponential moving average (``weight``); keys whose
average falls under ``age_out_value`` are forgotten. The goal for the next interval is
``goal_throughput_per_sec * interval`` traces, shared between keys in proportion to ``log10(count)`` so rare keys
get rate 1 and frequent keys are sampled harder (dynsampler-go ``keyCalculation.go``). A burst (counts this
interval above ``burst_multiple`` x the average sum, after ``burst_detection_delay`` intervals) recomputes at once.
Before the first interval every key gets ``initial_sample_rate``; a key not seen in the last average gets 1.

dynsampler-go's ``EMAThroughput`` divides the goal by the interval where it means to multiply; Sieve multiplies,
so the goal is per second as documented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DynamicSettings:
    """The dynamic sampler's goal throughput, and how it adjusts, ages out keys and reacts to bursts."""

    goal_throughput_per_sec: float = 10.0
    adjustment_interval_s: float = 15.0
    weight: float = 0.5
    initial_sample_rate: int = 10
    max_keys: int = 500
    age_out_value: float = 0.5
    burst_multiple: float = 2.0
    burst_detection_delay: int = 3


def calculate_rates(goal_ratio: float, counts: dict[str, float]) -> dict[str, int]:
    """Per-key integer sample rates; under-used shares pass on to later keys (sorted for determinism)."""
    rates: dict[str, int] = {}
    remaining = len(counts)
    extra = 0.0
    for key in sorted(counts):
        count = max(1.0, counts[key])
        goal = max(1.0, math.log10(count) * goal_ratio)
        share = extra / remaining
        goal += share
        extra -= share
        remaining -= 1
        if count <= goal:
            rates[key] = 1
            extra += goal - count
        else:
            rate = math.ceil(count / goal)
            rates[key] = rate if math.isfinite(rate) else 1
            extra += goal - count / rates[key]
    return rates


class EmaThroughput:
    """The sampler's state; ``rate(key, now)`` counts one trace of ``key`` and returns its 1-in-N rate."""

    def __init__(self, settings: DynamicSettings) -> None:
        self.settings = settings
        self._counts: dict[str, float] = {}
        self._average: dict[str, float] = {}
        self._rates: dict[str, int] = {}
        self._have_data = False
        self._interval_start: float | None = None
        self._intervals = 0
        self._burst_threshold = 0.0
        self._burst_sum = 0.0

    @property
    def keys(self) -> int:
        return len(self._average)

    def rate(self, key: str, now: float) -> int:
        s = self.settings
        if self._interval_start is None:
            self._interval_start = now
        elif now - self._interval_start >= s.adjustment_interval_s:
            self._update()
            self._intervals += 1
            self._interval_start = now
        if key in self._counts or len(self._counts) < s.max_keys:
            self._counts[key] = self._counts.get(key, 0.0) + 1.0
            self._burst_sum += 1.0
        if (
            self._burst_threshold > 0
            and self._burst_sum >= self._burst_threshold
            and self._intervals >= s.burst_detection_delay
        ):
            self._update()
            self._interval_start = now
        if not self._have_data:
            return s.initial_sample_rate
        return self._rates.get(key, 1)

    def _update(self) -> None:
        s = self.settings
        counts, self._counts, self._burst_sum = self._counts, {}, 0.0
        if not counts:
            return  # no traffic: keep the averages rather than decay them during a lull
        average: dict[str, float] = {}
        for key in set(self._average) | set(counts):
            value = s.weight * counts.get(key, 0.0) + (1 - s.weight) * self._average.get(key, 0.0)
            if value >= s.age_out_value:
                average[key] = value
        if len(average) > s.max_keys:  # keep the busiest keys
            average = dict(sorted(average.items(), key=lambda kv: -kv[1])[: s.max_keys])
        self._average = average
        self._burst_threshold = sum(max(1.0, c) for c in average.values()) * s.burst_multiple
        log_sum = sum(math.log10(max(1.0, c)) for c in average.values())
        goal_count = s.goal_throughput_per_sec * s.adjustment_interval_s
        if log_sum <= 0:
            self._rates = dict.fromkeys(average, 1)
        else:
            self._rates = calculate_rates(goal_count / log_sum, average)
        self._have_data = True
