"""Against a real Postgres: a newest-N-of-a-group read on 200k rows is diagnosed from its own EXPLAIN, the
suggested CREATE INDEX runs, and the next plan uses that index with no Sort."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from pipeline.slowlookups.diagnose import diagnose
from pipeline.slowlookups.model import LookupGroup
from pipeline.slowlookups.plan import flatten, plan_root
from pipeline.sqlshape import is_read_only_select

from .test_slowlookups_diagnose import DEMO, DEMO_INDEX

pytestmark = pytest.mark.postgres

ROWS, GROUPS = 200_000, 40


def load(conn: psycopg.Connection[Any], *, filter_index: bool) -> str:
    """The demo's messages table with 200k rows in 40 conversations; returns one conversation's id."""
    conn.execute(
        """CREATE TABLE public.messages (
               id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               conversation_id uuid NOT NULL,
               role text NOT NULL,
               content text NOT NULL,
               created_at timestamptz NOT NULL)"""
    )
    # Conversations interleave, as turns of concurrent sessions do: a group's rows are spread over the table.
    conn.execute(
        """INSERT INTO public.messages (conversation_id, role, content, created_at)
           SELECT md5((g %% %(groups)s)::text)::uuid, CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END,
                  'message ' || g, timestamptz '2025-11-01' + g * interval '1 second'
           FROM generate_series(1, %(rows)s) AS g""",
        {"groups": GROUPS, "rows": ROWS},
    )
    if filter_index:  # what the old schema had: the filter column alone
        conn.execute("CREATE INDEX messages_conversation_id_idx ON public.messages (conversation_id)")
    conn.execute("ANALYZE public.messages")
    row = conn.execute("SELECT md5('7')::uuid::text").fetchone()
    assert row is not None
    return str(row[0])


def explain(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], *, analyze: bool) -> dict[str, Any]:
    """EXPLAIN with real parameter values, as the capture side runs it: the planner sees the values."""
    verb = "EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) " if analyze else "EXPLAIN (FORMAT JSON) "
    pyformat = re.sub(r"\$(\d+)", r"%(p\1)s", sql)  # psycopg's named placeholders; a repeated $2 stays one value
    row = conn.execute(verb + pyformat, params).fetchone()
    assert row is not None
    return dict(plan_root(row[0]))


def slow_group(plan: dict[str, Any], *, analyzed: bool) -> LookupGroup:
    return LookupGroup(
        fingerprint="5f1c0a9e8b7d6c4a", operation="get_conversation_messages", statement=DEMO, calls=25,
        p50_ms=48.0, p95_ms=75.0, max_ms=140.0, pool_wait_ms=20.0, connect_ms=0.0, execute_ms=1300.0,
        pool="asyncpg", pool_max_size=8, plan=plan, plan_analyzed=analyzed,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("filter_index", "analyze", "pattern"),
    [(False, True, "seq_scan_sort"), (True, False, "index_scan_sort")],
    ids=["no-index-analyzed", "filter-index-estimated"],
)
def test_diagnosed_index_removes_the_sort(fresh_dsn: str, filter_index: bool, analyze: bool, pattern: str) -> None:
    assert is_read_only_select(DEMO)
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:  # CONCURRENTLY refuses a transaction block
        cid = load(conn, filter_index=filter_index)
        params = {"p1": cid, "p2": None, "p3": 10}

        before = explain(conn, DEMO, params, analyze=analyze)
        assert any(n.node_type in ("Sort", "Incremental Sort") for n in flatten(before))
        findings = diagnose(slow_group(before, analyzed=analyze))
        f = findings[0]
        assert f.kind == "missing_index", findings
        assert f.table == "public.messages"
        assert f.columns == ("conversation_id", "created_at DESC")
        assert f.create_index == DEMO_INDEX
        assert f.evidence["pattern"] == pattern
        assert f.evidence["plan_analyzed"] is analyze
        if analyze:  # the whole group was read, not the 10 rows returned
            assert f.evidence["rows_sorted"] == ROWS / GROUPS

        conn.execute(f.create_index)
        after = explain(conn, DEMO, params, analyze=analyze)
        nodes = flatten(after)
        assert not [n for n in nodes if n.node_type in ("Sort", "Incremental Sort")], nodes
        assert any(n.index_name == "messages_conversation_id_created_at_idx" for n in nodes), nodes
        assert [x.kind for x in diagnose(slow_group(after, analyzed=analyze))] == ["slow_execution"]

        # Paging further back (the OR branch now restricts) uses the same index, still without a Sort.
        row = conn.execute("SELECT max(created_at) FROM public.messages").fetchone()
        assert row is not None
        paged = flatten(explain(conn, DEMO, {**params, "p2": row[0]}, analyze=False))
        assert not [n for n in paged if n.node_type in ("Sort", "Incremental Sort")], paged
        # The IF NOT EXISTS makes running the suggestion twice harmless.
        conn.execute(f.create_index)
