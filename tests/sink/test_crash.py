"""Kill a process that writes through the sink while the database is down; the next start replays its spool.

What may be lost (the documented bound): rows still in the killed process's memory, i.e. accepted since its
worker last moved the queue to the spool (one flush interval, or one batch) plus a batch being retried at the
instant of the kill. With the breaker open there is no retry, so the loss is the last flush interval.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from pipeline.export.postgres import PostgresSink
from pipeline.migrate import migrate
from tests.conftest import RestartablePostgres

from .conftest import fast_settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# Loss window: the child's flush interval (0.1 s) with generous slack for a loaded 2-core machine.
LOSS_WINDOW_S = 1.0


def emitted(log_file: Path) -> dict[int, float]:
    out: dict[int, float] = {}
    for line in log_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:  # the last line may be torn by the kill
            out[int(parts[0])] = float(parts[1])
    return out


def wait_for_lines(log_file: Path, n: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not (log_file.exists() and len(emitted(log_file)) >= n):
        assert time.monotonic() < deadline, "the child did not start emitting"
        time.sleep(0.05)


def test_a_killed_writer_loses_at_most_its_last_flush_interval(
    restartable_pg: RestartablePostgres, tmp_path: Path
) -> None:
    pg = restartable_pg
    migrate(pg.dsn)
    spool_dir, log_file = tmp_path / "spool", tmp_path / "emitted.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("crash_child.py")), pg.dsn, str(spool_dir), str(log_file)],
        env=env,
        cwd=ROOT,
    )
    try:
        wait_for_lines(log_file, 200, timeout_s=30)  # up, and writing to the database
        pg.stop()
        stopped_at = time.time()
        time.sleep(2.0)  # the child's breaker opens and its batches go to the spool
        assert list(spool_dir.glob("seg-*.jsonl")), "the child should be spooling while the database is down"
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)

    pg.start()
    record = emitted(log_file)
    sink = PostgresSink(pg.dsn, fast_settings(spool_dir))  # the next start: replays what the child left
    try:
        deadline = time.monotonic() + 20
        while not sink.flush(1.0):
            assert time.monotonic() < deadline, sink.health()
        stats = sink.stats()
    finally:
        sink.shutdown(5)

    with psycopg.connect(pg.dsn) as conn:
        stored = [r[0] for r in conn.execute("SELECT (data->>'i')::int FROM monitoring.events WHERE type = 'crash'")]
    assert len(stored) == len(set(stored)), "a replay must not double a row"
    missing = sorted(set(record) - set(stored))
    late = [i for i in missing if record[i] < killed_at - LOSS_WINDOW_S]
    assert late == [], f"lost rows emitted well before the kill: {late[:10]}"
    # Rows emitted while the database was down reached it through the spool, replayed by the new process.
    assert any(record[i] > stopped_at + 0.5 for i in stored)
    assert stats["written"].get("events", 0) > 0
    print(f"crash: {len(record)} emitted, {len(missing)} lost (all within {LOSS_WINDOW_S} s of the kill)")
