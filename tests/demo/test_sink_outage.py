"""The sink's database goes away for several seconds while the demo workload runs: turns keep completing, and
afterwards every kept span and metric point is stored exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg
import pytest

from pipeline.config import load_settings
from pipeline.demo.loadgen import LoadGenerator
from pipeline.demo.run import start_stack
from pipeline.migrate import migrate
from tests.conftest import RestartablePostgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_a_sink_outage_loses_nothing_and_the_service_keeps_serving(
    migrated_dsn: str, restartable_pg: RestartablePostgres, tmp_path: Path
) -> None:
    migrate(restartable_pg.dsn)
    settings = load_settings(
        environ={},
        database={"dsn": migrated_dsn},
        prometheus={"port": 0},
        service={"port": 0, "db_connect_delay_s": 0},
        provider={"latency_median_s": 0.005, "latency_sigma": 0.2, "failure_rate": 0.05},
        tracing={"schedule_delay_ms": 100},
        sink={
            "dsn": restartable_pg.dsn,
            "spool_dir": str(tmp_path / "spool"),
            "flush_interval_s": 0.1,
            "batch_size": 200,
            "max_attempts": 2,
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.2,
            "breaker_failure_threshold": 2,
            "breaker_reset_s": 0.3,
            "breaker_reset_max_s": 1.0,
            "checkout_timeout_s": 0.5,
        },
        demo={"clients": 3, "think_time_s": 0.01, "heavy_conversations": 0, "slow_lookup_share": 0},
    )
    stack = await start_stack(settings)
    telemetry = stack.telemetry
    assert telemetry is not None and telemetry.sink is not None and telemetry.sampler is not None
    try:
        load = LoadGenerator(stack.service.url, settings, stack.provider)
        run = asyncio.create_task(load.run(9.0, burst=False))
        await asyncio.sleep(2.0)
        await asyncio.to_thread(restartable_pg.stop)
        turns_at_stop = load.result.turns
        t_stop = time.monotonic()
        await asyncio.sleep(1.5)
        assert telemetry.sink.health()["breaker"] != "closed"
        ready = telemetry.readiness.report()[1]["components"]["postgres_sink"]
        assert ready["status"] == "degraded"
        await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - t_stop)))
        turns_during_outage = load.result.turns - turns_at_stop
        await asyncio.to_thread(restartable_pg.start)
        result = await run
        telemetry.force_flush(20_000)
        assert telemetry.sink.flush(20.0)
    finally:
        await stack.close()
    # After shutdown: the last metric collection and everything held are written by now.
    stats = telemetry.sink.stats()
    sampling = telemetry.sampler.stats()

    assert turns_during_outage > 20  # the application never waited on its telemetry
    assert result.ok + result.error_count == result.turns and result.errors.keys() <= {"provider_error"}
    assert stats["breaker"].get("open", 0) >= 1 and stats["breaker"].get("closed", 0) >= 1
    assert stats["spooled"].get("spans", 0) > 0  # the outage really went through the spool
    assert not stats["dropped"], stats["dropped"]
    with psycopg.connect(restartable_pg.dsn) as conn:
        spans, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id, start_ts)) FROM monitoring.spans"
        ).fetchone()
        points = conn.execute("SELECT count(*) FROM monitoring.metric_points").fetchone()[0]
    assert spans == distinct == sampling["spans_kept"]
    assert points == stats["enqueued"]["points"] - stats["skipped"].get("points", 0)
