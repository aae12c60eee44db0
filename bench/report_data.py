"""Kept spans shaped like the demo's, generated inside Postgres (``generate_series``) for the report benchmark.

One trace per turn, ten spans each: the ``call_tool`` message span; three repository operations (conversation
lookup, history read, message write) each with its driver statement span(s); the provider call. Spread evenly over
the ``hours`` before now, oldest first (as the sink appends them). On top of those:

* slow operations: the history read is slow in 5 % of the turns before the plan change and 0.5 % after (then
  connect-dominated), the conversation lookup in 1 % (connection set-up after idle);
* EXPLAIN spans of the history read: a fresh capture every five minutes plus one per slow call (cached), with the
  scan-and-sort plan before ``plan_change_ago`` and the index plan after it;
* N+1: one turn in 50 also looks up its conversation's files one by one (6 ``get_file`` operations in a row).

Rows go in through one ``INSERT ... SELECT`` per kind, as a superuser (row-level security does not apply), into
partitions made by ``monitoring._ensure_partitions``. Used by ``bench/bench_report.py`` and, at a small size, by
the tests of the report's SQL.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg

from pipeline.sqlshape import plan_shape_hash

FP_CONVERSATION = "c0ffee0000000001"
FP_HISTORY = "c0ffee0000000002"
FP_SAVE = "c0ffee0000000003"
FP_FILE = "c0ffee0000000004"
HISTORY_SQL = (
    "SELECT role::text AS role, content, created_at FROM public.messages WHERE conversation_id = $1 "
    "AND ($2::timestamptz IS NULL OR created_at < $2) ORDER BY created_at DESC LIMIT $3"
)
FILE_SQL = "SELECT id, name, size_bytes FROM public.files WHERE id = $1"

PLAN_BEFORE: list[dict[str, Any]] = [
    {
        "Plan": {
            "Node Type": "Limit",
            "Total Cost": 2012.18,
            "Plan Rows": 5,
            "Plans": [
                {
                    "Node Type": "Sort",
                    "Parent Relationship": "Outer",
                    "Total Cost": 2025.4,
                    "Plan Rows": 5300,
                    "Sort Key": ["created_at DESC"],
                    "Plans": [
                        {
                            "Node Type": "Bitmap Heap Scan",
                            "Parent Relationship": "Outer",
                            "Relation Name": "messages",
                            "Schema": "public",
                            "Alias": "messages",
                            "Total Cost": 1897.62,
                            "Plan Rows": 5300,
                            "Recheck Cond": "(conversation_id = $1)",
                            "Plans": [
                                {
                                    "Node Type": "Bitmap Index Scan",
                                    "Parent Relationship": "Outer",
                                    "Index Name": "messages_conversation_id_idx",
                                    "Total Cost": 60.05,
                                    "Plan Rows": 5300,
                                    "Index Cond": "(conversation_id = $1)",
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    }
]
PLAN_AFTER: list[dict[str, Any]] = [
    {
        "Plan": {
            "Node Type": "Limit",
            "Total Cost": 1.2,
            "Plan Rows": 5,
            "Plans": [
                {
                    "Node Type": "Index Scan",
                    "Parent Relationship": "Outer",
                    "Scan Direction": "Forward",
                    "Relation Name": "messages",
                    "Schema": "public",
                    "Alias": "messages",
                    "Index Name": "messages_conversation_id_created_at_idx",
                    "Total Cost": 590.1,
                    "Plan Rows": 5300,
                    "Index Cond": "(conversation_id = $1)",
                }
            ],
        }
    }
]


def _op(name: str, fp: str, statement: str, driver: str = "asyncpg") -> str:
    """jsonb_build_object(...) of an operation span's fixed attributes, as SQL text."""
    return (
        f"jsonb_build_object('db.system.name', 'postgresql', 'db.operation.name', '{name}', "
        f"'sieve.db.driver', '{driver}', 'sieve.db.fingerprint', '{fp}', "
        f"'sieve.db.statement', {_quote(statement)}, 'sieve.db.statements', 1, "
        f"'db.client.connection.pool.name', '{driver}', 'db.client.connection.max', 8)"
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# One row per (turn, k): the ten spans of a turn. Columns: k, name, kind, parent k, duration_ms, attributes.
_TURN_SPANS = f"""
    (0, 'call_tool', 'server', NULL, 120 + (g.i %% 97), jsonb_build_object('websocket.message.op', 'call_tool')),
    (1, 'get_conversation_by_continuation_id', 'internal', 0, g.conv_ms,
        {
    _op(
        "get_conversation_by_continuation_id",
        FP_CONVERSATION,
        "SELECT id, continuation_id FROM public.conversations WHERE continuation_id = $1",
    )
}
        || jsonb_build_object('sieve.db.pool_wait_s', 0.0001, 'sieve.db.connect_s', g.conv_connect_s,
                              'sieve.db.execute_s', 0.0006)
        || CASE WHEN g.conv_slow THEN jsonb_build_object('sieve.db.slow', true, 'sieve.db.connects', 1,
                                                         'sieve.db.idle_connect', true)
                ELSE '{{}}'::jsonb END),
    (2, 'SELECT', 'client', 1, 0.5, jsonb_build_object('db.system', 'postgresql', 'sieve.db.fingerprint',
        '{FP_CONVERSATION}', 'db.query.summary', 'SELECT public.conversations')),
    (3, 'get_conversation_messages', 'internal', 0, g.hist_ms,
        {_op("get_conversation_messages", FP_HISTORY, HISTORY_SQL)}
        || jsonb_build_object('sieve.db.pool_wait_s', 0.0001, 'sieve.db.connect_s', g.hist_connect_s,
                              'sieve.db.execute_s', g.hist_exec_s)
        || CASE WHEN g.hist_slow THEN jsonb_build_object('sieve.db.slow', true) ELSE '{{}}'::jsonb END),
    (4, 'SELECT', 'client', 3, g.hist_exec_s * 1000, jsonb_build_object('db.system', 'postgresql',
        'sieve.db.fingerprint', '{FP_HISTORY}', 'db.query.summary', 'SELECT public.messages')),
    (5, 'provider.generate', 'client', 0, 80 + (g.i %% 41), jsonb_build_object('gen_ai.system', 'demo')),
    (6, 'save_messages', 'internal', 0, 3.1,
        {
    _op(
        "save_messages",
        FP_SAVE,
        "INSERT INTO public.messages (conversation_id, role, content, metadata, idempotency_key) "
        "VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (idempotency_key) DO NOTHING",
        "psycopg",
    )
}
        || jsonb_build_object('sieve.db.pool_wait_s', 0.0001, 'sieve.db.connect_s', 0,
                              'sieve.db.execute_s', 0.003)),
    (7, 'INSERT', 'client', 6, 1.2, jsonb_build_object('db.system', 'postgresql', 'sieve.db.fingerprint',
        '{FP_SAVE}', 'db.query.summary', 'INSERT public.messages')),
    (8, 'INSERT', 'client', 6, 1.1, jsonb_build_object('db.system', 'postgresql', 'sieve.db.fingerprint',
        '{FP_SAVE}', 'db.query.summary', 'INSERT public.messages')),
    (9, 'send', 'internal', 0, 0.2, jsonb_build_object('websocket.message.op', 'call_tool_res'))
"""

_TURNS = """
    SELECT i,
           now() - make_interval(secs => %(seconds)s * (1 - i::double precision / %(turns)s)) AS ts,
           md5('trace' || i) AS trace_id,
           i %% 100 = 7 AS conv_slow,
           i %% 50 = 3 AS n_plus_one,
           (now() - make_interval(secs => %(seconds)s * (1 - i::double precision / %(turns)s)))
               < now() - make_interval(secs => %(change_s)s) AS before_change
      FROM generate_series(0, %(turns)s - 1) AS i
"""


def load(dsn: str, spans: int, *, hours: float = 24.0, plan_change_ago: timedelta = timedelta(minutes=30)) -> int:
    """Insert about ``spans`` kept spans (ten per turn, plus EXPLAIN and N+1 spans); returns the rows inserted."""
    turns = max(1, spans // 10)
    params: dict[str, Any] = {
        "turns": turns,
        "seconds": hours * 3600.0,
        "change_s": plan_change_ago.total_seconds(),
        "plan_before": json.dumps(PLAN_BEFORE),
        "plan_after": json.dumps(PLAN_AFTER),
        "hash_before": plan_shape_hash(PLAN_BEFORE),
        "hash_after": plan_shape_hash(PLAN_AFTER),
    }
    turn_rows = f"""
        WITH t AS ({_TURNS}),
        g AS (
            SELECT t.*,
                   -- before the change 5 %% of history reads scan and sort (slow), after it 0.5 %% wait for a connect
                   (t.before_change AND t.i %% 20 = 11) OR (NOT t.before_change AND t.i %% 200 = 11) AS hist_slow,
                   CASE WHEN t.conv_slow THEN 0.26 ELSE 0 END AS conv_connect_s,
                   CASE WHEN t.conv_slow THEN 261.0 ELSE 0.9 END AS conv_ms
              FROM t
        ),
        g2 AS (
            SELECT g.*,
                   CASE WHEN g.hist_slow AND g.before_change THEN 0.030 + (g.i %% 23) * 0.001
                        WHEN g.before_change THEN 0.004 + (g.i %% 7) * 0.0005
                        ELSE 0.0015 + (g.i %% 5) * 0.0002 END AS hist_exec_s,
                   CASE WHEN g.hist_slow AND NOT g.before_change THEN 0.25 ELSE 0 END AS hist_connect_s
              FROM g
        )
        INSERT INTO monitoring.spans (start_ts, trace_id, span_id, parent_span_id, name, kind, status_code,
                                      duration_ms, service, attributes, sampling_probability, adjusted_count,
                                      sampling_reason)
        SELECT g.ts + make_interval(secs => s.k * 0.002), g.trace_id, left(md5(g.trace_id || s.k), 16),
               CASE WHEN s.parent IS NULL THEN NULL ELSE left(md5(g.trace_id || s.parent), 16) END,
               s.name, s.kind, 'unset', s.duration_ms, 'sieve-demo', s.attributes,
               CASE WHEN g.hist_slow OR g.conv_slow THEN 1.0 ELSE 0.1 END,
               CASE WHEN g.hist_slow OR g.conv_slow THEN 1.0 ELSE 10.0 END,
               CASE WHEN g.hist_slow OR g.conv_slow THEN 'slow-lookups' ELSE 'baseline' END
          FROM (SELECT g2.*, g2.hist_exec_s * 1000 + g2.hist_connect_s * 1000 + 0.3 AS hist_ms FROM g2) AS g
         CROSS JOIN LATERAL (VALUES {_TURN_SPANS}) AS s(k, name, kind, parent, duration_ms, attributes)
    """
    explains = f"""
        WITH t AS ({_TURNS}),
        slow AS (
            SELECT t.* FROM t
             WHERE (t.before_change AND t.i %% 20 = 11) OR (NOT t.before_change AND t.i %% 200 = 11)
        ),
        fresh AS (  -- one fresh capture every five minutes, in a turn of its own
            SELECT t.* FROM t
             WHERE t.i %% greatest(1, (%(turns)s * 300 / %(seconds)s)::int) = 5
        )
        INSERT INTO monitoring.spans (start_ts, trace_id, span_id, parent_span_id, name, kind, duration_ms, service,
                                      attributes, sampling_probability, adjusted_count, sampling_reason, explain_plan)
        SELECT x.ts + interval '40 ms', x.trace_id, left(md5(x.trace_id || 'explain'), 16),
               left(md5(x.trace_id || 3), 16), 'EXPLAIN', 'internal', 1.5, 'sieve-demo',
               jsonb_build_object('db.operation.name', 'get_conversation_messages',
                                  'sieve.db.fingerprint', '{FP_HISTORY}', 'sieve.db.statement', {_quote(HISTORY_SQL)},
                                  'sieve.db.plan.cached', x.cached, 'sieve.db.plan.analyzed', false,
                                  'sieve.db.plan_hash',
                                  CASE WHEN x.before_change THEN %(hash_before)s ELSE %(hash_after)s END),
               1.0, 1.0, 'slow-lookups',
               CASE WHEN x.before_change THEN %(plan_before)s::jsonb ELSE %(plan_after)s::jsonb END
          FROM (SELECT slow.*, true AS cached FROM slow
                UNION ALL SELECT fresh.*, false FROM fresh
                 WHERE NOT EXISTS (SELECT 1 FROM slow WHERE slow.i = fresh.i)) AS x
    """
    n_plus_one = f"""
        WITH t AS ({_TURNS})
        INSERT INTO monitoring.spans (start_ts, trace_id, span_id, parent_span_id, name, kind, duration_ms, service,
                                      attributes, sampling_probability, adjusted_count, sampling_reason)
        SELECT t.ts + make_interval(secs => 0.030 + f * 0.0008), t.trace_id, left(md5(t.trace_id || 'file' || f), 16),
               left(md5(t.trace_id || 0), 16), 'get_file', 'internal', 0.7, 'sieve-demo',
               {_op("get_file", FP_FILE, FILE_SQL)}
                   || jsonb_build_object('sieve.db.pool_wait_s', 0.00005, 'sieve.db.connect_s', 0,
                                         'sieve.db.execute_s', 0.0006),
               0.1, 10.0, 'baseline'
          FROM t CROSS JOIN generate_series(1, 6) AS f
         WHERE t.n_plus_one
    """
    inserted = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        days = int(hours // 24) + 2
        conn.execute(
            "SELECT monitoring._ensure_partitions(t, current_date - %s, current_date + 1) "
            "FROM unnest(ARRAY['spans', 'events', 'metric_points']) AS t",
            (days,),
        )
        for sql in (turn_rows, explains, n_plus_one):
            inserted += conn.execute(sql, params).rowcount
        conn.execute("ANALYZE monitoring.spans")
    return inserted


def mark_n_plus_one(dsn: str) -> int:
    """Mark the N+1 loops' spans as the tail sampler's detector will (``sieve.db.n_plus_one`` and its count):
    the report then reads them through the partial index instead of grouping every statement span."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        marked = conn.execute(
            f"""UPDATE monitoring.spans
                   SET attributes = attributes || '{{"sieve.db.n_plus_one": true, "sieve.db.n_plus_one.count": 6}}'
                 WHERE name = 'get_file' AND attributes ->> 'sieve.db.fingerprint' = '{FP_FILE}'"""
        ).rowcount
        conn.execute("VACUUM ANALYZE monitoring.spans")
    return marked
