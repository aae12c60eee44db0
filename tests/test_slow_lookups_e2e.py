"""Slow lookups end to end on the real Postgres: instrumented repository calls -> kept spans in the sink ->
``monitoring.get_slow_lookup_groups`` -> diagnosis. One scenario per diagnosis the issue names."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import asyncpg
import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collectors.storage import ExplainOptions, StorageTelemetry
from pipeline.export.postgres.encode import span_row
from pipeline.slowlookups.diagnose import diagnose
from pipeline.slowlookups.model import LookupGroup
from pipeline.slowlookups.query import fetch_groups, parse_since

pytestmark = pytest.mark.postgres


@pytest.fixture
def dsn(migrated_dsn: str) -> str:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        # No index at all: the newest-N read scans the whole table and sorts.
        conn.execute(
            """CREATE TABLE public.notes (id bigint PRIMARY KEY, owner int NOT NULL, body text NOT NULL,
                                          created_at timestamptz NOT NULL)"""
        )
        conn.execute(
            """INSERT INTO public.notes SELECT g, g % 40, repeat('x', 200), now() - make_interval(secs => g)
               FROM generate_series(1, 100000) AS g"""
        )
        conn.execute("ANALYZE public.notes")
    return migrated_dsn


def _telemetry(dsn: str | None = None, threshold_ms: float = 10.0) -> tuple[StorageTelemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    explain = ExplainOptions(dsn=dsn) if dsn else None
    return StorageTelemetry(provider, slow_threshold_ms=threshold_ms, explain=explain), exporter


def _store(dsn: str, exporter: InMemorySpanExporter) -> None:
    """What the sink does with kept spans, minus the queue: encode and call the insert RPC."""
    rows = [r for r in (span_row(s) for s in exporter.get_finished_spans()) if r is not None]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT monitoring.insert_spans(%s::jsonb)", (json.dumps(rows),))


def _groups(dsn: str) -> dict[str, LookupGroup]:
    _, _, groups = fetch_groups(dsn, parse_since("1h"))
    return {g.operation: g for g in groups}


HISTORY = "SELECT id, body FROM public.notes WHERE owner = $1 ORDER BY created_at DESC LIMIT $2"


async def test_a_missing_index_is_named_and_its_create_index_makes_the_plan_use_it(dsn: str) -> None:
    telemetry, exporter = _telemetry(dsn, threshold_ms=1.0)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    for owner in (1, 2, 3):
        async with telemetry.operation("get_notes", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as c:
            await c.fetch(HISTORY, owner, 10)
        await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    _store(dsn, exporter)

    group = _groups(dsn)["get_notes"]
    assert group.calls == 3 and group.statement == HISTORY
    assert group.plan is not None and len(group.example_trace_ids) == 3
    finding = diagnose(group)[0]
    assert finding.kind == "missing_index"
    assert finding.table == "public.notes"
    assert [c.split()[0] for c in finding.columns] == ["owner", "created_at"]
    assert finding.create_index and "DESC" in finding.create_index

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(finding.create_index)
        plan = conn.execute("EXPLAIN (FORMAT JSON) " + HISTORY.replace("$1", "1").replace("$2", "10")).fetchone()[0]
    text = json.dumps(plan)
    assert '"Index Name"' in text and '"Node Type": "Sort"' not in text


async def test_pool_saturation_is_diagnosed_as_such(dsn: str) -> None:
    telemetry, exporter = _telemetry(threshold_ms=20.0)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    telemetry.watch_asyncpg_pool(pool, "reads")

    async def lookup() -> None:
        async with telemetry.operation("get_owner", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "reads") as c:
            await c.fetchval("SELECT $1::int FROM pg_sleep(0.03)", 1)

    await asyncio.gather(*(lookup() for _ in range(8)))
    await pool.close()
    _store(dsn, exporter)

    group = _groups(dsn)["get_owner"]
    assert group.share(group.pool_wait_ms) > 0.5
    assert group.pool == "reads" and group.pool_max_size == 1
    kinds = [f.kind for f in diagnose(group)]
    assert kinds[0] == "pool_saturation"


async def test_connection_set_up_after_idle_is_diagnosed_as_such(dsn: str) -> None:
    telemetry, exporter = _telemetry(threshold_ms=20.0)

    async def far_away(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.06)  # a remote server's TLS and authentication round trips
        return await asyncpg.connect(*args, **kwargs)

    pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=2,
        max_inactive_connection_lifetime=0.1,
        connect=telemetry.asyncpg_connect("r", far_away),
    )
    telemetry.watch_asyncpg_pool(pool, "r", idle_lifetime_s=0.1)
    for _ in range(3):
        async with telemetry.operation("get_owner", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as c:
            await c.fetchval("SELECT 1")
        await asyncio.sleep(0.3)  # quiet: the pool closes the connection
    await pool.close()
    _store(dsn, exporter)

    group = _groups(dsn)["get_owner"]
    assert group.connects == 3 and group.idle_connects >= 2  # the first connect had no idle pool before it
    assert group.share(group.connect_ms) > 0.5
    assert diagnose(group)[0].kind == "connect_after_idle"


def test_since_accepts_durations_and_names_the_flag_otherwise() -> None:
    assert parse_since("90s") == timedelta(seconds=90)
    assert parse_since("1.5h") == timedelta(minutes=90)
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday")
