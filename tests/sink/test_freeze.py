"""A hung database under load, then kill -9 of the writing process: end to end.

Every Postgres process is frozen (SIGSTOP) while a child process feeds its sink. The child's writer must not
hang: its write is cut at the client-side deadline, the breaker opens, rows go to the spool (which keeps growing
while the database stays frozen) and readiness turns to not ready. Then the child is killed with SIGKILL, the
database resumes (SIGCONT), and a new sink on the same spool replays it.

Loss bound: rows the child held in memory at the kill, i.e. accepted since its worker last moved the queue to
the spool (one flush interval, or a full batch that woke it), so at most one batch (200 rows). Every other
row is in the database exactly once; rows refused at the door are counted by the child (``record_event`` False
and ``dropped``). Only state and sequence are asserted; the timeouts below are hang guards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline.export.postgres import PostgresSink

from .conftest import FreezablePostgres, fast_settings
from .freeze import frozen
from .freeze_child import SETTINGS

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
BATCH = SETTINGS["batch_size"]


def emitted(path: Path) -> dict[int, bool]:
    out: dict[int, bool] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:  # the last line may be torn by the kill
            out[int(parts[0])] = parts[1] == "1"
    return out


def last_status(path: Path) -> dict[str, Any]:
    for line in reversed(path.read_text().splitlines() if path.exists() else []):
        try:
            return json.loads(line)  # type: ignore[no-any-return]
        except ValueError:  # torn
            continue
    return {}


def wait_for_status(path: Path, check: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status = last_status(path)
        if status and check(status):
            return status
        assert time.monotonic() < deadline, f"hang guard: {what}; last status {status}"
        time.sleep(0.05)


def events(status: dict[str, Any], key: str) -> int:
    return int(status["stats"][key].get("events", 0))


def test_freeze_under_load_then_kill_9_loses_at_most_one_batch(
    freezable_pg: FreezablePostgres, freezable_dsn: str, tmp_path: Path
) -> None:
    pg, dsn = freezable_pg, freezable_dsn
    spool_dir, emitted_file, status_file = tmp_path / "spool", tmp_path / "emitted", tmp_path / "status"
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("freeze_child.py")),
            dsn,
            *map(str, (spool_dir, emitted_file, status_file)),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        wait_for_status(status_file, lambda s: events(s, "written") >= 2 * BATCH, "the child writes to the database")
        with frozen(pg):
            # The write under way hits its deadline, the breaker opens, rows go to the spool: not ready.
            hung = wait_for_status(
                status_file,
                lambda s: s["health"]["breaker"] != "closed" and events(s, "spooled") > 0 and not s["health"]["ready"],
                "breaker open, rows spooled and not ready while the database is frozen",
            )
            assert hung["health"]["stalled"] and hung["health"]["status"] == "degraded"
            assert "deadline" in (hung["health"]["last_error"] or ""), hung["health"]["last_error"]
            # The writer is not hung: the spool keeps growing, batch after batch, with the database still frozen.
            spooled_then = events(hung, "spooled")
            moving = wait_for_status(
                status_file, lambda s: events(s, "spooled") >= spooled_then + 2 * BATCH, "the spool keeps growing"
            )
            assert moving["health"]["breaker"] != "closed"
            assert moving["health"]["queue_rows"] <= BATCH  # what waits in memory stays within a batch
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        # Thawed (SIGCONT) on leaving the block; the killed process's counters end at its last status line.
        final = last_status(status_file)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)

    record = emitted(emitted_file)
    sink = PostgresSink(dsn, fast_settings(spool_dir))  # the restart: replays what the child left
    try:
        hang_guard = time.monotonic() + 30
        while not sink.flush(1.0):
            assert time.monotonic() < hang_guard, sink.health()
        replay = sink.stats()
    finally:
        sink.shutdown(5)

    with psycopg.connect(dsn) as conn:
        stored = [r[0] for r in conn.execute("SELECT (data->>'i')::int FROM monitoring.events WHERE type = 'freeze'")]
    accepted = {i for i, ok in record.items() if ok}
    refused = len(record) - len(accepted)
    lost = sorted(accepted - set(stored))
    child_dropped = sum(n for by_reason in final["stats"]["dropped"].values() for n in by_reason.values())
    figures = (
        f"freeze+kill: sent {len(record)} (accepted {len(accepted)}, refused and counted {refused}),"
        f" written {len(stored)} ({events(final, 'written')} before the kill, {replay['written'].get('events', 0)}"
        f" replayed, {replay['skipped'].get('events', 0)} already there), spooled {events(final, 'spooled')},"
        f" lost {len(lost)} (held in memory at the kill; bound {BATCH}), counted drops {child_dropped}"
        f" + corrupt spool lines {replay['dropped']}; deadlines cut the hung calls"
    )
    print(figures)
    assert len(stored) == len(set(stored)), "a replay must not double a row"
    assert set(stored) <= accepted
    assert len(lost) <= BATCH, figures
    # What was lost is the tail: rows accepted after the child's worker last reached the spool.
    assert all(i > max(accepted) - 2 * BATCH for i in lost), figures
    # Nothing else was lost: no row refused at the door, none dropped by the child's sink.
    assert refused == 0 and final["stats"]["dropped"] == {}, figures
    assert replay["written"].get("events", 0) > 0 and replay["dropped"] in ({}, {"unknown": {"spool_corrupt": 1}})
