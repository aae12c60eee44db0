"""The slow-lookups report over a million stored spans, end to end: ``collect_report`` (connect, the three reads of
sql/functions/50_slow_lookups.sql, the diagnosis), as ``sieve slow-lookups`` runs it.

The spans (``bench/report_data.py``) are shaped like the demo's: ten per turn, a few percent of slow storage
operations, EXPLAIN spans with a plan change half an hour ago, an N+1 loop in one turn of 50. Two databases in one
temporary embedded Postgres:

* ``day``: 1M spans spread over the last 24 h, as the issue measured them (it saw 1.1-2.0 s). Timed with the
  default window (``--since 1h``) and with ``--since 25h`` (all of them);
* ``hour``: the same 1M spans all inside the last hour (a service ten times as busy), default window: the worst
  case for the N+1 grouping, which reads every statement span of the window; then again once the N+1 loops' spans
  carry the marks the tail sampler's detector will write (the report reads those through a partial index).

Medians of five runs after one warm-up, with the per-read split of the last run. No timed assertion anywhere: the
figure goes to ``bench/results``.

    python -m bench.bench_report [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench import report_data
from pipeline.db import start_embedded, with_database
from pipeline.migrate import migrate
from pipeline.slowlookups import collect_report

RUNS = 5


def _time_report(dsn: str, since: timedelta) -> dict[str, Any]:
    collect_report(dsn, since)  # warm-up: plans, caches
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        report = collect_report(dsn, since)
        times.append(time.perf_counter() - t0)
    return {
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "groups": len(report.groups),
        "slow_calls": sum(d.group.calls for d in report.groups),
        "plan_changes": len(report.plan_changes),
        "n_plus_one_groups": len(report.n_plus_one),
        "reads_ms": _split(dsn, since),
    }


def _split(dsn: str, since: timedelta) -> dict[str, float]:
    """Each SQL read alone, in ms (one run each, after the timed ones)."""
    out: dict[str, float] = {}
    args = "now() - %s::interval, now()"
    with psycopg.connect(dsn) as conn:
        for name, sql in (
            ("slow_groups", f"SELECT count(*) FROM monitoring.get_slow_lookup_groups({args})"),
            ("plan_changes", f"SELECT count(*) FROM monitoring.get_plan_changes({args})"),
            ("n_plus_one_scan", f"SELECT count(*) FROM monitoring.get_n_plus_one_groups({args})"),
            ("n_plus_one_marked", f"SELECT count(*) FROM monitoring.get_n_plus_one_groups({args}, 5, 0, 20, true)"),
        ):
            t0 = time.perf_counter()
            conn.execute(sql, (since,)).fetchone()
            out[name] = round((time.perf_counter() - t0) * 1000, 1)
    return out


def _database(server_dsn: str, name: str) -> str:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(server_dsn, name)
    migrate(dsn)
    return dsn


def _vacuum(dsn: str) -> None:
    # What autovacuum does to an append-only table soon after a load (visibility map, statistics).
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE monitoring.spans")


def run(quick: bool) -> dict[str, Any]:
    spans = 100_000 if quick else 1_000_000
    workdir = Path(tempfile.mkdtemp(prefix="sieve-bench-report-"))
    db = start_embedded(workdir / "pgdata")
    results: dict[str, Any] = {"spans": spans}
    try:
        day = _database(db.dsn, "day")
        t0 = time.perf_counter()
        results["day_rows"] = report_data.load(day, spans, hours=24.0)
        _vacuum(day)
        results["load_s"] = round(time.perf_counter() - t0, 1)
        results["day_window_1h"] = _time_report(day, timedelta(hours=1))
        results["day_window_25h"] = _time_report(day, timedelta(hours=25))
        hour = _database(db.dsn, "hour")
        results["hour_rows"] = report_data.load(hour, spans, hours=1.0)
        _vacuum(hour)
        results["hour_window_1h"] = _time_report(hour, timedelta(hours=1))
        # Once the tail sampler's N+1 detector marks the loops, the report reads the marked spans only.
        results["hour_marked_spans"] = report_data.mark_n_plus_one(hour)
        results["hour_window_1h_marked"] = _time_report(hour, timedelta(hours=1))
    finally:
        db.close()
        shutil.rmtree(workdir, ignore_errors=True)
    results["target"] = "under 1 s end to end for the day's 1M spans, default window"
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_report")
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
