"""Storage collector against the real embedded Postgres: operation spans, pool wait vs connect vs execute."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from psycopg_pool import AsyncConnectionPool

from collectors.storage import StorageTelemetry, instrument_drivers, uninstrument_drivers

pytestmark = pytest.mark.postgres


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_drivers(provider)
    yield provider, exporter
    uninstrument_drivers()


@pytest.fixture
async def telemetry(spans: tuple[TracerProvider, InMemorySpanExporter]) -> StorageTelemetry:
    return StorageTelemetry(spans[0])


async def _pool(dsn: str, telemetry: StorageTelemetry, **kw: object) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, connect=telemetry.asyncpg_connect("reads"), **kw)  # type: ignore[arg-type]


async def test_pool_saturation_shows_as_pool_wait_not_execution(
    fresh_dsn: str, telemetry: StorageTelemetry, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    pool = await _pool(fresh_dsn, telemetry, min_size=1, max_size=1)

    async def op(name: str, sleep_s: float) -> None:
        async with telemetry.operation(name, driver="asyncpg"), telemetry.acquire_asyncpg(pool, "reads") as conn:
            await conn.execute(f"SELECT pg_sleep({sleep_s})")

    await asyncio.gather(op("holder", 0.3), op("waiter", 0.0))
    await pool.close()
    by_name = {s.name: s for s in spans[1].get_finished_spans()}
    waiter = by_name["waiter"].attributes
    assert waiter["sieve.db.pool_wait_s"] > 0.2
    assert waiter["sieve.db.execute_s"] < 0.1
    assert by_name["holder"].attributes["sieve.db.execute_s"] >= 0.3
    # One span per call: the operation's. Neither the statements nor the release's reset query add a span.
    assert sorted(s.name for s in spans[1].get_finished_spans()) == ["holder", "waiter"]
    assert by_name["waiter"].kind is SpanKind.CLIENT and waiter["sieve.db.statements"] == 1


async def test_a_connection_opened_inside_an_operation_is_a_connect_span(
    fresh_dsn: str, telemetry: StorageTelemetry, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    # min_size 0: the first acquire must open a connection, as after an idle gap.
    pool = await _pool(fresh_dsn, telemetry, min_size=0, max_size=1, max_inactive_connection_lifetime=0.2)
    for _ in range(2):
        async with telemetry.operation("lookup", driver="asyncpg") as op, telemetry.acquire_asyncpg(pool, "r") as c:
            op.returned(len(await c.fetch("SELECT 1")))
        await asyncio.sleep(0.5)  # longer than the idle lifetime: the connection is closed again
    await pool.close()
    finished = spans[1].get_finished_spans()
    lookups = [s for s in finished if s.name == "lookup"]
    connects = [s for s in finished if s.name == "connect"]
    assert len(lookups) == 2 and len(connects) == 2
    for lookup, connect in zip(lookups, connects, strict=True):
        assert connect.parent.span_id == lookup.context.span_id
        assert lookup.attributes["sieve.db.connect_s"] > 0
        assert lookup.attributes["db.response.returned_rows"] == 1
        # Waiting excludes the set-up time, which is reported on its own.
        assert lookup.attributes["sieve.db.pool_wait_s"] < lookup.attributes["sieve.db.connect_s"]


async def test_psycopg_pool_operations_and_failures(
    fresh_dsn: str, telemetry: StorageTelemetry, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    pool: AsyncConnectionPool = AsyncConnectionPool(
        fresh_dsn, min_size=1, max_size=1, connection_class=telemetry.psycopg_connection_class("w"), open=False
    )
    await pool.open(wait=True)
    with pytest.raises(Exception, match="missing_table"):
        async with telemetry.operation("broken", driver="psycopg"), telemetry.acquire_psycopg(pool, "w") as conn:
            await conn.execute("SELECT * FROM missing_table")
    await pool.close()
    finished = spans[1].get_finished_spans()
    broken = next(s for s in finished if s.name == "broken")
    assert broken.status.status_code is StatusCode.ERROR
    assert broken.attributes["error.type"] == "UndefinedTable"
    assert [s.name for s in finished] == ["broken"]
    assert "db.statement.parameters" not in broken.attributes


async def test_statement_spans_can_be_kept_under_the_operation(
    fresh_dsn: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    telemetry = StorageTelemetry(spans[0], statement_spans=True)
    pool = await _pool(fresh_dsn, telemetry, min_size=1, max_size=1)
    async with telemetry.operation("two", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
        await conn.fetchval("SELECT 1")
        await conn.fetchval("SELECT 1")
    await pool.close()
    finished = spans[1].get_finished_spans()
    op = next(s for s in finished if s.name == "two")
    statements = [s for s in finished if s.name == "SELECT"]
    assert len(statements) == 2 and all(s.parent.span_id == op.context.span_id for s in statements)
    assert {s.attributes["sieve.db.fingerprint"] for s in statements} == {op.attributes["sieve.db.fingerprint"]}
    assert op.attributes["sieve.db.repeats"] == 2


async def test_operations_outside_a_trace_still_work_without_spans(fresh_dsn: str) -> None:
    telemetry = StorageTelemetry()  # the API's no-op providers: nothing configured
    pool = await _pool(fresh_dsn, telemetry, min_size=0, max_size=1)
    async with telemetry.operation("noop", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
        assert await conn.fetchval("SELECT 41 + 1") == 42
    await pool.close()
