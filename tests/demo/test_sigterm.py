"""``sieve demo`` stopped by SIGTERM under load, as ``docker compose stop``, systemd and Kubernetes stop it.

The run must end within seconds with status 143, having decided what the sampler held, written the last metric
collection and every kept span to the sink, and stopped the embedded Postgres it started (no stale holder left
in pgserver's list, which would keep the server running after later clean runs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from pipeline.db import HANDLES_FILE, start_embedded

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _wait_for_turns(err: Path, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, err.read_text()
        if "turns" in err.read_text() and " 0  errors" not in err.read_text().splitlines()[-1]:
            return
        time.sleep(0.5)
    raise AssertionError(f"no load after {timeout_s} s: {err.read_text()[-2000:]}")


def test_sigterm_under_load_flushes_everything_and_stops_postgres(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIEVE_", "OTEL_"))}
    env.update(
        SIEVE_DEMO__HEAVY_CONVERSATIONS="0",
        SIEVE_DEMO__SEED_CONVERSATIONS="20",
        SIEVE_SERVICE__DB_CONNECT_DELAY_S="0",
        SIEVE_SINK__FLUSH_INTERVAL_S="0.5",
    )
    err = tmp_path / "err.txt"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "demo", "--duration", "120", "--port", "0", "--metrics-port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            _wait_for_turns(err, proc)
            time.sleep(2.0)  # some seconds of load: spans held by the sampler, rows queued for the sink
            stopped_at = datetime.now(UTC)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(timeout=60)
            stop_s = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert status == 143, err.read_text()[-3000:]
    assert "Traceback" not in err.read_text()
    print(f"sieve demo stopped {stop_s:.1f} s after SIGTERM")

    data_dir = tmp_path / ".sieve" / "pgdata"
    assert not (data_dir / "postmaster.pid").exists()  # the embedded Postgres was stopped
    assert json.loads((data_dir / HANDLES_FILE).read_text()) == []

    kept = [json.loads(line) for line in (tmp_path / ".sieve" / "demo-spans.jsonl").read_text().splitlines()]
    assert kept
    db = start_embedded(data_dir)
    try:
        with psycopg.connect(db.dsn) as conn:
            in_sink = conn.execute("SELECT count(*) FROM monitoring.spans").fetchone()[0]
            last_point = conn.execute("SELECT max(ts) FROM monitoring.metric_points").fetchone()[0]
    finally:
        db.close()
    # Both exporters got every kept span: the batch processors and the sink's queue were drained, not dropped.
    assert in_sink == len(kept)
    # The last metric collection happened at shutdown, not at the previous 15 s tick.
    assert last_point is not None and last_point >= stopped_at.replace(microsecond=0)
