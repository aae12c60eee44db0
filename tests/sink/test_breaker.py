"""The circuit breaker's state machine, driven by a fake clock: no threads, no sleeps."""

from __future__ import annotations

import pytest

from pipeline.export.postgres.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(threshold: int = 3, reset_s: float = 1.0, reset_max_s: float = 8.0):
    clock = Clock()
    transitions: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        threshold, reset_s, reset_max_s, clock, lambda a, b: transitions.append((a.value, b.value))
    )
    return breaker, clock, transitions


def test_stays_closed_below_the_threshold_and_a_success_resets_the_count() -> None:
    breaker, _, transitions = make(threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    assert transitions == []


def test_opens_after_consecutive_failures_and_refuses_calls_during_the_cooldown() -> None:
    breaker, clock, transitions = make(threshold=2, reset_s=1.0)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.now += 0.5
    assert not breaker.allow()
    assert breaker.seconds_until_probe() == pytest.approx(0.5)
    assert transitions == [("closed", "open")]


def test_half_open_after_the_cooldown_then_closed_by_a_successful_probe() -> None:
    breaker, clock, transitions = make(threshold=1, reset_s=1.0)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.seconds_until_probe() == 0.0
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_probe_reopens_with_a_doubled_cooldown_up_to_the_max() -> None:
    breaker, clock, _ = make(threshold=1, reset_s=1.0, reset_max_s=3.0)
    breaker.record_failure()
    cooldowns = []
    for _ in range(4):
        clock.now += 100
        assert breaker.allow()  # the probe
        breaker.record_failure()
        assert breaker.state is BreakerState.OPEN
        cooldowns.append(breaker.snapshot()["cooldown_s"])
    assert cooldowns == [2.0, 3.0, 3.0, 3.0]
    clock.now += 3.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.snapshot()["cooldown_s"] == 1.0  # back to the base after recovery


def test_snapshot_counts_openings() -> None:
    breaker, clock, _ = make(threshold=1)
    breaker.record_failure()
    clock.now += 10
    breaker.allow()
    breaker.record_failure()
    snap = breaker.snapshot()
    assert snap["state"] == "open" and snap["times_opened"] == 2


@pytest.mark.parametrize("args", [(0, 1.0, 1.0), (1, 0.0, 1.0), (1, 2.0, 1.0)])
def test_rejects_invalid_thresholds(args: tuple[int, float, float]) -> None:
    with pytest.raises(ValueError, match="invalid breaker thresholds"):
        CircuitBreaker(*args, clock=lambda: 0.0)


def test_trip_opens_at_once_and_from_half_open_doubles_the_cooldown() -> None:
    breaker, clock, transitions = make(threshold=5, reset_s=1.0, reset_max_s=3.0)
    breaker.trip()  # one hung call is enough: no waiting for the threshold
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.snapshot()["cooldown_s"] == 1.0
    breaker.trip()  # already open: stays open, the cooldown is not restarted twice over
    assert transitions == [("closed", "open")]
    clock.now += 1.0
    assert breaker.allow() and breaker.state is BreakerState.HALF_OPEN
    breaker.trip()
    assert breaker.state is BreakerState.OPEN and breaker.snapshot()["cooldown_s"] == 2.0
    assert breaker.snapshot()["times_opened"] == 2


def test_with_the_default_settings_a_probe_is_never_more_than_five_seconds_away() -> None:
    """Replay after an outage waits for the next probe at most: the cooldown stops growing at 5 s."""
    from pipeline.export.postgres import SinkSettings

    settings = SinkSettings()
    breaker, clock, _ = make(1, settings.breaker_reset_s, settings.breaker_reset_max_s)
    breaker.record_failure()
    for _ in range(50):  # a long outage: fifty failed probes
        clock.now += breaker.seconds_until_probe()
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.seconds_until_probe() <= 5.0
    assert breaker.snapshot()["cooldown_s"] == settings.breaker_reset_max_s == 5.0
