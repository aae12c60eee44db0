"""Sieve's own policy types. They are extensions: the Collector does not know them, so they live only in
Sieve's in-process configuration, never in ``otel-config.yaml``.

* ``error_boost``: keeps error traces (except those whose only errors are ``ignore_error_types``, e.g. malformed
  client input); keeps other traces at ``base_percentage`` raised by the key's
  :class:`~pipeline.sampling.boost.ErrorSignal` boost, capped at ``max_percentage``.
* ``rare``: about ``traces_per_window`` traces of each (service, root operation, status) per window, each kept
  with a known probability ``min(1, traces_per_window / traces of its key over about the last window)`` - an
  exponentially weighted count with a time constant of one window, this trace included, so the first trace of a
  new key is kept with probability 1 and the k-th of a burst with about ``n / k``.
* ``dynamic``: per-key rates aiming at ``goal_throughput_per_sec`` kept traces/s (Refinery's EMA throughput).

Every random vote draws from the Collector hash with ``hash_salt`` (default: the ``probabilistic`` default) and is
"uniform < p" with ``p`` fixed before the uniform is looked at, so with default salts all of them nest with the
``probabilistic`` baseline and the keep probability of their union is exact.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from pipeline.sampling.boost import ErrorSignal, ErrorSignalSettings
from pipeline.sampling.decision import Decision, deterministic, threshold
from pipeline.sampling.dynamic import DynamicSettings, EmaThroughput
from pipeline.sampling.rates import DecayedRate
from pipeline.sampling.trace import TraceView

from .base import BuildContext, Policy, PolicySpec
from .hashing import salt_or_default

_LN2 = math.log(2.0)


class _ErrorBoostEvaluator:
    def __init__(self, spec: ErrorBoost, signal: ErrorSignal) -> None:
        self.name = spec.name
        self.signal = signal
        self.ignored = frozenset(spec.ignore_error_types)
        self._spec = spec
        self._salt = salt_or_default(spec.hash_salt)

    def observe(self, trace: TraceView, now: float) -> None:
        self.signal.observe(trace.key, trace.has_incident_error(self.ignored), now)

    def probability(self, boost: float) -> float:
        spec = self._spec
        return max(0.0, min(spec.max_percentage, spec.base_percentage * boost)) / 100

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        if trace.has_incident_error(self.ignored):
            return deterministic(True, self.name)
        p = self.probability(self.signal.boost(trace.key, now))
        return threshold(trace.uniform(self._salt), p, self.name, "fnv:" + self._salt)


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
    ignore_error_types: tuple[str, ...] = ()  # error.type values that are client input, not incidents

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

    @property
    def stateful(self) -> bool:
        return True

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
        self._salt = salt_or_default(spec.hash_salt)
        self._keys: OrderedDict[tuple[str, str, str], DecayedRate] = OrderedDict()

    def probability(self, key: tuple[str, str, str], now: float) -> float:
        """Count one trace of ``key`` and return its keep probability."""
        spec = self._spec
        seen = self._keys.get(key)
        if seen is None:
            # Time constant = the window: the decayed count is the key's traces "over about the last window".
            seen = self._keys[key] = DecayedRate(spec.window_s * _LN2)
            if len(self._keys) > spec.max_keys:
                self._keys.popitem(last=False)  # forget the least recently seen key: it is rare again
        else:
            self._keys.move_to_end(key)
        seen.add(1.0, now)
        # Traces of this key per window: the exponentially weighted count (time constant one window). For a young
        # key that is simply the traces seen so far - never an extrapolation from a handful of arrivals.
        expected = seen.total(now)
        return min(1.0, spec.traces_per_window / max(1.0, expected))

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        p = self.probability((trace.service, trace.root_name, trace.status_name), now)
        return threshold(trace.uniform(self._salt), p, self.name, "fnv:" + self._salt)


@dataclass(frozen=True)
class Rare(PolicySpec):
    """About ``traces_per_window`` traces per (service, root operation, status) per window, each with a known
    probability (an extension)."""

    TYPE = "rare"
    traces_per_window: int = 1
    window_s: float = 60.0
    max_keys: int = 1000
    hash_salt: str = ""

    def __post_init__(self) -> None:
        self._require(self.traces_per_window > 0, "traces_per_window", self.traces_per_window, "an integer > 0")
        self._require(self.window_s > 0, "window", self.window_s, "a duration > 0")
        self._require(self.max_keys > 0, "max_keys", self.max_keys, "an integer > 0")

    @property
    def stateful(self) -> bool:
        return True

    def build(self, ctx: BuildContext) -> Policy:
        return _RareEvaluator(self)


class _DynamicEvaluator:
    def __init__(self, spec: Dynamic) -> None:
        self.name = spec.name
        self.sampler = EmaThroughput(spec.settings())
        self._salt = salt_or_default(spec.hash_salt)

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        key = f"{trace.service}\x1f{trace.root_name}\x1f{trace.status_name}"
        p = 1.0 / self.sampler.rate(key, now)
        return threshold(trace.uniform(self._salt), p, self.name, "fnv:" + self._salt)


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

    @property
    def stateful(self) -> bool:
        return True

    def build(self, ctx: BuildContext) -> Policy:
        return _DynamicEvaluator(self)
