"""Statement fingerprints and plan capture in the storage collector, against the real embedded Postgres."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from psycopg_pool import AsyncConnectionPool

from collectors.storage import ExplainOptions, StorageTelemetry, instrument_drivers, uninstrument_drivers
from pipeline.sqlshape import plan_shape_hash, statement_info

pytestmark = pytest.mark.postgres

HISTORY = "SELECT id, body FROM public.notes WHERE owner = $1 ORDER BY created_at DESC LIMIT $2"


# -- fingerprints (pure) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a = 42"),
        ("SELECT * FROM t WHERE a = 'x'", "select *   from t where a = $1 -- comment"),
        ("SELECT * FROM t WHERE a IN (1, 2, 3)", "SELECT * FROM t WHERE a IN (7)"),
        ("SELECT * FROM t WHERE a = %s", "SELECT * FROM t WHERE a = $1"),
    ],
)
def test_fingerprint_ignores_literals_parameters_comments_and_case(a: str, b: str) -> None:
    pa, pb = ("%s" in a), ("%s" in b)
    assert statement_info(a, pyformat=pa).fingerprint == statement_info(b, pyformat=pb).fingerprint


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT a FROM t WHERE a = 1", "SELECT b FROM t WHERE a = 1"),
        ("SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE b = 1"),
        ("SELECT * FROM t WHERE a = 1", "SELECT * FROM u WHERE a = 1"),
        ("SELECT * FROM t ORDER BY a", "SELECT * FROM t ORDER BY a DESC"),
    ],
)
def test_fingerprint_differs_across_statement_shapes(a: str, b: str) -> None:
    assert statement_info(a).fingerprint != statement_info(b).fingerprint


def test_normalised_text_has_no_literal_values() -> None:
    info = statement_info("SELECT * FROM t WHERE name = 'alice' AND age > 30 AND id = $1")
    assert "alice" not in info.normalised and "30" not in info.normalised
    assert info.normalised == "SELECT * FROM t WHERE name = $2 AND age > $3 AND id = $1"
    assert info.summary == "SELECT t"


@pytest.mark.parametrize(
    ("sql", "read_only"),
    [
        ("SELECT 1", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),
        ("SELECT * FROM t FOR UPDATE", False),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", False),
        ("INSERT INTO t VALUES (1)", False),
        ("UPDATE t SET a = 1", False),
        ("SELECT * INTO new_t FROM t", False),
        ("not sql", False),
    ],
)
def test_only_plain_selects_count_as_reads(sql: str, read_only: bool) -> None:
    assert statement_info(sql).read_only is read_only


# -- against Postgres ------------------------------------------------------------------------------------------


@pytest.fixture
def notes_dsn(fresh_dsn: str) -> str:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(
            """CREATE TABLE public.notes (id bigint PRIMARY KEY, owner int NOT NULL, body text NOT NULL,
                                          created_at timestamptz NOT NULL)"""
        )
        conn.execute(
            """INSERT INTO public.notes SELECT g, g % 20, repeat('x', 100), now() - make_interval(secs => g)
               FROM generate_series(1, 20000) AS g"""
        )
        conn.execute("ANALYZE public.notes")
    return fresh_dsn


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter, InMemoryMetricReader]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_drivers(provider)
    reader = InMemoryMetricReader()
    yield provider, exporter, reader
    uninstrument_drivers()


def _telemetry(traced: Any, dsn: str | None, **kw: Any) -> StorageTelemetry:
    provider, _, reader = traced
    explain = ExplainOptions(dsn=dsn, **kw) if dsn else None
    return StorageTelemetry(provider, MeterProvider(metric_readers=[reader]), slow_threshold_ms=0.001, explain=explain)


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _explain_outcomes(reader: InMemoryMetricReader) -> dict[str, int]:
    data = reader.get_metrics_data()
    out: dict[str, int] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == "sieve.db.explain.requests":
                    for p in m.data.data_points:
                        out[str(p.attributes["sieve.db.explain.outcome"])] = int(p.value)
    return out


async def test_operation_and_statement_spans_carry_one_fingerprint_across_values(notes_dsn: str, traced: Any) -> None:
    telemetry = _telemetry(traced, None)
    pool = await asyncpg.create_pool(notes_dsn, min_size=1, max_size=1)
    for owner in (3, 7):
        async with telemetry.operation("history", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
            await conn.fetch(HISTORY, owner, 5)
    async with telemetry.operation("count", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
        await conn.fetchval("SELECT count(*) FROM public.notes WHERE owner = $1", 3)
    await pool.close()
    spans = traced[1].get_finished_spans()
    history = _named(spans, "history")
    fingerprints = {s.attributes["sieve.db.fingerprint"] for s in history}
    assert len(fingerprints) == 1
    (count,) = _named(spans, "count")
    assert count.attributes["sieve.db.fingerprint"] not in fingerprints
    assert history[0].attributes["sieve.db.statement"] == HISTORY
    assert history[0].attributes["db.query.summary"] == "SELECT public.notes"
    assert history[0].attributes["db.response.returned_rows"] == 5  # counted by the proxy, no returned() call
    # The operation's span is the call's one span: no driver statement span repeats it.
    assert not _named(spans, "SELECT")
    assert history[0].attributes["sieve.db.slow"] is True  # threshold 0.001 ms


async def test_a_driver_span_outside_an_operation_gets_the_fingerprint_from_its_text(
    notes_dsn: str, traced: Any
) -> None:
    """Statements run outside Sieve's operations (an app under opentelemetry-instrument) are stamped too."""
    _telemetry(traced, None)  # registers the stamper on the provider
    conn = await asyncpg.connect(notes_dsn)
    for owner in (3, 7):
        await conn.fetch(HISTORY, owner, 5)
    await conn.close()
    selects = [s for s in _named(traced[1].get_finished_spans(), "SELECT") if "sieve.db.fingerprint" in s.attributes]
    assert len(selects) == 2 and len({s.attributes["sieve.db.fingerprint"] for s in selects}) == 1
    assert selects[0].attributes["db.query.summary"] == "SELECT public.notes"


async def test_a_slow_read_gets_its_plan_once_then_from_the_cache(notes_dsn: str, traced: Any) -> None:
    telemetry = _telemetry(traced, notes_dsn)
    pool = await asyncpg.create_pool(notes_dsn, min_size=1, max_size=1)
    for owner in (3, 4):
        async with telemetry.operation("history", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
            await conn.fetch(HISTORY, owner, 5)
        await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    spans = traced[1].get_finished_spans()
    history, plans = _named(spans, "history"), _named(spans, "EXPLAIN")
    assert len(plans) == 2
    for op, plan in zip(history, plans, strict=True):
        assert plan.parent.span_id == op.context.span_id  # the plan joins the slow operation's trace
        assert plan.attributes["sieve.db.fingerprint"] == op.attributes["sieve.db.fingerprint"]
        document = json.loads(plan.attributes["sieve.db.plan"])
        assert document[0]["Plan"]["Node Type"] in {"Limit", "Sort"}
        assert plan.attributes["sieve.db.plan.analyzed"] is False
    assert [p.attributes["sieve.db.plan.cached"] for p in plans] == [False, True]
    # EXPLAIN printed the parameter value in the filter; the recorded plan has a placeholder instead.
    scan = json.loads(plans[0].attributes["sieve.db.plan"])[0]["Plan"]
    while "Plans" in scan:
        scan = scan["Plans"][0]
    assert scan["Filter"] == "(owner = $1)"
    assert _explain_outcomes(traced[2]) == {"captured": 1, "cached": 1}
    # Sieve's own EXPLAIN is not traced as application storage traffic.
    assert not [s for s in spans if "EXPLAIN" in str(s.attributes.get("db.statement", ""))]


async def test_writes_are_never_explained_however_slow(notes_dsn: str, traced: Any) -> None:
    telemetry = _telemetry(traced, notes_dsn)
    pool = AsyncConnectionPool(notes_dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True)
    async with telemetry.operation("save", driver="psycopg"), telemetry.acquire_psycopg(pool, "w") as conn:
        await conn.execute(
            "INSERT INTO public.notes SELECT g, 1, 'y', now() FROM generate_series(%s, %s) g", (100001, 130000)
        )
        await conn.execute("UPDATE public.notes SET body = %s WHERE id > %s", ("z", 100000))
        cur = await conn.execute("SELECT body FROM public.notes WHERE id = %s FOR UPDATE", (100001,))
        assert (await cur.fetchone()) == ("z",)
    await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    spans = traced[1].get_finished_spans()
    (save,) = _named(spans, "save")
    assert save.attributes["sieve.db.statements"] == 3
    assert save.attributes["sieve.db.slow"] is True
    assert _named(spans, "EXPLAIN") == []
    assert _explain_outcomes(traced[2]) == {}


async def test_psycopg_reads_are_explained_with_their_parameters(notes_dsn: str, traced: Any) -> None:
    telemetry = _telemetry(traced, notes_dsn, analyze=True)
    pool = AsyncConnectionPool(notes_dsn, min_size=1, max_size=1, open=False)
    await pool.open(wait=True)
    async with telemetry.operation("history", driver="psycopg"), telemetry.acquire_psycopg(pool, "w") as conn:
        cur = await conn.execute(
            "SELECT id FROM public.notes WHERE owner = %(owner)s ORDER BY created_at DESC LIMIT %(n)s",
            {"owner": 5, "n": 3},
        )
        assert len(await cur.fetchall()) == 3
    await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    (plan,) = _named(traced[1].get_finished_spans(), "EXPLAIN")
    document = json.loads(plan.attributes["sieve.db.plan"])
    assert plan.attributes["sieve.db.plan.analyzed"] is True
    assert document[0]["Plan"]["Actual Rows"] == 3  # ANALYZE ran with the real parameter values


async def test_plan_capture_is_rate_limited(notes_dsn: str, traced: Any) -> None:
    telemetry = _telemetry(traced, notes_dsn, max_per_minute=1)
    pool = await asyncpg.create_pool(notes_dsn, min_size=1, max_size=1)
    for sql in (HISTORY, HISTORY.replace("created_at DESC", "id DESC")):
        async with telemetry.operation("history", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
            await conn.fetch(sql, 2, 5)
        await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    assert _explain_outcomes(traced[2]) == {"captured": 1, "rate_limited": 1}


async def test_fresh_plans_carry_their_shape_hash_and_ask_to_keep_their_trace(notes_dsn: str, traced: Any) -> None:
    telemetry = _telemetry(traced, notes_dsn)
    pool = await asyncpg.create_pool(notes_dsn, min_size=1, max_size=1)
    for _ in range(2):
        async with telemetry.operation("history", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
            await conn.fetch(HISTORY, 3, 5)
        await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    fresh, cached = _named(traced[1].get_finished_spans(), "EXPLAIN")
    plan_hash = fresh.attributes["sieve.db.plan_hash"]
    assert plan_hash and len(plan_hash) == 16 and cached.attributes["sieve.db.plan_hash"] == plan_hash
    # Hashed from the generic plan (Postgres 16+): the same whatever the parameters; here it is the same shape as
    # the plan captured with owner 3 (a Limit over a Sort over a Seq Scan).
    assert fresh.attributes["sieve.db.plan_hash.source"] == "generic"
    assert plan_hash == plan_shape_hash(json.loads(fresh.attributes["sieve.db.plan"]))
    assert fresh.attributes["sieve.force_sample"] is True  # the default force-sample policy keeps the trace
    assert "sieve.force_sample" not in cached.attributes


async def test_a_fast_read_without_a_fresh_plan_gets_one_baseline_capture(notes_dsn: str, traced: Any) -> None:
    provider, exporter, reader = traced
    telemetry = StorageTelemetry(
        provider,
        MeterProvider(metric_readers=[reader]),
        slow_threshold_ms=10_000,  # nothing is slow
        explain=ExplainOptions(dsn=notes_dsn),
    )
    pool = await asyncpg.create_pool(notes_dsn, min_size=1, max_size=1)
    for owner in (1, 2, 3):
        async with telemetry.operation("history", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
            await conn.fetch(HISTORY, owner, 5)
        await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    spans = exporter.get_finished_spans()
    (plan,) = _named(spans, "EXPLAIN")  # once per fingerprint while the plan is fresh, never "cached" copies
    assert plan.parent.span_id == _named(spans, "history")[0].context.span_id
    assert plan.attributes["sieve.db.plan_hash"] and plan.attributes["sieve.db.plan.baseline"] is True
    assert _explain_outcomes(reader) == {"captured": 1}
    assert all("sieve.db.slow" not in s.attributes for s in _named(spans, "history"))


async def test_a_connection_reopened_after_idle_is_marked_so(notes_dsn: str, traced: Any) -> None:
    telemetry = _telemetry(traced, None)
    pool = await asyncpg.create_pool(
        notes_dsn,
        min_size=0,  # asyncpg keeps min_size connections open however long they idle
        max_size=2,
        max_inactive_connection_lifetime=0.2,
        connect=telemetry.asyncpg_connect("r"),
    )
    telemetry.watch_asyncpg_pool(pool, "r", idle_lifetime_s=0.2)
    for pause in (0.0, 0.0, 0.5):
        await asyncio.sleep(pause)
        async with telemetry.operation("lookup", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
            await conn.fetchval("SELECT 1")
    await pool.close()
    _, first, second = _named(traced[1].get_finished_spans(), "lookup")
    assert "sieve.db.connects" not in first.attributes  # the warm connection of the lookup before
    assert second.attributes["sieve.db.connects"] == 1
    assert second.attributes["sieve.db.idle_connect"] is True
    assert second.attributes["sieve.db.pool_idle_s"] >= 0.4
    assert second.attributes["db.client.connection.max"] == 2


async def test_a_baseline_plan_never_answers_a_slow_read(notes_dsn: str, traced: Any) -> None:
    """A fast read's plan (its parameters) is not the plan a slow read of the same shape is shown: the slow read
    gets a capture of its own."""
    provider, exporter, reader = traced
    telemetry = StorageTelemetry(
        provider,
        MeterProvider(metric_readers=[reader]),
        slow_threshold_ms=10_000,  # "history" is fast: a baseline capture
        slow_thresholds_ms={"history_slow": 0.001},  # the same statement under this name is slow
        explain=ExplainOptions(dsn=notes_dsn),
    )
    pool = await asyncpg.create_pool(notes_dsn, min_size=1, max_size=1)
    for name in ("history", "history_slow"):
        async with telemetry.operation(name, driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as conn:
            await conn.fetch(HISTORY, 3, 5)
        await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    baseline, slow = _named(exporter.get_finished_spans(), "EXPLAIN")
    assert baseline.attributes["sieve.db.plan.baseline"] is True
    assert "sieve.db.plan.baseline" not in slow.attributes and slow.attributes["sieve.db.plan.cached"] is False
    assert baseline.attributes["sieve.db.plan_hash"] == slow.attributes["sieve.db.plan_hash"]  # one generic plan
    assert _explain_outcomes(reader) == {"captured": 2}
