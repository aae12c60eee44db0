"""Seed data for the demo: ordinary conversations, and a few long ones whose history read is the slow lookup."""

from __future__ import annotations

import psycopg
from opentelemetry.instrumentation.utils import suppress_instrumentation

from pipeline.config import DemoSettings


def normal_id(i: int) -> str:
    return f"seed-{i}"


def heavy_id(i: int) -> str:
    return f"heavy-{i}"


# The index that serves the history read ("newest N messages of a conversation"). The old schema had only
# (conversation_id); the demo starts without this one so the slow lookup is there for Sieve to diagnose.
HISTORY_INDEX = "messages_conversation_id_created_at_idx"
HISTORY_INDEX_DDL = f"CREATE INDEX IF NOT EXISTS {HISTORY_INDEX} ON public.messages (conversation_id, created_at DESC)"


def set_history_index(dsn: str, present: bool) -> None:
    """Create the history index (``sieve demo --with-index``) or drop it (the default: the old schema)."""
    ddl = HISTORY_INDEX_DDL if present else f"DROP INDEX IF EXISTS public.{HISTORY_INDEX}"
    with suppress_instrumentation(), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ddl)
        conn.execute("ANALYZE public.messages")


def seed(dsn: str, settings: DemoSettings, messages_per_conversation: int = 10) -> dict[str, int]:
    """Create the seed rows unless they exist; returns how many rows this call inserted."""
    inserted = {"conversations": 0, "messages": 0, "files": 0}
    with suppress_instrumentation(), psycopg.connect(dsn, autocommit=True) as conn:
        for prefix, count, per in (
            ("seed-", settings.seed_conversations, messages_per_conversation),
            ("heavy-", settings.heavy_conversations, settings.heavy_messages),
        ):
            if count == 0:
                continue
            cur = conn.execute(
                """INSERT INTO public.conversations (continuation_id, title)
                   SELECT %(prefix)s || g, 'seeded' FROM generate_series(0, %(count)s - 1) AS g
                   ON CONFLICT (continuation_id) DO NOTHING""",
                {"prefix": prefix, "count": count},
            )
            inserted["conversations"] += max(cur.rowcount, 0)
            cur = conn.execute(
                """INSERT INTO public.messages (conversation_id, role, content, idempotency_key, created_at)
                   SELECT c.id,
                          (CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END)::public.message_role,
                          -- A few hundred characters, as chat messages are: the history read's cost is in the rows.
                          left(repeat('seeded message ' || g || ' of ' || c.continuation_id || '. ', 20), 400),
                          'seed:' || c.continuation_id || ':' || g,
                          now() - make_interval(secs => g)
                   FROM public.conversations c
                   CROSS JOIN generate_series(1, %(per)s) AS g
                   WHERE c.continuation_id LIKE %(like)s
                     AND NOT EXISTS (
                         SELECT 1 FROM public.messages m
                         WHERE m.idempotency_key = 'seed:' || c.continuation_id || ':1')
                   ON CONFLICT (idempotency_key) DO NOTHING""",
                {"per": per, "like": prefix + "%"},
            )
            inserted["messages"] += max(cur.rowcount, 0)
        inserted["files"] = _seed_files(conn, settings.files_per_conversation)
        if inserted["messages"]:
            conn.execute("ANALYZE public.conversations")
            conn.execute("ANALYZE public.messages")
    return inserted


def _seed_files(conn: psycopg.Connection[object], per_conversation: int) -> int:
    """Files attached to each seeded conversation that has none yet (the items of the demo's N+1)."""
    if per_conversation <= 0:
        return 0
    cur = conn.execute(
        """WITH planned AS MATERIALIZED (
               SELECT c.id AS conversation_id, g AS position, gen_random_uuid() AS file_id
                 FROM public.conversations AS c CROSS JOIN generate_series(0, %(per)s - 1) AS g
                WHERE (c.continuation_id LIKE 'seed-%%' OR c.continuation_id LIKE 'heavy-%%')
                  AND NOT EXISTS (SELECT 1 FROM public.conversation_files AS cf WHERE cf.conversation_id = c.id)
           ),
           made AS (
               INSERT INTO public.files (id, name, mime_type, size_bytes)
               SELECT p.file_id, 'attachment-' || p.position || '.pdf', 'application/pdf', 10000 + p.position * 997
                 FROM planned AS p
           )
        INSERT INTO public.conversation_files (conversation_id, file_id, position)
        SELECT p.conversation_id, p.file_id, p.position FROM planned AS p""",
        {"per": per_conversation},
    )
    return max(cur.rowcount, 0)
