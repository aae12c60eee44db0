"""The migration runner against real Postgres: numbered migrations once each, repeatable files whenever they
change, the history it records, and the databases it refuses."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from pipeline.cli import main
from pipeline.errors import MigrationError
from pipeline.migrate import Script, applied, discover, migrate

pytestmark = pytest.mark.postgres


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def labels(scripts: list[Script]) -> list[str]:
    return [s.label for s in scripts]


def scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def repeatables(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT name, checksum FROM public.sieve_schema_repeatables").fetchall())


def test_a_fresh_database_migrates_once_and_a_second_run_is_a_no_op(fresh_dsn: str) -> None:
    layout = discover()
    first = migrate(fresh_dsn)
    # Every migration in version order, then every repeatable file in name order.
    assert first == [*layout.migrations, *layout.repeatables]
    assert [s.version for s in first if not s.repeatable] == [1, 2, 3, 4, 5, 6]
    assert migrate(fresh_dsn) == []
    assert applied(fresh_dsn) == [(m.version, m.name) for m in layout.migrations]
    assert repeatables(fresh_dsn) == {r.name: r.checksum for r in layout.repeatables}
    with psycopg.connect(fresh_dsn) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"conversations", "messages", "sieve_schema_migrations", "sieve_schema_repeatables"} <= tables


def test_a_failing_migration_rolls_back_and_names_the_file(fresh_dsn: str, tmp_path: Path) -> None:
    write(tmp_path, "migrations/0001_ok.sql", "CREATE TABLE a (x int);")
    write(tmp_path, "migrations/0002_broken.sql", "CREATE TABLE b (x int); SELECT * FROM missing_table;")
    with pytest.raises(MigrationError, match=r"migrations/0002_broken\.sql failed and was rolled back"):
        migrate(fresh_dsn, tmp_path)
    assert scalar(fresh_dsn, "SELECT to_regclass('public.a')") == "a"
    assert scalar(fresh_dsn, "SELECT to_regclass('public.b')") is None
    assert applied(fresh_dsn) == [(1, "ok")]


def test_an_edited_migration_is_refused(fresh_dsn: str, tmp_path: Path) -> None:
    path = write(tmp_path, "migrations/0001_one.sql", "CREATE TABLE a (x int);")
    migrate(fresh_dsn, tmp_path)
    path.write_text("CREATE TABLE a (x bigint);")
    with pytest.raises(MigrationError, match=r"migrations/0001_one\.sql changed after it was applied"):
        migrate(fresh_dsn, tmp_path)


def test_a_changed_repeatable_file_is_applied_again_alone(fresh_dsn: str, tmp_path: Path) -> None:
    write(tmp_path, "migrations/0001_t.sql", "CREATE TABLE t (x int);")
    answer = write(
        tmp_path,
        "functions/10_answer.sql",
        "CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 1';",
    )
    write(
        tmp_path,
        "functions/20_other.sql",
        "CREATE OR REPLACE FUNCTION other() RETURNS text LANGUAGE sql AS 'SELECT 1::text';",
    )
    assert labels(migrate(fresh_dsn, tmp_path)) == [
        "migrations/0001_t.sql",
        "functions/10_answer.sql",
        "functions/20_other.sql",
    ]
    answer.write_text("CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 2';")
    assert labels(migrate(fresh_dsn, tmp_path)) == ["functions/10_answer.sql"]
    assert scalar(fresh_dsn, "SELECT answer()") == 2
    assert repeatables(fresh_dsn)["10_answer"] == Script(answer, "10_answer").checksum
    assert migrate(fresh_dsn, tmp_path) == []


def test_a_new_migration_applies_every_repeatable_file_again(fresh_dsn: str, tmp_path: Path) -> None:
    # A migration may drop what a function depends on (here a table the function returns rows of).
    write(tmp_path, "migrations/0001_t.sql", "CREATE TABLE t (x int);")
    write(
        tmp_path,
        "functions/10_rows.sql",
        "CREATE OR REPLACE FUNCTION rows() RETURNS SETOF t LANGUAGE sql AS 'SELECT * FROM t';",
    )
    migrate(fresh_dsn, tmp_path)
    write(tmp_path, "migrations/0002_rebuild_t.sql", "DROP TABLE t CASCADE; CREATE TABLE t (x int, y int);")
    assert labels(migrate(fresh_dsn, tmp_path)) == ["migrations/0002_rebuild_t.sql", "functions/10_rows.sql"]
    assert scalar(fresh_dsn, "SELECT count(*) FROM rows()") == 0


def test_a_failing_repeatable_file_rolls_back_and_runs_again_next_time(fresh_dsn: str, tmp_path: Path) -> None:
    write(tmp_path, "migrations/0001_t.sql", "CREATE TABLE t (x int);")
    broken = write(
        tmp_path,
        "functions/10_f.sql",
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; SELECT 1/0;",
    )
    with pytest.raises(MigrationError, match=r"functions/10_f\.sql failed and was rolled back: division by zero"):
        migrate(fresh_dsn, tmp_path)
    assert scalar(fresh_dsn, "SELECT to_regprocedure('f()')") is None
    assert repeatables(fresh_dsn) == {}
    broken.write_text("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';")
    assert labels(migrate(fresh_dsn, tmp_path)) == ["functions/10_f.sql"]


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("0001_loose.sql", r"0001_loose\.sql: SQL files live in migrations/ .* or functions/"),
        ("migrations/create_things.sql", r"migrations/create_things\.sql: .* NNNN_lower_snake\.sql"),
        ("functions/inserts.sql", r"functions/inserts\.sql: .* NN_lower_snake\.sql"),
        ("functions/0030_Inserts.sql", r"functions/0030_Inserts\.sql: .* NN_lower_snake\.sql"),
    ],
)
def test_a_misplaced_or_badly_named_file_is_an_error(tmp_path: Path, relative: str, message: str) -> None:
    write(tmp_path, "migrations/0001_ok.sql", "SELECT 1;")
    write(tmp_path, relative, "SELECT 1;")
    with pytest.raises(MigrationError, match=message):
        discover(tmp_path)


def test_two_migrations_with_one_version_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, "migrations/0001_a.sql", "SELECT 1;")
    write(tmp_path, "migrations/0001_b.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="share a version number"):
        discover(tmp_path)


def test_concurrent_runners_apply_once(fresh_dsn: str, tmp_path: Path) -> None:
    # Neither file is idempotent on purpose: a second application would fail on the duplicate table.
    write(tmp_path, "migrations/0001_slow.sql", "SELECT pg_sleep(0.3); CREATE TABLE once (x int);")
    write(tmp_path, "functions/10_slow.sql", "SELECT pg_sleep(0.2); CREATE TABLE once_too (x int);")
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
    assert sorted(results) == [0, 0, 2]  # type: ignore[type-var]


def record_history(dsn: str, versions: list[tuple[int, str]]) -> None:
    """A history as the runner before the squash recorded it (its table, these rows)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.sieve_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name in versions:
            conn.execute(
                "INSERT INTO public.sieve_schema_migrations (version, name, checksum) VALUES (%s, %s, 'old')",
                (version, name),
            )


PRE_RELEASE = [
    (1, "demo_schema"),
    (100, "monitoring_roles_schema"),
    (101, "monitoring_tables"),
    (102, "monitoring_functions"),
    (103, "monitoring_grants"),
    (104, "monitoring_fast_inserts"),
    (105, "slow_lookups"),
]


@pytest.mark.parametrize("history", [PRE_RELEASE, PRE_RELEASE[:2]], ids=["whole", "interrupted"])
def test_a_database_of_the_pre_release_history_is_refused_untouched(
    fresh_dsn: str, history: list[tuple[int, str]]
) -> None:
    record_history(fresh_dsn, history)
    with pytest.raises(MigrationError) as info:
        migrate(fresh_dsn)
    message = str(info.value)
    assert "\n" not in message
    assert "pre-release Sieve" in message and "rm -rf .sieve/pgdata" in message
    # Refused before anything ran: no new schema, no new history.
    assert scalar(fresh_dsn, "SELECT to_regnamespace('monitoring')") is None
    assert scalar(fresh_dsn, "SELECT to_regclass('public.sieve_schema_repeatables')") is None
    assert applied(fresh_dsn) == history


def test_sieve_migrate_says_so_in_one_line(fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    record_history(fresh_dsn, PRE_RELEASE)
    assert main(["--dsn", fresh_dsn, "migrate"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("sieve: this database was migrated by a pre-release Sieve")
    assert "rm -rf .sieve/pgdata" in err


def test_a_database_migrated_by_a_newer_sieve_is_refused(fresh_dsn: str) -> None:
    record_history(fresh_dsn, [(1, "demo_schema"), (9999, "from_the_future")])
    with pytest.raises(MigrationError, match=r"records migration\(s\) 9999 that this Sieve does not have"):
        migrate(fresh_dsn)
