"""Roles, grants, row-level security and search_path pinning of the monitoring schema."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

pytestmark = pytest.mark.postgres

INSERTS = (
    "monitoring.insert_events(%s::jsonb)",
    "monitoring.insert_spans(%s::jsonb)",
    "monitoring.insert_points(%s::jsonb)",
)
READS = (
    "monitoring.get_recent_points('m', 5, 10)",
    "monitoring.get_trace('0123456789abcdef0123456789abcdef')",
    "monitoring.get_slow_lookup_groups(now() - interval '1 hour', now())",
    "monitoring.get_plan_epochs(now() - interval '1 hour', now())",
    "monitoring.get_plan_changes(now() - interval '1 hour', now())",
    "monitoring.get_n_plus_one_groups(now() - interval '1 hour', now())",
    "monitoring.get_trace_events('0123456789abcdef0123456789abcdef', now() - interval '1 hour', now())",
)
TABLES = ("monitoring.events", "monitoring.spans", "monitoring.metric_points", "monitoring.config")


def events(n: int = 1) -> str:
    now = datetime.now(UTC).isoformat()
    return json.dumps([{"id": str(uuid.uuid4()), "ts": now, "type": "t", "data": {}} for _ in range(n)])


@pytest.fixture
def conn(migrated_dsn: str):
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        yield c


def ensure_role(conn: psycopg.Connection, name: str) -> None:
    conn.execute(f"DO $$ BEGIN CREATE ROLE {name} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")


def test_roles_exist_and_cannot_log_in(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname LIKE 'sieve\\_%' ORDER BY 1"
    ).fetchall()
    assert [r for r in rows if r[0] in ("sieve_owner", "sieve_reader", "sieve_writer")] == [
        ("sieve_owner", False, False),
        ("sieve_reader", False, False),
        ("sieve_writer", False, False),
    ]


def test_the_writer_may_insert_through_the_functions_but_not_read(conn: psycopg.Connection) -> None:
    conn.execute("SET ROLE sieve_writer")
    assert conn.execute("SELECT monitoring.insert_events(%s::jsonb)", (events(2),)).fetchone() == (2,)
    assert conn.execute("SELECT monitoring.insert_metric('t', '{}')").fetchone()[0] > 0
    conn.execute("SELECT * FROM monitoring.maintain(14, 2)")
    for table in TABLES:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT 1 FROM {table} LIMIT 1")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "INSERT INTO monitoring.events (event_id, ts, type, data) VALUES (gen_random_uuid(), now(), 't', '{}')"
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM monitoring.get_recent_metrics('t', 5, 10)")


def test_the_reader_may_read_but_not_insert(conn: psycopg.Connection) -> None:
    conn.execute("SELECT monitoring.insert_events(%s::jsonb)", (events(3),))
    conn.execute("SET ROLE sieve_reader")
    assert conn.execute("SELECT count(*) FROM monitoring.events").fetchone() == (3,)
    assert len(conn.execute("SELECT * FROM monitoring.get_recent_metrics('t', 5, 10)").fetchall()) == 3
    for read in READS:
        conn.execute(f"SELECT * FROM {read}")
    for call in (*INSERTS, "monitoring.insert_metric('t', %s::jsonb)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT {call}", (events(),))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM monitoring.maintain(1, 0)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "INSERT INTO monitoring.events (event_id, ts, type, data) VALUES (gen_random_uuid(), now(), 't', '{}')"
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM monitoring.events")


def test_public_can_execute_no_monitoring_function(conn: psycopg.Connection) -> None:
    # proacl NULL would mean the default ACL, which includes EXECUTE for PUBLIC (grantee 0).
    exposed = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " WHERE p.pronamespace = 'monitoring'::regnamespace"
        "   AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))"
    ).fetchall()
    assert exposed == []
    ensure_role(conn, "sieve_test_nobody")
    conn.execute("SET ROLE sieve_test_nobody")
    for call in INSERTS:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT {call}", (events(),))


def test_row_level_security_denies_a_role_that_only_has_a_grant(conn: psycopg.Connection) -> None:
    conn.execute("SELECT monitoring.insert_events(%s::jsonb)", (events(2),))
    ensure_role(conn, "sieve_test_granted")
    conn.execute("GRANT USAGE ON SCHEMA monitoring TO sieve_test_granted")
    conn.execute("GRANT SELECT ON monitoring.events TO sieve_test_granted")
    forced = conn.execute(
        "SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class"
        " WHERE oid IN ('monitoring.events'::regclass, 'monitoring.spans'::regclass,"
        " 'monitoring.metric_points'::regclass, 'monitoring.config'::regclass)"
    ).fetchone()[0]
    assert forced
    conn.execute("SET ROLE sieve_test_granted")
    assert conn.execute("SELECT count(*) FROM monitoring.events").fetchone() == (0,)  # no policy: no rows


def test_a_hostile_search_path_changes_nothing(conn: psycopg.Connection) -> None:
    # Look-alikes of what the functions use, in a schema any caller can see, first on the path.
    conn.execute("CREATE SCHEMA evil")
    conn.execute("GRANT USAGE ON SCHEMA evil TO PUBLIC")
    conn.execute("CREATE TABLE evil.events (LIKE monitoring.events)")
    conn.execute("CREATE TABLE evil.config (LIKE monitoring.config)")
    conn.execute("INSERT INTO evil.config VALUES (true, 3650, 1, interval '100 years')")
    conn.execute("CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT timestamptz '2000-01-01' $$")
    conn.execute(
        "CREATE FUNCTION evil.jsonb_populate_recordset(anyelement, jsonb) RETURNS SETOF anyelement"
        " LANGUAGE sql AS $$ SELECT $1 WHERE false $$"
    )
    conn.execute("GRANT ALL ON evil.events, evil.config TO PUBLIC")
    conn.execute("SET ROLE sieve_writer")
    # A shadowing temporary table too (pg_temp is searched first for relations unless pinned).
    conn.execute("CREATE TEMP TABLE events (LIKE evil.events)")
    for path in ("evil, pg_catalog", "pg_temp, evil, public"):
        conn.execute(f"SET search_path = {path}")
        assert conn.execute("SELECT monitoring.insert_events(%s::jsonb)", (events(2),)).fetchone() == (2,)
        conn.execute("SELECT monitoring.insert_metric('t', '{}')")
    conn.execute("RESET ROLE")
    conn.execute("SET search_path = evil, pg_catalog")
    assert conn.execute("SELECT count(*) FROM monitoring.events").fetchone() == (6,)
    assert conn.execute("SELECT count(*) FROM evil.events").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM pg_temp.events").fetchone() == (0,)
    # insert_metric stamped the real time, not evil.now()'s year 2000.
    assert conn.execute("SELECT min(ts) > pg_catalog.now() - interval '1 hour' FROM monitoring.events").fetchone()[0]
    # The read functions pin the path as well.
    conn.execute("SET ROLE sieve_reader")
    conn.execute("SET search_path = evil, pg_catalog")
    assert len(conn.execute("SELECT * FROM monitoring.get_recent_metrics('t', 5, 100)").fetchall()) == 6


def test_security_definer_functions_pin_an_empty_search_path(conn: psycopg.Connection) -> None:
    unpinned = conn.execute(
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'monitoring'::regnamespace"
        " AND NOT coalesce('search_path=\"\"' = ANY (p.proconfig), false)"
    ).fetchall()
    assert unpinned == []
    owners = conn.execute(
        "SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = 'monitoring'::regnamespace"
    ).fetchall()
    assert owners == [("sieve_owner",)]


def test_supabase_roles_are_handled_when_they_exist(fresh_dsn: str) -> None:
    from pipeline.migrate import migrate

    with psycopg.connect(fresh_dsn, autocommit=True) as c:
        for role in ("anon", "authenticated", "service_role"):
            ensure_role(c, role)
    migrate(fresh_dsn)
    with psycopg.connect(fresh_dsn, autocommit=True) as c:
        for role in ("anon", "authenticated"):
            can = c.execute(
                "SELECT has_function_privilege(%s, 'monitoring.insert_events(jsonb)', 'EXECUTE'),"
                " has_schema_privilege(%s, 'monitoring', 'USAGE'),"
                " has_table_privilege(%s, 'monitoring.events', 'SELECT')",
                (role, role, role),
            ).fetchone()
            assert can == (False, False, False)
        assert c.execute("SELECT pg_has_role('service_role', 'sieve_writer', 'MEMBER')").fetchone() == (True,)
