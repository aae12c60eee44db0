"""Sieve's own policy types. They are extensions: the Collector does not know them, so they live only in
Sieve's in-process configuration, never in ``otel-config.yaml``.

* ``error_boost``: keeps error traces; keeps other traces at ``base_percentage`` raised by the key's
  :class:`~pipeline.sampling.boost.ErrorSignal` boost, capped at ``max_percentage``.
* ``rare``: keeps the first ``traces_per_window`` traces of each (service, root operation, status) per window.
* ``dynamic``: per-key rates aiming at ``goal_throughput_per_sec`` kept traces/s (Refinery's EMA throughput).

Random votes draw from the Collector hash with ``hash_salt`` (default: the ``probabilistic`` default), so with
default salts ``probabilistic``, ``error_boost`` and ``dynamic`` are nested and the keep probability is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.sampling.boost import ErrorSignal, ErrorSignalSettings
from pipeline.sampling.decision import Decision, Vote, deterministic
from pipeline.sampling.dynamic import DynamicSettings, EmaThroughput
from pipeline.sampling.trace import TraceView

from .base import BuildContext, Policy, PolicySpec
from .hashing import salt_or_default, uniform


class _ErrorBoostEvaluator:
    def __init__(self, spec: ErrorBoost, signal: ErrorSignal) -> None:
        self.name = spec.name
        self.signal = signal
        self._spec = spec
        self._salt = salt_or_default(spec.hash_salt)

    def observe(self, trace: TraceView, now: float) -> None:
        self.signal.observe((trace.service, trace.root_name), trace.has_error, now)

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        if trace.has_error:
            return deterministic(True, self.name)
        boost = self.signal.boost((trace.service, trace.root_name), now)
        spec = self._spec
        probability = min(spec.max_percentage, spec.base_percentage * boost) / 100
        keep = uniform(self._salt, trace.trace_id) < probability
        return Decision(Vote.SAMPLED if keep else Vote.NOT_SAMPLED, probability, self.name, "fnv:" + self._salt)


@dataclass(frozen=True)
class ErrorBoost(PolicySpec):
    """Error-rate-driven boost of non-error traces (a Sieve extension)."""

    TYPE = "error_boost"
    base_percentage: float = 10.0
    max_percentage: float = 100.0
    baseline_error_rate: float = 0.01
    max_boost: float = 10.0
    half_life_s: float = 60.0
    window_s: float = 2.0
    max_keys: int = 256
    significance: float = 4.0
    hash_salt: str = ""

    def __post_init__(self) -> None:
        self._require(0 <= self.base_percentage <= 100, "base_percentage", self.base_percentage, "a number in [0, 100]")
        self._require(
            self.base_percentage <= self.max_percentage <= 100,
            "max_percentage",
            self.max_percentage,
            "a number in [base_percentage, 100]",
        )
        self._require(
            0 < self.baseline_error_rate < 1, "baseline_error_rate", self.baseline_error_rate, "a number in (0, 1)"
        )
        self._require(self.max_boost >= 1, "max_boost", self.max_boost, "a number >= 1")
        self._require(self.half_life_s > 0, "half_life", self.half_life_s, "a duration > 0")
        self._require(self.window_s > 0, "window", self.window_s, "a duration > 0")
        self._require(self.max_keys > 0, "max_keys", self.max_keys, "an integer > 0")
        self._require(self.significance >= 0, "significance", self.significance, "a number >= 0")

    def signal_settings(self) -> ErrorSignalSettings:
        return ErrorSignalSettings(
            baseline_error_rate=self.baseline_error_rate,
            max_boost=self.max_boost,
            half_life_s=self.half_life_s,
            window_s=self.window_s,
            max_keys=self.max_keys,
            significance=self.significance,
        )

    def build(self, ctx: BuildContext) -> Policy:
        signal = ErrorSignal(self.signal_settings())
        evaluator = _ErrorBoostEvaluator(self, signal)
        ctx.signals.append(signal)
        ctx.observers.append(evaluator)
        return evaluator


class _RareEvaluator:
    def __init__(self, spec: Rare) -> None:
        self.name = spec.name
        self._spec = spec
        self._window: int | None = None
        self._counts: dict[tuple[str, str, str], int] = {}
        self._previous: dict[tuple[str, str, str], int] = {}

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        spec = self._spec
        window = math.floor(now / spec.window_s)
        if window != self._window:
            # Counts of the window just ended estimate how many traces each kept one stands for.
            self._previous = self._counts if self._window == window - 1 else {}
            self._counts = {}
            self._window = window
        key = (trace.service, trace.root_name, trace.status_name)
        count = self._counts.get(key)
        if count is None:
            if len(self._counts) >= spec.max_keys:
                return Decision(Vote.NOT_SAMPLED, 0.0, self.name)
            count = 0
        count += 1
        self._counts[key] = count
        previous = self._previous.get(key, 0)
        probability = min(1.0, spec.traces_per_window / max(previous, spec.traces_per_window))
        vote = Vote.SAMPLED if count <= spec.traces_per_window else Vote.NOT_SAMPLED
        return Decision(vote, probability, self.name, "rare:" + self.name)


@dataclass(frozen=True)
class Rare(PolicySpec):
    """The first ``traces_per_window`` traces per (service, root operation, status) per window (an extension)."""

    TYPE = "rare"
    traces_per_window: int = 1
    window_s: float = 60.0
    max_keys: int = 1000

    def __post_init__(self) -> None:
        self._require(self.traces_per_window > 0, "traces_per_window", self.traces_per_window, "an integer > 0")
        self._require(self.window_s > 0, "window", self.window_s, "a duration > 0")
        self._require(self.max_keys > 0, "max_keys", self.max_keys, "an integer > 0")

    def build(self, ctx: BuildContext) -> Policy:
        return _RareEvaluator(self)


class _DynamicEvaluator:
    def __init__(self, spec: Dynamic) -> None:
        self.name = spec.name
        self.sampler = EmaThroughput(spec.settings())
        self._salt = salt_or_default(spec.hash_salt)

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        key = f"{trace.service}\x1f{trace.root_name}\x1f{trace.status_name}"
        probability = 1.0 / self.sampler.rate(key, now)
        keep = uniform(self._salt, trace.trace_id) < probability
        return Decision(Vote.SAMPLED if keep else Vote.NOT_SAMPLED, probability, self.name, "fnv:" + self._salt)


@dataclass(frozen=True)
class Dynamic(PolicySpec):
    """Per-key keep rates aiming at a kept-traces/s goal, rare keys kept more (an extension)."""

    TYPE = "dynamic"
    goal_throughput_per_sec: float = 10.0
    adjustment_interval_s: float = 15.0
    weight: float = 0.5
    initial_sample_rate: int = 10
    max_keys: int = 500
    burst_multiple: float = 2.0
    burst_detection_delay: int = 3
    hash_salt: str = ""

    def __post_init__(self) -> None:
        self._require(self.goal_throughput_per_sec > 0, "goal_throughput_per_sec", self.goal_throughput_per_sec, "> 0")
        self._require(self.adjustment_interval_s > 0, "adjustment_interval", self.adjustment_interval_s, "> 0")
        self._require(0 < self.weight < 1, "weight", self.weight, "a number in (0, 1)")
        self._require(self.initial_sample_rate >= 1, "initial_sample_rate", self.initial_sample_rate, ">= 1")
        self._require(self.max_keys > 0, "max_keys", self.max_keys, "an integer > 0")

    def settings(self) -> DynamicSettings:
        return DynamicSettings(
            goal_throughput_per_sec=self.goal_throughput_per_sec,
            adjustment_interval_s=self.adjustment_interval_s,
            weight=self.weight,
            initial_sample_rate=self.initial_sample_rate,
            max_keys=self.max_keys,
            age_out_value=self.weight,
            burst_multiple=self.burst_multiple,
            burst_detection_delay=self.burst_detection_delay,
        )

    def build(self, ctx: BuildContext) -> Policy:
        return _DynamicEvaluator(self)
