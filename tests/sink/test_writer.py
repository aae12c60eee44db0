"""The worker's rules against a fake database edge: retry, breaker, spool order, rejected rows, shutdown.

The fake records every call and fails on command, so these tests need no Postgres; they use real threads with
short timings (the pure parts have their own clock-driven tests).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest

from pipeline.export.postgres import PostgresSink
from pipeline.export.postgres.deadline import DeadlineExceeded
from pipeline.export.postgres.store import Failure, classify

from .conftest import fast_settings


class FakeStore:
    def __init__(self) -> None:
        self.down = False
        self.rows: dict[str, list[dict[str, Any]]] = {"points": [], "spans": [], "events": []}
        self.calls = 0
        self.lock = threading.Lock()

    def write(self, signal: str, rows: list[dict[str, Any]]) -> int:
        with self.lock:
            self.calls += 1
            if self.down:
                raise psycopg_pool.PoolTimeout("down")
            if any(r.get("bad") for r in rows):
                raise psycopg.errors.InvalidParameterValue("element is invalid")
            seen = {r["id"] for r in self.rows[signal]}
            new = [r for r in rows if r["id"] not in seen]
            self.rows[signal].extend(new)
            return len(new)

    def ping(self) -> None:
        if self.down:
            raise psycopg_pool.PoolTimeout("down")

    def maintain(self, retention_days: int, days_ahead: int) -> tuple[int, int]:
        if self.down:
            raise psycopg_pool.PoolTimeout("down")
        return (0, 0)

    def close(self, timeout_s: float) -> None:
        pass

    def ids(self, signal: str = "events") -> list[int]:
        with self.lock:
            return [r["id"] for r in self.rows[signal]]


def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


def rows(start: int, n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": i, **extra} for i in range(start, start + n)]


def test_classify_blames_the_rows_only_for_data_errors() -> None:
    assert classify(psycopg.errors.InvalidParameterValue("x")) is Failure.REJECTED
    assert classify(psycopg.errors.ProgramLimitExceeded("x")) is Failure.REJECTED
    assert classify(psycopg.errors.UniqueViolation("x")) is Failure.REJECTED
    assert classify(psycopg.errors.UndefinedFunction("x")) is Failure.TRANSIENT  # migrations missing
    assert classify(psycopg.errors.InsufficientPrivilege("x")) is Failure.TRANSIENT
    assert classify(psycopg.errors.AdminShutdown("x")) is Failure.TRANSIENT
    assert classify(psycopg_pool.PoolTimeout("x")) is Failure.TRANSIENT
    assert classify(TypeError("x")) is Failure.REJECTED


def test_rows_are_written_in_batches(tmp_path: Path, store: FakeStore) -> None:
    sink = PostgresSink("", fast_settings(tmp_path, batch_size=50), store=store)
    try:
        assert sink.enqueue("events", rows(0, 120)) == 120
        assert sink.flush(5)
        assert store.ids() == list(range(120))
        stats = sink.stats()
        assert stats["written"] == {"events": 120} and stats["enqueued"] == {"events": 120}
    finally:
        sink.shutdown(5)


def test_an_outage_spools_opens_the_breaker_and_replays_in_order(tmp_path: Path, store: FakeStore) -> None:
    sink = PostgresSink("", fast_settings(tmp_path), store=store)
    try:
        sink.enqueue("events", rows(0, 10))
        assert sink.flush(5)
        store.down = True
        for k in range(5):
            sink.enqueue("events", rows(10 + 10 * k, 10))
            time.sleep(0.05)
        wait_for(lambda: sink.health()["breaker"] == "open")
        assert sink.flush(0.5) is False  # breaker open: returns at once, rows are in the spool
        # Rows wait in the spool with no successful write for a few flush intervals: not ready.
        wait_for(lambda: sink.health()["stalled"])
        health = sink.health()
        assert not health["ready"] and health["status"] == "degraded" and health["spool_bytes"] > 0
        store.down = False
        sink.enqueue("events", rows(60, 10))  # arrives while the spool still holds older rows
        wait_for(lambda: sink.flush(0.5), timeout_s=10)
        assert store.ids() == list(range(70))
        stats = sink.stats()
        assert stats["breaker"].get("open", 0) >= 1 and stats["breaker"].get("closed", 0) >= 1
        assert stats["spooled"]["events"] >= 50 and stats["dropped"] == {}
        health = sink.health()
        assert health["status"] == "ok" and health["ready"] and not health["stalled"]
    finally:
        sink.shutdown(5)


def test_rejected_rows_are_isolated_and_counted_the_rest_is_written(tmp_path: Path, store: FakeStore) -> None:
    sink = PostgresSink("", fast_settings(tmp_path, batch_size=100), store=store)
    try:
        batch = rows(0, 100)
        batch[37]["bad"] = True
        batch[81]["bad"] = True
        sink.enqueue("events", batch)
        assert sink.flush(5)
        assert sorted(store.ids()) == [i for i in range(100) if i not in (37, 81)]
        assert sink.stats()["dropped"] == {"events": {"rejected": 2}}
        assert sink.health()["breaker"] == "closed"  # bad rows say nothing about the database
    finally:
        sink.shutdown(5)


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path, store: FakeStore) -> None:
    store.down = True
    sink = PostgresSink("", fast_settings(tmp_path, queue_size=100, flush_interval_s=5.0), store=store)
    try:
        started = time.perf_counter()
        accepted = sum(sink.enqueue("events", rows(i, 1)) for i in range(300))
        assert time.perf_counter() - started < 0.5
        assert accepted <= 300
        dropped = sink.stats()["dropped"].get("events", {}).get("queue_full", 0)
        assert accepted + dropped == 300 and dropped > 0
    finally:
        sink.shutdown(2)


def test_a_full_spool_drops_and_counts(tmp_path: Path, store: FakeStore) -> None:
    store.down = True
    sink = PostgresSink("", fast_settings(tmp_path, spool_budget_bytes=300), store=store)
    try:
        for k in range(20):
            sink.enqueue("events", rows(10 * k, 10))
            time.sleep(0.02)
        wait_for(lambda: sink.stats()["dropped"].get("events", {}).get("spool_full", 0) > 0)
        stats = sink.stats()
        assert stats["spool_bytes"] <= 300
    finally:
        sink.shutdown(2)
    stats = sink.stats()
    accounted = stats["spooled"].get("events", 0) + stats["dropped"]["events"]["spool_full"]
    assert accounted == 200


def test_shutdown_with_the_database_down_spools_and_the_next_sink_replays(tmp_path: Path, store: FakeStore) -> None:
    store.down = True
    sink = PostgresSink("", fast_settings(tmp_path, flush_interval_s=10.0), store=store)
    sink.enqueue("events", rows(0, 30))
    assert sink.shutdown(5)
    assert sink.enqueue("events", rows(30, 1)) == 0  # closed: counted, not queued
    assert sink.stats()["dropped"]["events"]["closed"] == 1
    assert list(tmp_path.glob("seg-*.jsonl"))

    store.down = False
    again = PostgresSink("", fast_settings(tmp_path), store=store)
    try:
        wait_for(lambda: again.flush(0.5))
        assert store.ids() == list(range(30))
    finally:
        again.shutdown(5)


def test_one_process_per_spool_directory(tmp_path: Path, store: FakeStore) -> None:
    from pipeline.export.postgres import SinkError

    sink = PostgresSink("", fast_settings(tmp_path), store=store)
    try:
        with pytest.raises(SinkError, match="in use"):
            PostgresSink("", fast_settings(tmp_path), store=store)
    finally:
        sink.shutdown(2)


def test_record_event_rejects_bad_input_without_raising(tmp_path: Path, store: FakeStore) -> None:
    sink = PostgresSink("", fast_settings(tmp_path), store=store)
    try:
        assert sink.record_event("", {}) is False
        assert sink.record_event("t", ["not", "a", "mapping"]) is False  # type: ignore[arg-type]
        assert sink.record_event("cache_hit", {"k": 1}) is True
        assert sink.stats()["dropped"] == {"events": {"rejected": 2}}
    finally:
        sink.shutdown(2)


class HangingStore(FakeStore):
    """A database that hangs: every write misses its deadline; probes block until the test lets them answer."""

    def __init__(self) -> None:
        super().__init__()
        self.hung = False
        self.probe_entered = threading.Event()
        self.probe_release = threading.Event()
        self.probe_ok = False
        self.pings = 0

    def write(self, signal: str, rows: list[dict[str, Any]]) -> int:
        if self.hung:
            with self.lock:
                self.calls += 1
            raise DeadlineExceeded("insert did not finish within 0.5 s (client-side deadline)")
        return super().write(signal, rows)

    def ping(self) -> None:
        self.pings += 1
        self.probe_entered.set()
        assert self.probe_release.wait(30), "the test never released the probe"
        if not self.probe_ok:
            raise DeadlineExceeded("probe did not finish within 0.5 s (client-side deadline)")


def test_a_write_past_its_deadline_opens_the_breaker_at_once_without_retrying(tmp_path: Path) -> None:
    store = HangingStore()
    store.probe_release.set()  # probes fail at once
    sink = PostgresSink("", fast_settings(tmp_path, breaker_failure_threshold=5, max_attempts=3), store=store)
    try:
        sink.enqueue("events", rows(0, 10))
        assert sink.flush(5)
        store.hung = True
        sink.enqueue("events", rows(10, 10))
        wait_for(lambda: sink.stats()["spooled"].get("events", 0) == 10)
        stats = sink.stats()
        assert store.calls == 2  # the first batch, then one attempt at the second: no retry of a hung call
        assert stats["retries"] == {"events": 1} and stats["breaker"]["open"] == 1
        assert sink.health()["breaker"] in ("open", "half_open")
        assert "client-side deadline" in (sink.health()["last_error"] or "")
    finally:
        sink.shutdown(2)


def test_the_probe_runs_off_the_worker_which_keeps_spooling_and_replay_follows_its_success(tmp_path: Path) -> None:
    store = HangingStore()
    sink = PostgresSink("", fast_settings(tmp_path), store=store)
    try:
        store.hung = True
        sink.enqueue("events", rows(0, 10))
        assert store.probe_entered.wait(10), "no probe after the breaker opened"
        # The probe hangs; the worker does not: new rows keep reaching the spool, and readiness says stalled.
        spooled = sink.stats()["spooled"].get("events", 0)
        sink.enqueue("events", rows(10, 10))
        wait_for(lambda: sink.stats()["spooled"].get("events", 0) == spooled + 10)
        wait_for(lambda: sink.health()["stalled"])
        assert sink.health()["breaker"] == "half_open" and not sink.health()["ready"]
        assert sink.stats()["probes"] == 1 and store.pings == 1

        store.hung = False
        store.probe_ok = True
        store.probe_release.set()  # the database answers: the probe closes the breaker, replay follows
        wait_for(lambda: sink.flush(0.5), timeout_s=10)
        assert store.ids() == list(range(20))
        assert sink.health()["ready"] and sink.stats()["breaker"]["closed"] == 1
    finally:
        store.probe_release.set()
        sink.shutdown(2)


def test_strings_are_repaired_and_counted_and_a_spool_failure_costs_only_its_rows(
    tmp_path: Path, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = PostgresSink("", fast_settings(tmp_path), store=store)
    try:
        store.down = True
        sink.enqueue("events", [{"id": 0, "s": "lone \ud800"}, {"id": 1, "s": "nul \x00"}, {"id": 2, "s": "ok"}])
        wait_for(lambda: sink.stats()["spooled"].get("events", 0) == 3)
        # A spool that raises something other than OSError on one batch (a bug): the rows go one by one.
        real_append = sink._spool.append
        calls: list[int] = []

        def flaky_append(signal: str, batch: list[dict[str, Any]]) -> bool:
            calls.append(len(batch))
            if len(calls) == 1:
                raise ValueError("a bug")
            return real_append(signal, batch)

        monkeypatch.setattr(sink._spool, "append", flaky_append)
        sink.enqueue("events", rows(3, 4))
        wait_for(lambda: sink.stats()["spooled"].get("events", 0) == 7)
        assert calls == [4, 1, 1, 1, 1]
        monkeypatch.setattr(sink._spool, "append", real_append)
        store.down = False
        wait_for(lambda: sink.flush(0.5), timeout_s=10)
    finally:
        sink.shutdown(2)
    stats = sink.stats()
    assert stats["repaired"] == {"events": 2} and stats["dropped"] == {}
    written = {r["id"]: r for r in store.rows["events"]}
    assert sorted(written) == list(range(7))
    assert written[0]["s"] == "lone \ufffd" and written[1]["s"] == "nul \\u0000"
