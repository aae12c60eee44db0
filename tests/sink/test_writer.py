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
