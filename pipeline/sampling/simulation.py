"""A synthetic workload through the pure decision engine: what the estimation tests and the README figures use.

Traffic of a WebSocket service (one root operation per message) at a fixed rate, with slow traces, rare
operations, client-input errors and an error burst on the busiest operation, fed to a
:class:`~pipeline.sampling.engine.DecisionEngine` with a fake clock. From the kept traces alone it rebuilds
Horvitz-Thompson counts per (operation, status) - each kept trace counts ``1 / probability`` - and compares them
with the truth in units of the Horvitz-Thompson standard error at the stamped probabilities,
``sqrt(sum over all traces of (1 - p) / p)`` (the simulation knows every trace's probability, kept or not; the
estimate from kept traces alone, ``sum (1 - p) / p^2``, is reported too). It also measures what the budget let
through per second.
Pure and deterministic for a seed: no threads, no sleeps.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field

from opentelemetry.trace import StatusCode

from pipeline.names.sampling import Outcome
from pipeline.sampling.config import TailSamplingConfig
from pipeline.sampling.engine import DecisionEngine, EffectiveRate
from pipeline.sampling.testing import make_span
from pipeline.sampling.trace import TraceView

Key = tuple[str, str]  # (root operation, status)

# Operation mix: name -> share of traffic. "sync_settings" is rare (a few per minute).
DEFAULT_MIX: dict[str, float] = {
    "call_tool": 0.62,
    "ping": 0.18,
    "list_tools": 0.09,
    "hello": 0.08,
    "invalid": 0.0285,  # malformed client input: error.type not_json
    "sync_settings": 0.0015,
}


@dataclass(frozen=True)
class Workload:
    """A synthetic workload: how many traces, at what rate, how many errors and slow ones, and an error burst."""

    traces: int = 120_000
    traces_per_second: float = 100.0
    error_rate: float = 0.005
    slow_rate: float = 0.02
    burst: tuple[float, float] = (600.0, 660.0)  # seconds from the start: an error burst on call_tool
    burst_error_rate: float = 0.25
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    seed: int = 7


@dataclass
class Result:
    """Truth and estimates per (operation, status), and the kept volume per second."""

    truth: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    estimate: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    variance: dict[Key, float] = field(default_factory=lambda: defaultdict(float))  # HT variance, all traces
    variance_from_kept: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    kept_per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    kept_ok_per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    seen_per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    ok_per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    windows: dict[tuple[int, Key], list[float]] = field(default_factory=dict)  # (window, key) -> [truth, est, var]
    effective: dict[float, dict[str, EffectiveRate]] = field(default_factory=dict)

    def z(self, key: Key) -> float:
        sd = math.sqrt(self.variance[key])
        return 0.0 if sd == 0 else (self.estimate[key] - self.truth[key]) / sd

    def relative_error(self, key: Key) -> float:
        return self.estimate[key] / self.truth[key] - 1.0


def _status(op: str, rng: random.Random, now: float, w: Workload) -> tuple[StatusCode, str | None, bool]:
    if op == "invalid":
        return StatusCode.ERROR, "not_json", False
    rate = w.burst_error_rate if op == "call_tool" and w.burst[0] <= now < w.burst[1] else w.error_rate
    if rng.random() < rate:
        return StatusCode.ERROR, "provider_error", False
    return StatusCode.UNSET, None, rng.random() < w.slow_rate


def run(config: TailSamplingConfig, workload: Workload | None = None, *, window_s: float = 60.0) -> Result:
    w = workload or Workload()
    rng = random.Random(w.seed)
    engine = DecisionEngine(config.policies, sample_on_first_match=config.sample_on_first_match, budget=config.budget)
    ops = list(w.mix)
    weights = [w.mix[o] for o in ops]
    result = Result()
    dt = 1.0 / w.traces_per_second
    for i in range(w.traces):
        now = i * dt
        op = rng.choices(ops, weights)[0]
        status, error_type, slow = _status(op, rng, now, w)
        trace_id = rng.getrandbits(128)
        attributes = {"error.type": error_type} if error_type else None
        root = make_span(
            trace_id, op, status=status, attributes=attributes, duration_ms=800.0 if slow else 12.0, span_id=1
        )
        child = make_span(trace_id, "SELECT", parent=1, duration_ms=2.0)
        verdict = engine.decide(TraceView(trace_id, [child, root]), now)
        key = (op, "ERROR" if status is StatusCode.ERROR else "OK")
        second = int(now)
        result.truth[key] += 1
        result.seen_per_second[second] += 1
        window = result.windows.setdefault((int(now // window_s), key), [0.0, 0.0, 0.0])
        window[0] += 1
        ok = status is not StatusCode.ERROR
        result.ok_per_second[second] += ok
        p = verdict.probability
        if p > 0:
            result.variance[key] += (1.0 - p) / p
            window[2] += (1.0 - p) / p
        if verdict.outcome is Outcome.SAMPLED:
            result.estimate[key] += 1.0 / p
            result.variance_from_kept[key] += (1.0 - p) / (p * p)
            window[1] += 1.0 / p
            result.kept_per_second[second] += 1
            result.kept_ok_per_second[second] += ok
        if i % int(w.traces_per_second * 10) == 0:
            result.effective[now] = engine.effective_rates(now)
    return result
