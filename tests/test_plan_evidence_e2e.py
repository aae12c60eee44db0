"""Evidence from one plan, end to end on the real Postgres: a run without the index, a run with it, one report.

Instrumented repository calls -> EXPLAIN spans with plan hashes -> kept spans in the sink -> the report groups the
slow calls by fingerprint *and* plan (two groups, each with its own counts, percentiles and diagnosis) and says the
plan changed, with the latency under each plan. Also: the slow read is served by the partial index on slow rows.
"""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collectors.storage import ExplainOptions, StorageTelemetry
from pipeline.export.postgres.encode import span_row
from pipeline.slowlookups import collect_report
from pipeline.slowlookups.render import render_text, to_dict

pytestmark = pytest.mark.postgres

HISTORY = "SELECT id, body FROM public.notes WHERE owner = $1 ORDER BY created_at DESC LIMIT $2"
INDEX = "CREATE INDEX notes_owner_created_at_idx ON public.notes (owner, created_at DESC)"


@pytest.fixture
def dsn(migrated_dsn: str) -> str:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
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


async def _run(dsn: str, owners: range) -> None:
    """One process's worth of lookups: its own telemetry (and plan cache), every call marked slow."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = StorageTelemetry(provider, slow_threshold_ms=0.001, explain=ExplainOptions(dsn=dsn))
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    for owner in owners:
        async with telemetry.operation("get_notes", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as c:
            await c.fetch(HISTORY, owner, 10)
        await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    rows = [r for r in (span_row(s) for s in exporter.get_finished_spans()) if r is not None]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT monitoring.insert_spans(%s::jsonb)", (json.dumps(rows),))


async def test_before_and_after_an_index_are_two_groups_in_one_report_with_the_change(dsn: str) -> None:
    await _run(dsn, range(6))  # the old schema: scan and sort
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(INDEX)
        conn.execute("ANALYZE public.notes")
    await _run(dsn, range(6, 12))  # a new process after the index: its own plan cache

    report = collect_report(dsn, timedelta(hours=1))
    groups = [d for d in report.groups if d.group.operation == "get_notes"]
    assert len(groups) == 2
    assert len({d.group.fingerprint for d in groups}) == 1
    by_start = sorted(groups, key=lambda d: d.group.first_seen or report.since)
    before, after = by_start
    assert before.group.plan_hash and after.group.plan_hash and before.group.plan_hash != after.group.plan_hash
    assert (before.group.calls, after.group.calls) == (6, 6)
    assert before.group.last_seen and after.group.first_seen and before.group.last_seen < after.group.first_seen
    # Each group is diagnosed from its own plan: the index is missing before, not after.
    assert [f.kind for f in before.findings][:1] == ["missing_index"]
    assert "missing_index" not in [f.kind for f in after.findings]
    assert after.group.plan is not None and "Sort" not in json.dumps(after.group.plan)

    (change,) = report.changes_of(before.group.fingerprint)
    assert (change.from_plan_hash, change.to_plan_hash) == (before.group.plan_hash, after.group.plan_hash)
    assert change.changed_at == after.group.first_seen  # the call the new plan was first captured for
    assert (change.before_calls, change.after_calls) == (6, 6)
    assert change.before_p95_ms and change.after_p95_ms and change.before_p95_ms > change.after_p95_ms

    text = render_text(report)
    assert text.count("plan changed at") == 1
    assert f"plan {before.group.plan_hash} (replaced at" in text and f"plan {after.group.plan_hash} (since" in text
    doc = to_dict(report)
    assert doc["plan_changes"][0]["to_plan_hash"] == after.group.plan_hash


def test_the_slow_read_is_served_by_the_partial_index_on_slow_rows(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("SELECT monitoring.maintain(7)")  # the partitions, as the sink makes them
        conn.execute("SET enable_seqscan = off")  # a near-empty table: show which index the read can use
        conn.execute("SET enable_bitmapscan = off")
        plan = conn.execute(
            """EXPLAIN (FORMAT JSON)
               SELECT s.span_id FROM monitoring.spans AS s
                WHERE s.db_system IS NOT NULL AND s.attributes @> '{"sieve.db.slow": true}'
                  AND s.start_ts >= now() - interval '1 hour' AND s.start_ts < now()
                  AND s.attributes ? 'sieve.db.execute_s' AND s.attributes ? 'sieve.db.fingerprint'"""
        ).fetchone()
    assert plan is not None
    text = json.dumps(plan[0])
    # Each partition's copy of spans_slow_operations is named after the partition (spans_pYYYYMMDD_start_ts_idx<n>);
    # the partial predicate is what identifies it.
    with psycopg.connect(migrated_dsn) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE pg_get_expr(indpred, indrelid) LIKE "
                "'%sieve.db.slow%'"
            )
        }
    assert names and any(name.split(".")[-1] in text for name in names), text
