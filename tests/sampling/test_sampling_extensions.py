"""Sieve's extension policies: error boost (and its signal), rare, dynamic."""

from __future__ import annotations

import random

import pytest
from opentelemetry.trace import StatusCode

from pipeline.sampling import ErrorSignal, ErrorSignalSettings
from pipeline.sampling.decision import Vote
from pipeline.sampling.dynamic import DynamicSettings, EmaThroughput, calculate_rates
from pipeline.sampling.engine import DecisionEngine
from pipeline.sampling.policies import BuildContext, Dynamic, ErrorBoost, Probabilistic, Rare
from pipeline.sampling.testing import make_span
from pipeline.sampling.trace import TraceView

KEY = ("demo", "call_tool")


def test_signal_rises_within_a_second_and_decays_with_half_life() -> None:
    """The anchor scenario: 0.5 % baseline errors, a 5 % burst; >= 5x within 2 s, back after 5 half-lives."""
    signal = ErrorSignal(ErrorSignalSettings(baseline_error_rate=0.005, max_boost=10, half_life_s=60))
    rng = random.Random(11)
    now = 0.0
    for _ in range(6000):  # 60 s at 100 traces/s at the baseline error rate
        now += 0.01
        signal.observe(KEY, rng.random() < 0.005, now)
    assert signal.boost(KEY, now) < 2  # noise at the baseline does not raise the boost
    burst_start = now
    for i in range(200):  # 5 % errors for two seconds
        now += 0.01
        signal.observe(KEY, i % 20 == 0, now)
    assert now - burst_start <= 2.0 + 1e-9
    assert signal.boost(KEY, now) >= 5
    peak = signal.boost(KEY, now)
    assert signal.boost(KEY, now + 60) == pytest.approx(1 + (peak - 1) / 2)  # one half-life
    assert signal.boost(KEY, now + 300) < 1 + (peak - 1) * 0.04  # back near baseline after 5 half-lives
    assert signal.level(now) == pytest.approx(peak)
    assert signal.boost(("other", "op"), now) == 1.0
    assert "demo/call_tool" in signal.snapshot(now)


def test_signal_key_count_is_bounded() -> None:
    signal = ErrorSignal(ErrorSignalSettings(max_keys=10))
    for i in range(100):
        signal.observe(("svc", f"op{i}"), True, float(i))
    assert len(signal.snapshot(100.0)) == 10


def _trace(trace_id: int, error: bool = False, name: str = "call_tool") -> TraceView:
    return TraceView(trace_id, [make_span(trace_id, name, status=StatusCode.ERROR if error else StatusCode.UNSET)])


def test_error_boost_raises_non_error_keep_rate_and_keeps_errors() -> None:
    spec = ErrorBoost(name="boost", base_percentage=5, max_boost=10, baseline_error_rate=0.01)
    engine = DecisionEngine([spec])
    rng = random.Random(1)
    assert engine.decide(_trace(rng.getrandbits(128), error=True), 0.0).keep
    quiet = sum(engine.decide(_trace(rng.getrandbits(128)), 0.001 * i).keep for i in range(4000))
    for i in range(1000):  # one second of 20 % errors
        engine.decide(_trace(rng.getrandbits(128), error=i % 5 == 0), 4.0 + 0.001 * i)
    boosted = sum(engine.decide(_trace(rng.getrandbits(128)), 5.0 + 0.0001 * i).keep for i in range(4000))
    assert quiet / 4000 == pytest.approx(0.05, abs=0.02)
    assert boosted >= 4 * quiet
    assert engine.error_signal.level(5.4) > 4


def test_error_boost_nests_with_the_probabilistic_baseline() -> None:
    """Same salt: every trace the 10 % baseline keeps, the boost keeps too, so P(keep) = max(p) exactly."""
    engine = DecisionEngine([Probabilistic(name="baseline", sampling_percentage=10),
                             ErrorBoost(name="boost", base_percentage=10)])  # fmt: skip
    rng = random.Random(3)
    for _ in range(2000):
        verdict = engine.decide(_trace(rng.getrandbits(128)), 0.0)
        if verdict.keep:
            assert verdict.probability == pytest.approx(0.1)


def test_rare_probability_is_known_before_the_draw() -> None:
    """The first trace of a key is kept with probability 1, the k-th of a burst with about n/k; at a steady rate,
    n / (traces per window)."""
    policy = Rare(name="rare", traces_per_window=2, window_s=60).build(BuildContext())
    decisions = [policy.evaluate(_trace(i), 1.0) for i in range(5)]
    assert [d.probability for d in decisions] == pytest.approx([1.0, 1.0, 2 / 3, 2 / 4, 2 / 5], rel=1e-3)
    assert all(d.vote is Vote.SAMPLED for d in decisions[:2])
    assert policy.evaluate(_trace(9, name="other"), 10.0).probability == 1.0  # another key
    assert policy.evaluate(_trace(9, error=True), 10.0).probability == 1.0  # another status
    now = 1.0
    for i in range(3000):  # 10 traces/s for five minutes: 600 per window
        now += 0.1
        last = policy.evaluate(_trace(100 + i), now)
    assert last.probability == pytest.approx(2 / 600, rel=0.05)


def test_rare_key_count_is_bounded() -> None:
    policy = Rare(name="rare", max_keys=3).build(BuildContext())
    for i in range(5):
        policy.evaluate(_trace(i, name=f"op{i}"), 1.0)
    assert len(policy._keys) == 3  # type: ignore[attr-defined]
    # op0 was forgotten: it is new again, so its next trace is kept for sure.
    assert policy.evaluate(_trace(9, name="op0"), 2.0).probability == 1.0


def test_calculate_rates_gives_rare_keys_rate_one() -> None:
    rates = calculate_rates(goal_ratio=10.0, counts={"busy": 10_000.0, "rare": 3.0, "mid": 100.0})
    assert rates["rare"] == 1
    assert rates["busy"] > rates["mid"] >= 1


def test_ema_throughput_aims_at_goal() -> None:
    sampler = EmaThroughput(DynamicSettings(goal_throughput_per_sec=10, adjustment_interval_s=15))
    assert sampler.rate("a", 0.0) == 10  # initial rate before any data
    kept = 0.0
    now = 0.0
    for _ in range(4):  # 4 intervals of 15 s at 200 traces/s over 3 keys
        for i in range(3000):
            now += 0.005
            key = "busy" if i % 100 else ("rare" if i % 200 else "mid")
            kept += 1 / sampler.rate(key, now)
    last_interval = 0.0
    for i in range(3000):
        now += 0.005
        key = "busy" if i % 100 else ("rare" if i % 200 else "mid")
        rate = sampler.rate(key, now)
        last_interval += 1 / rate
    assert last_interval / 15 == pytest.approx(10, rel=0.5)  # ~10 kept traces/s
    assert sampler.rate("rare", now) < sampler.rate("busy", now)
    assert sampler.keys <= 500


def test_dynamic_policy_probability_is_inverse_rate() -> None:
    policy = Dynamic(name="dyn", goal_throughput_per_sec=5, adjustment_interval_s=1).build(BuildContext())
    decision = policy.evaluate(_trace(1), 0.0)
    assert decision.probability == pytest.approx(0.1)
    assert decision.source == "fnv:default-hash-seed"
