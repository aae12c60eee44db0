from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from pipeline.errors import MigrationError
from pipeline.migrate import applied, discover, migrate

pytestmark = pytest.mark.postgres


def test_applies_each_migration_once_and_records_it(fresh_dsn: str) -> None:
    first = migrate(fresh_dsn)
    assert [m.version for m in first] == [m.version for m in discover()]
    assert migrate(fresh_dsn) == []
    assert [v for v, _ in applied(fresh_dsn)] == [m.version for m in discover()]
    with psycopg.connect(fresh_dsn) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"conversations", "messages", "sieve_schema_migrations"} <= tables


def test_a_failing_migration_rolls_back_and_names_the_file(fresh_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE a (x int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE b (x int); SELECT * FROM missing_table;")
    with pytest.raises(MigrationError, match=r"0002_broken\.sql"):
        migrate(fresh_dsn, tmp_path)
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT to_regclass('public.a')").fetchone() == ("a",)
        assert conn.execute("SELECT to_regclass('public.b')").fetchone() == (None,)
    assert applied(fresh_dsn) == [(1, "ok")]


def test_an_edited_migration_is_refused(fresh_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "0001_one.sql"
    path.write_text("CREATE TABLE a (x int);")
    migrate(fresh_dsn, tmp_path)
    path.write_text("CREATE TABLE a (x bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(fresh_dsn, tmp_path)


def test_badly_named_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "create_things.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lower_snake"):
        discover(tmp_path)


def test_concurrent_runners_apply_once(fresh_dsn: str, tmp_path: Path) -> None:
    # A non-idempotent migration: a second application would fail on the duplicate table.
    (tmp_path / "0001_slow.sql").write_text("SELECT pg_sleep(0.3); CREATE TABLE once (x int);")
    results: list[object] = []

    def run() -> None:
        try:
            results.append(len(migrate(fresh_dsn, tmp_path)))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 1]  # type: ignore[type-var]
