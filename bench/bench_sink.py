"""Write-path throughput of the Postgres sink: rows/s at a batch of 1,000, three ways, in one run.

* ``one_row_rpc``: ``monitoring.insert_metric(p_type, p_data)`` once per row, autocommit (the old system's way,
  minus its HTTP hop). It has no natural key, so it does not even give the guarantee the others give.
* ``batched_rpc``: ``monitoring.insert_events(jsonb)`` with 1,000 rows per call, one round trip and one
  transaction per batch, validated and idempotent (what the sink uses).
* ``copy_staging``: binary COPY into a temporary staging table, then ``INSERT ... SELECT ... ON CONFLICT DO
  NOTHING`` into the same table, per batch: the ceiling for the same idempotency guarantee.

Plus the batched RPC for metric points and spans, for reference. The benchmark starts its own embedded Postgres in
a temporary directory (the ``pgserver`` wheel) and removes it afterwards.

    python -m bench.bench_sink [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pipeline.db import start_embedded
from pipeline.export.postgres.encode import dumps
from pipeline.migrate import migrate

BATCH = 1000


def _payload(i: int) -> dict[str, Any]:
    # About 110 bytes of JSON, the size the reference measurements used.
    return {"cache_key": f"conv:{i % 997}:history", "implementation": "redis", "response_time_ms": i % 250, "hit": True}


def _events(n: int, start: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "ts": (start + timedelta(microseconds=i)).isoformat(),
            "type": "cache_hit",
            "data": _payload(i),
        }
        for i in range(n)
    ]


def _points(n: int, start: datetime) -> list[dict[str, Any]]:
    return [
        {
            "ts": (start + timedelta(microseconds=i)).isoformat(),
            "name": "ws.message.duration",
            "kind": "histogram",
            "attributes": {"op": f"op{i % 7}", "status": "ok"},
            "count": 10,
            "sum": 1.5,
            "bucket_bounds": [0.01, 0.1, 1.0],
            "bucket_counts": [1, 6, 3, 0],
        }
        for i in range(n)
    ]


def _spans(n: int, start: datetime) -> list[dict[str, Any]]:
    return [
        {
            "start_ts": (start + timedelta(microseconds=i)).isoformat(),
            "trace_id": uuid.uuid4().hex,
            "span_id": uuid.uuid4().hex[:16],
            "name": "SELECT messages",
            "kind": "client",
            "duration_ms": 3.5,
            "attributes": {"db.system.name": "postgresql", "db.operation.name": "SELECT"},
            "sampling_probability": 0.1,
            "adjusted_count": 10.0,
            "sampling_reason": "probabilistic",
        }
        for i in range(n)
    ]


def _timed(rows: int, fn: Callable[[], None]) -> dict[str, float]:
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    return {"rows": rows, "seconds": round(elapsed, 4), "rows_per_s": round(rows / elapsed, 1)}


def _one_row(conn: psycopg.Connection[Any], n: int) -> None:
    for i in range(n):
        conn.execute("SELECT monitoring.insert_metric(%s, %s)", ("cache_hit", Jsonb(_payload(i), dumps=dumps)))


def _batched(conn: psycopg.Connection[Any], fn: str, batches: list[list[dict[str, Any]]]) -> None:
    for batch in batches:
        conn.execute(f"SELECT monitoring.{fn}(%s)", (Jsonb(batch, dumps=dumps),))


def _copy_staging(conn: psycopg.Connection[Any], batches: list[list[tuple[Any, ...]]]) -> None:
    for batch in batches:
        with conn.transaction():
            with conn.cursor().copy("COPY sink_staging (event_id, ts, type, data) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["uuid", "timestamptz", "text", "jsonb"])
                for row in batch:
                    copy.write_row(row)
            conn.execute(
                "INSERT INTO monitoring.events (event_id, ts, type, data)"
                " SELECT event_id, ts, type, data FROM sink_staging ON CONFLICT DO NOTHING"
            )


def run(quick: bool) -> dict[str, Any]:
    """Measure and return the figures (rows/s per method and the ratios between them)."""
    one_row_n = 1_000 if quick else 5_000
    batches_n = 20 if quick else 100
    workdir = Path(tempfile.mkdtemp(prefix="sieve-bench-sink-"))
    db = start_embedded(workdir / "pgdata")
    try:
        migrate(db.dsn)
        now = datetime.now(UTC)
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute("SELECT * FROM monitoring.maintain(14, 2)")
            version = conn.execute("SHOW server_version").fetchone()
            conn.execute(
                "CREATE TEMP TABLE sink_staging (event_id uuid, ts timestamptz, type text, data jsonb)"
                " ON COMMIT DELETE ROWS"
            )
            # Warm-up: plan caches, prepared statements, first partition pages.
            _one_row(conn, 50)
            _batched(conn, "insert_events", [_events(BATCH, now)] * 6)
            _copy_staging(conn, [[(uuid.uuid4(), now, "cache_hit", Jsonb(_payload(i))) for i in range(BATCH)]])

            event_batches = [_events(BATCH, now) for _ in range(batches_n)]
            copy_batches = [
                [
                    (uuid.UUID(e["id"]), datetime.fromisoformat(e["ts"]), e["type"], Jsonb(e["data"], dumps=dumps))
                    for e in _events(BATCH, now)
                ]
                for _ in range(batches_n)
            ]
            point_batches = [_points(BATCH, now + timedelta(seconds=k)) for k in range(max(5, batches_n // 4))]
            span_batches = [_spans(BATCH, now) for _ in range(max(5, batches_n // 4))]
            rows = batches_n * BATCH
            results = {
                "one_row_rpc": _timed(one_row_n, lambda: _one_row(conn, one_row_n)),
                "batched_rpc": _timed(rows, lambda: _batched(conn, "insert_events", event_batches)),
                "copy_staging": _timed(rows, lambda: _copy_staging(conn, copy_batches)),
                "batched_rpc_points": _timed(
                    len(point_batches) * BATCH, lambda: _batched(conn, "insert_points", point_batches)
                ),
                "batched_rpc_spans": _timed(
                    len(span_batches) * BATCH, lambda: _batched(conn, "insert_spans", span_batches)
                ),
            }
            # A retried batch: every row already there, so the whole call is conflict checks.
            results["batched_rpc_replayed"] = _timed(
                BATCH * 5, lambda: _batched(conn, "insert_events", event_batches[:5])
            )
    finally:
        db.close()
        shutil.rmtree(workdir, ignore_errors=True)

    batched = results["batched_rpc"]["rows_per_s"]
    return {
        "benchmark": "postgres_sink_write_path",
        "quick": quick,
        "batch_size": BATCH,
        "postgres": version[0] if version else None,
        "results": results,
        "ratios": {
            "batched_rpc_vs_one_row_rpc": round(batched / results["one_row_rpc"]["rows_per_s"], 2),
            "batched_rpc_vs_copy_staging": round(batched / results["copy_staging"]["rows_per_s"], 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rows (under ~15 s in all)")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
