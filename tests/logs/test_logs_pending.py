"""The pure core: held records per trace, bounded in count and time; the decision cache. Fake time only."""

from __future__ import annotations

import pytest

from pipeline.sampling.logs import LogDecisionCache, PendingLogs


def test_resolve_returns_a_trace_s_items_in_order() -> None:
    p: PendingLogs[str] = PendingLogs(max_records=10, max_per_trace=10, max_wait_s=5)
    assert p.add(1, "a", 0.0) and p.add(2, "x", 0.1) and p.add(1, "b", 0.2)
    assert (len(p), p.trace_count) == (3, 2)
    assert p.resolve(1) == ["a", "b"]
    assert p.resolve(1) == []  # resolved once
    assert (len(p), p.trace_count) == (1, 1)


def test_total_bound_refuses_new_items() -> None:
    p: PendingLogs[int] = PendingLogs(max_records=3, max_per_trace=10, max_wait_s=5)
    assert [p.add(i % 2, i, 0.0) for i in range(5)] == [True, True, True, False, False]
    assert len(p) == 3
    p.resolve(0)
    assert p.add(7, 99, 0.0)  # room again


def test_per_trace_bound_leaves_other_traces_room() -> None:
    p: PendingLogs[int] = PendingLogs(max_records=100, max_per_trace=2, max_wait_s=5)
    assert [p.add(1, i, 0.0) for i in range(4)] == [True, True, False, False]
    assert p.add(2, 0, 0.0)
    assert len(p) == 3


def test_zero_bounds_hold_nothing() -> None:
    assert not PendingLogs[int](max_records=0, max_per_trace=5, max_wait_s=1).add(1, 1, 0.0)
    assert not PendingLogs[int](max_records=5, max_per_trace=0, max_wait_s=1).add(1, 1, 0.0)


def test_expire_hands_back_traces_that_waited_too_long() -> None:
    p: PendingLogs[str] = PendingLogs(max_records=10, max_per_trace=10, max_wait_s=5)
    p.add(1, "a", 0.0)
    p.add(2, "b", 2.0)
    p.add(1, "a2", 4.0)  # joins trace 1, whose wait started at 0
    assert p.expire(4.9) == []
    assert p.expire(5.0) == ["a", "a2"]
    assert p.expire(6.9) == []
    assert p.expire(7.0) == ["b"]
    assert len(p) == 0 and p.trace_count == 0


def test_a_trace_that_never_finishes_stays_bounded() -> None:
    p: PendingLogs[int] = PendingLogs(max_records=50, max_per_trace=20, max_wait_s=1)
    now, refused, expired = 0.0, 0, 0
    for i in range(10_000):  # one endless trace, a record every 10 ms
        now = i * 0.01
        refused += not p.add(42, i, now)
        expired += len(p.expire(now))
        assert len(p) <= 20
    assert refused > 0 and expired > 0
    assert refused + expired + len(p) == 10_000


def test_flush_empties() -> None:
    p: PendingLogs[int] = PendingLogs(max_records=10, max_per_trace=10, max_wait_s=1)
    p.add(1, 1, 0.0)
    p.add(2, 2, 0.0)
    assert sorted(p.flush()) == [1, 2]
    assert len(p) == 0 and p.trace_count == 0


def test_invalid_bounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_records and max_per_trace must be >= 0"):
        PendingLogs(max_records=-1, max_per_trace=1, max_wait_s=1)
    with pytest.raises(ValueError, match="max_wait_s > 0"):
        PendingLogs(max_records=1, max_per_trace=1, max_wait_s=0)


def test_decision_cache_keeps_the_most_recent() -> None:
    cache = LogDecisionCache(max_size=2)
    cache.put(1, True, 1.0)
    cache.put(2, False, 0.1)
    cache.put(3, True, 0.5)
    assert cache.get(1) is None
    assert cache.get(2) == (False, 0.1)
    assert cache.get(3) == (True, 0.5)
    assert len(cache) == 2
    empty = LogDecisionCache(max_size=0)
    empty.put(1, True, 1.0)
    assert empty.get(1) is None
