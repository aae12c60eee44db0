"""The log sampler without loguru: rates, severity, the error boost, following trace decisions, bounds, counts.

Randomness is seeded, time is a fake clock, decisions come from a fake source: nothing here can flake.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from pipeline.names import logs as n
from pipeline.sampling.boost import ErrorSignal, ErrorSignalSettings
from pipeline.sampling.logs import (
    OLD_DAEMON_RATES,
    LogSampler,
    LogSamplingSettings,
    boosted_rate,
    combined_probability,
    rate_multiplier,
    register_log_metrics,
)
from pipeline.sampling.logs.testing import FakeDecisionSource
from pipeline.sampling.testing import FakeClock

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
MakeSampler = Callable[..., LogSampler]


def _within(kept: int, trials: int, rate: float, sds: float = 5.0) -> bool:
    expected = trials * rate
    return abs(kept - expected) <= sds * math.sqrt(trials * rate * (1 - rate)) + 1


@pytest.mark.parametrize(("category", "rate"), sorted(OLD_DAEMON_RATES.items()))
def test_old_daemon_rates_hold_statistically(category: str, rate: float) -> None:
    sampler = LogSampler(rng=random.Random(7).random)  # the documented defaults
    gate = sampler.category(category)
    trials = 200_000
    kept = sum(gate.decide(INFO, 0) is not None for _ in range(trials))
    assert _within(kept, trials, rate)
    stats = sampler.stats()
    assert stats["seen_by_category"][category] == {"INFO": trials}
    assert stats["dropped_by_category"][category] == {n.DROP_SAMPLED_OUT: trials - kept}


def test_sampling_is_random_not_every_nth(make_sampler: MakeSampler) -> None:
    gate = make_sampler(categories={"X": 0.5}).category("X")
    outcomes = [gate.decide(INFO, 0) is not None for _ in range(64)]
    # Every-Nth would alternate; a seeded random draw has runs, and the first record can be kept.
    assert outcomes != [i % 2 == 1 for i in range(64)] and any(outcomes[:8])
    assert any(a == b for a, b in itertools.pairwise(outcomes))


def test_unconfigured_category_uses_default_rate(make_sampler: MakeSampler) -> None:
    sampler = make_sampler(default_rate=0.0)
    assert sampler.category("NEW").decide(INFO, 0) is None
    assert make_sampler().category("NEW").decide(INFO, 0) == (1.0, n.REASON_CATEGORY)


@pytest.mark.parametrize("level", [WARNING, ERROR, 50])
def test_warning_and_above_always_kept(make_sampler: MakeSampler, level: int) -> None:
    gate = make_sampler().category("HOT")  # rate 0
    assert all(gate.decide(level, trace_id) == (1.0, n.REASON_SEVERITY) for trace_id in (0, 5) for _ in range(100))
    assert make_sampler().stats()["all_errors_kept"]


def test_stats_report_all_errors_kept(make_sampler: MakeSampler) -> None:
    sampler = make_sampler()
    for _ in range(10):
        sampler.category("HOT").decide(ERROR, 0)
        sampler.category("HOT").decide(DEBUG, 0)
        sampler.observe(ERROR)
    stats = sampler.stats()
    assert (stats["errors_seen"], stats["errors_kept"], stats["all_errors_kept"]) == (20, 20, True)
    assert stats["kept_by_category"] == {"HOT": {"ERROR": 10}, n.NO_CATEGORY: {"ERROR": 10}}
    # A configuration that samples errors is reported, not hidden.
    lax = make_sampler(always_keep_level=50, categories={"HOT": 0.0})
    lax.category("HOT").decide(ERROR, 0)
    assert lax.stats()["all_errors_kept"] is False


def test_rate_arithmetic() -> None:
    assert rate_multiplier(1.0, 10, 100) == 1.0
    assert rate_multiplier(0.5, 10, 100) == 1.0
    assert rate_multiplier(2.0, 10, 100) == 11.0
    assert rate_multiplier(50.0, 10, 100) == 100.0
    assert boosted_rate(0.01, 11.0, 1.0) == pytest.approx(0.11)
    assert boosted_rate(0.5, 11.0, 0.6) == 0.6
    assert boosted_rate(0.9, 11.0, 0.5) == 0.9  # a base above the cap is left alone
    assert boosted_rate(0.0, 11.0, 1.0) == 0.0  # a category switched off stays off
    assert combined_probability(0.0, 0.25) == 0.25
    assert combined_probability(0.5, 0.5) == 0.75
    assert combined_probability(0.1, 1.0) == 1.0


def test_boost_raises_rates_and_decays_with_the_error_signal(clock: FakeClock) -> None:
    signal = ErrorSignal(ErrorSignalSettings(half_life_s=10.0, window_s=2.0, max_boost=10.0))
    settings = LogSamplingSettings(
        categories={"SAFE_SEND": 0.01}, boost_factor=10.0, boost_max_multiplier=100.0, boost_refresh_s=0.0
    )
    sampler = LogSampler(settings, error_signal=signal, clock=clock, rng=random.Random(3).random)
    gate = sampler.category("SAFE_SEND")
    assert gate.rate() == 0.01 and sampler.multiplier() == 1.0
    for _ in range(30):  # an error burst on one operation
        signal.observe(("demo", "call_tool"), True, clock())
    assert signal.level(clock()) == pytest.approx(10.0)
    assert sampler.multiplier() == pytest.approx(91.0)
    assert gate.rate() == pytest.approx(0.91)
    trials = 20_000
    kept = sum(gate.decide(DEBUG, 0) is not None for _ in range(trials))
    assert _within(kept, trials, 0.91)
    clock.advance(10.0)  # one half-life: level 5.5
    assert gate.rate() == pytest.approx(0.01 * (1 + 10 * 4.5))
    clock.advance(200.0)  # twenty more: back to the base rate
    assert gate.rate() == pytest.approx(0.01, rel=1e-3)
    kept = sum(gate.decide(DEBUG, 0) is not None for _ in range(trials))
    assert _within(kept, trials, 0.01)
    assert sampler.stats()["rate_multiplier"] == pytest.approx(1.0, abs=1e-3)


def test_boost_is_capped_and_refreshed_on_its_interval(clock: FakeClock) -> None:
    signal = ErrorSignal()
    settings = LogSamplingSettings(categories={"A": 0.2}, boost_rate_cap=0.5, boost_refresh_s=1.0)
    sampler = LogSampler(settings, error_signal=signal, clock=clock)
    assert sampler.category("A").rate() == 0.2  # read now: no boost; the next read is due in 1 s
    for _ in range(30):
        signal.observe(("s", "op"), True, clock())
    assert sampler.category("A").rate() == 0.2  # not re-read yet
    clock.advance(1.0)
    assert sampler.category("A").rate() == 0.5  # capped


def test_a_broken_error_signal_means_no_boost(clock: FakeClock) -> None:
    class Broken:
        def level(self, now: float) -> float:
            raise RuntimeError("boom")

    sampler = LogSampler(LogSamplingSettings(categories={"A": 0.2}), error_signal=Broken(), clock=clock)
    assert sampler.category("A").rate() == 0.2


class Emitted:
    def __init__(self, sampler: LogSampler) -> None:
        self.items: list[tuple[Any, tuple[float, str]]] = []
        sampler.attach(lambda entry, stamp: self.items.append((entry, stamp)))


def test_records_of_a_kept_trace_are_all_emitted(make_sampler: MakeSampler, decisions: FakeDecisionSource) -> None:
    sampler = make_sampler()
    out = Emitted(sampler)
    gate = sampler.category("HOT")
    for i in range(5):
        assert gate.decide(DEBUG, 77) is n.HOLD
        gate.hold(77, DEBUG, f"r{i}")
    assert gate.decide(DEBUG, 0) is None  # outside any trace: decided at once
    assert sampler.pending == 5 and out.items == []
    decisions.decide(77, True, 0.25)
    assert [e for e, _ in out.items] == [f"r{i}" for i in range(5)]
    assert {s for _, s in out.items} == {(0.25, n.REASON_TRACE)}
    stats = sampler.stats()
    assert stats["kept_by_reason"] == {n.REASON_TRACE: 5}
    assert stats["pending"] == 0


def test_records_of_a_dropped_trace_are_dropped(make_sampler: MakeSampler, decisions: FakeDecisionSource) -> None:
    sampler = make_sampler()
    out = Emitted(sampler)
    gate = sampler.category("HOT")
    for _ in range(5):
        gate.hold(78, DEBUG, "x") if gate.decide(DEBUG, 78) is n.HOLD else None
    decisions.decide(78, False, 0.1)
    assert out.items == []
    assert sampler.stats()["dropped_by_reason"] == {n.DROP_TRACE_DROPPED: 5}


def test_records_after_the_decision_follow_the_cached_decision(
    make_sampler: MakeSampler, decisions: FakeDecisionSource
) -> None:
    sampler = make_sampler()
    gate = sampler.category("HOT")
    decisions.decide(1, True, 0.5)
    decisions.decide(2, False, 0.5)
    assert gate.decide(DEBUG, 1) == (0.5, n.REASON_TRACE)
    assert gate.decide(DEBUG, 2) is None
    assert sampler.stats()["dropped_by_reason"] == {n.DROP_TRACE_DROPPED: 1}


def test_a_decision_racing_the_hold_is_honoured(make_sampler: MakeSampler, decisions: FakeDecisionSource) -> None:
    sampler = make_sampler()
    out = Emitted(sampler)
    gate = sampler.category("HOT")
    assert gate.decide(DEBUG, 9) is n.HOLD
    decisions.decide(9, True, 1.0)  # arrives before the record is queued
    gate.hold(9, DEBUG, "late")
    assert out.items == []
    sampler.expire()  # the next drain settles it from the cache
    assert [e for e, _ in out.items] == ["late"]


def test_without_a_decision_source_records_in_a_trace_are_decided_at_once(make_sampler: MakeSampler) -> None:
    sampler = make_sampler(follow=False)
    assert sampler.category("HOT").decide(DEBUG, 5) is None
    assert sampler.stats()["dropped_by_reason"] == {n.DROP_SAMPLED_OUT: 1}


def test_bounds_hold_when_a_trace_never_finishes(make_sampler: MakeSampler, clock: FakeClock) -> None:
    sampler = make_sampler(max_pending_records=100, max_pending_per_trace=30, max_wait_s=5.0, sweep_interval_s=0.0)
    gate = sampler.category("HOT")
    for i in range(1000):  # one trace that never ends, plus a drain every 10 records
        if gate.decide(DEBUG, 123) is n.HOLD:
            gate.hold(123, DEBUG, i)
        if i % 10 == 9:
            clock.advance(0.1)
            sampler.expire()
        assert sampler.pending <= 100
    stats = sampler.stats()
    dropped = stats["dropped_by_reason"]
    assert dropped[n.DROP_BOUND] > 0 and dropped[n.DROP_EXPIRED] > 0
    assert sum(dropped.values()) + stats["pending"] == 1000
    assert sampler.flush() == stats["pending"]
    assert sampler.stats()["dropped_by_reason"][n.DROP_SHUTDOWN] == stats["pending"]


def test_the_intake_queue_is_bounded_between_drains(make_sampler: MakeSampler) -> None:
    sampler = make_sampler(max_pending_records=10)
    gate = sampler.category("HOT")
    for i in range(25):
        gate.hold(5, DEBUG, i)
    assert sampler.pending == 10
    assert sampler.stats()["dropped_by_reason"] == {n.DROP_BOUND: 15}


def test_decisions_expire_other_traces_on_their_sweep(
    make_sampler: MakeSampler, decisions: FakeDecisionSource, clock: FakeClock
) -> None:
    sampler = make_sampler(max_wait_s=2.0, sweep_interval_s=1.0)
    gate = sampler.category("HOT")
    gate.hold(1, DEBUG, "stuck")
    decisions.decide(99, False, 1.0)  # drains: "stuck" starts waiting now
    clock.advance(2.5)
    decisions.decide(100, False, 1.0)
    assert sampler.stats()["dropped_by_reason"] == {n.DROP_EXPIRED: 1}


def test_emitter_failures_never_reach_the_tail_sampler(
    make_sampler: MakeSampler, decisions: FakeDecisionSource
) -> None:
    sampler = make_sampler()

    def broken(entry: Any, stamp: tuple[float, str]) -> None:
        raise RuntimeError("sink down")

    sampler.attach(broken)
    gate = sampler.category("HOT")
    gate.hold(3, DEBUG, "x")
    decisions.decide(3, True, 1.0)  # must not raise
    assert sampler.stats()["internal_errors"] == 1


def test_categories_past_the_cap_share_one_gate(make_sampler: MakeSampler) -> None:
    sampler = make_sampler(categories={})
    gates = {sampler.category(f"c{i}").name for i in range(300)}
    assert len(gates) == 257 and "other" in gates


def test_settings_name_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"logs\.sampling\.categories\.X: 2"):
        LogSamplingSettings(categories={"X": 2})
    with pytest.raises(ValueError, match="max_wait_s"):
        LogSamplingSettings(max_wait_s=0)
    assert LogSamplingSettings().rate("SESSION") == 0.05


def test_counts_are_exported_as_metrics(make_sampler: MakeSampler, decisions: FakeDecisionSource) -> None:
    sampler = make_sampler()
    reader = InMemoryMetricReader()
    register_log_metrics(sampler, MeterProvider(metric_readers=[reader]))
    hot, everything = sampler.category("HOT"), sampler.category("ALL")
    for _ in range(999):
        hot.decide(DEBUG, 0)
    hot.decide(ERROR, 0)
    everything.decide(INFO, 0)
    hot.hold(4, DEBUG, "h") if hot.decide(DEBUG, 4) is n.HOLD else None
    points: dict[tuple[str, tuple[tuple[str, Any], ...]], float] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    points[(metric.name, tuple(sorted(point.attributes.items())))] = point.value  # type: ignore[union-attr]

    def at(spec: Any, **labels: str) -> float:
        return points[(spec.name, tuple(sorted(labels.items())))]

    assert at(n.RECORDS_SEEN, **{n.CATEGORY: "HOT", n.LEVEL: "DEBUG"}) == 1000
    assert at(n.RECORDS_SEEN, **{n.CATEGORY: "HOT", n.LEVEL: "ERROR"}) == 1
    assert at(n.RECORDS_KEPT, **{n.CATEGORY: "HOT", n.LEVEL: "ERROR", n.REASON: n.REASON_SEVERITY}) == 1
    assert at(n.RECORDS_KEPT, **{n.CATEGORY: "ALL", n.LEVEL: "INFO", n.REASON: n.REASON_CATEGORY}) == 1
    assert at(n.RECORDS_DROPPED, **{n.CATEGORY: "HOT", n.DROP_REASON: n.DROP_SAMPLED_OUT}) == 999
    assert at(n.PENDING_RECORDS) == 1
    assert at(n.RATE_MULTIPLIER) == 1.0


def test_without_replay_kept_records_are_counted_not_rebuilt(clock: FakeClock, decisions: FakeDecisionSource) -> None:
    """Nothing exports logs: records of kept traces are counted as kept, never handed back to the bridge."""
    sampler = LogSampler(
        LogSamplingSettings(categories={"HOT": 0.0}), decisions=decisions, clock=clock, replay_kept=False
    )
    out = Emitted(sampler)
    gate = sampler.category("HOT")
    for i in range(3):
        assert gate.decide(DEBUG, 90) is n.HOLD
        gate.hold(90, DEBUG, f"r{i}")
    decisions.decide(90, True, 0.5)
    assert out.items == []
    assert sampler.stats()["kept_by_reason"] == {n.REASON_TRACE: 3}


def test_decisions_in_a_batch_settle_every_trace(make_sampler: MakeSampler) -> None:
    sampler = make_sampler()
    out = Emitted(sampler)
    gate = sampler.category("HOT")
    for trace_id in (1, 2, 3):
        gate.hold(trace_id, DEBUG, f"t{trace_id}") if gate.decide(DEBUG, trace_id) is n.HOLD else None
    sampler.on_decisions([(1, True, 0.1, "a"), (2, False, 0.1, "b"), (3, True, 1.0, "c")])
    assert sorted(e for e, _ in out.items) == ["t1", "t3"]
    assert sampler.stats()["dropped_by_reason"] == {n.DROP_TRACE_DROPPED: 1}


def test_effective_rates_show_the_boost(clock: FakeClock) -> None:
    signal = ErrorSignal(ErrorSignalSettings(baseline_error_rate=0.01, max_boost=10, half_life_s=60))
    sampler = LogSampler(
        LogSamplingSettings(categories={"MSG_LOOP": 0.001}, boost_refresh_s=0), error_signal=signal, clock=clock
    )
    sampler.category("MSG_LOOP")
    assert sampler.effective_rates()["MSG_LOOP"] == {"base": 0.001, "effective": 0.001, "multiplier": 1.0}
    for i in range(400):
        signal.observe(("svc", "op"), i % 2 == 0, clock.now)
    rates = sampler.effective_rates()["MSG_LOOP"]
    assert rates["effective"] > 0.01 and rates["multiplier"] > 10
