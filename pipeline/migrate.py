"""Bring a database to the schema of ``sql/``: numbered migrations once each, then the repeatable function files.

::

    sql/migrations/NNNN_name.sql  tables, types, roles, grants on them. Applied once each, in version order; an
                                  applied migration whose file changed since is an error (write a new one).
    sql/functions/NN_name.sql     functions and their grants, written to be re-run (CREATE OR REPLACE, a DROP
                                  FUNCTION IF EXISTS before a changed signature, grants at the end). Applied
                                  after the migrations, in file-name order: when new, when the file's checksum
                                  differs from the recorded one, and after any newly applied migration (which
                                  may have dropped something a function depended on).

Each file runs in its own transaction, and one session-level advisory lock serialises concurrent runners (two
demo processes starting together). ``public.sieve_schema_migrations`` records the migrations (version, name,
checksum) and ``public.sieve_schema_repeatables`` the repeatable files (name, checksum).

A database whose history names a migration this Sieve does not ship is refused before anything runs: the
pre-release history (0100-0105) was squashed into the first release's migrations, and a database built by it
cannot be brought to the new layout by applying more files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from opentelemetry.instrumentation.utils import suppress_instrumentation

from pipeline.errors import MigrationError

# Any fixed 64-bit number; it only has to differ from the application's own advisory locks.
_LOCK_KEY = 0x5F1E7E_0001
MIGRATIONS = "migrations"
FUNCTIONS = "functions"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REPEATABLE_NAME = re.compile(r"^\d{2}_[a-z0-9_]+\.sql$")
# Versions of the pre-release history (0100_monitoring_roles_schema ... 0105_slow_lookups), squashed into
# 0002-0004 and sql/functions/ before the first release.
_SQUASHED_VERSIONS = frozenset(range(100, 106))
_RESET_HINT = "rm -rf .sieve/pgdata for the embedded Postgres, a new database for a DSN"


@dataclass(frozen=True)
class Script:
    """One file of ``sql/``: a numbered migration (``version`` set) or a repeatable file (``version`` None)."""

    path: Path
    name: str
    version: int | None = None

    @property
    def repeatable(self) -> bool:
        return self.version is None

    @property
    def label(self) -> str:
        """``migrations/0001_demo_schema.sql``: the file as a reader finds it under ``sql/``."""
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Layout:
    """What ``sql/`` holds, in the order ``migrate`` applies it."""

    migrations: tuple[Script, ...]
    repeatables: tuple[Script, ...]


def sql_dir(package_dir: Path | None = None) -> Path:
    """The ``sql/`` of an installed wheel (``pipeline/_sql``) or, failing that, of the checkout around the package."""
    here = package_dir or Path(__file__).resolve().parent
    # The wheel's copy first: next to an installed package, a directory called sql/ may belong to anything.
    for candidate in (here / "_sql", here.parent / "sql"):
        if (candidate / MIGRATIONS).is_dir():
            return candidate
    raise MigrationError(f"no sql/{MIGRATIONS}/ directory found for the package at {here}")


def discover(directory: Path | None = None) -> Layout:
    """The migrations and repeatable files under ``directory`` (default: ``sql_dir()``), checked and ordered."""
    directory = directory or sql_dir()
    stray = sorted(p.name for p in directory.glob("*.sql"))
    if stray:
        raise MigrationError(
            f"{stray[0]}: SQL files live in {MIGRATIONS}/ (NNNN_lower_snake.sql, applied once) "
            f"or {FUNCTIONS}/ (NN_lower_snake.sql, repeatable)"
        )
    migrations: list[Script] = []
    for path in sorted((directory / MIGRATIONS).glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{MIGRATIONS}/{path.name}: migration files are named NNNN_lower_snake.sql")
        migrations.append(Script(path, match.group(2), int(match.group(1))))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number in {directory / MIGRATIONS}")
    repeatables: list[Script] = []
    for path in sorted((directory / FUNCTIONS).glob("*.sql")):
        if not _REPEATABLE_NAME.match(path.name):
            raise MigrationError(f"{FUNCTIONS}/{path.name}: repeatable files are named NN_lower_snake.sql")
        repeatables.append(Script(path, path.stem))
    return Layout(tuple(migrations), tuple(repeatables))


def _check_history(done: dict[int, str], layout: Layout) -> None:
    """Refuse a database whose recorded migrations this Sieve does not ship, before anything is applied."""
    unknown = sorted(set(done) - {m.version for m in layout.migrations})
    if _SQUASHED_VERSIONS.intersection(unknown):
        raise MigrationError(
            "this database was migrated by a pre-release Sieve whose migrations were since squashed and cannot be "
            f"upgraded: delete it and run again ({_RESET_HINT})"
        )
    if unknown:
        raise MigrationError(
            f"this database records migration(s) {', '.join(f'{v:04d}' for v in unknown)} that this Sieve does not "
            "have: it was migrated by a newer Sieve"
        )


def _apply(conn: psycopg.Connection[Any], script: Script, record: str, params: tuple[object, ...]) -> None:
    try:
        with conn.transaction():
            conn.execute(script.sql.encode())
            conn.execute(record, params)
    except psycopg.Error as exc:
        raise MigrationError(f"{script.label} failed and was rolled back: {exc}") from exc


def migrate(dsn: str, directory: Path | None = None) -> list[Script]:
    """Apply what has not run yet or has changed; return the files applied by this call, in order."""
    layout = discover(directory)
    applied_now: list[Script] = []
    # The runner's own statements are not application telemetry.
    with suppress_instrumentation(), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS public.sieve_schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM public.sieve_schema_migrations")
            }
            _check_history(done, layout)
            for migration in layout.migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"{migration.label} changed after it was applied; add a new migration instead"
                        )
                    continue
                _apply(
                    conn,
                    migration,
                    "INSERT INTO public.sieve_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                applied_now.append(migration)

            conn.execute(
                """CREATE TABLE IF NOT EXISTS public.sieve_schema_repeatables (
                       name text PRIMARY KEY,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            recorded = {
                row[0]: row[1] for row in conn.execute("SELECT name, checksum FROM public.sieve_schema_repeatables")
            }
            after_migration = bool(applied_now)
            for repeatable in layout.repeatables:
                if not after_migration and recorded.get(repeatable.name) == repeatable.checksum:
                    continue
                _apply(
                    conn,
                    repeatable,
                    "INSERT INTO public.sieve_schema_repeatables (name, checksum) VALUES (%s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()",
                    (repeatable.name, repeatable.checksum),
                )
                applied_now.append(repeatable)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def applied(dsn: str) -> list[tuple[int, str]]:
    """The numbered migrations a database records, as (version, name) in version order."""
    with suppress_instrumentation(), psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('public.sieve_schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return []
        return [
            (r[0], r[1]) for r in conn.execute("SELECT version, name FROM public.sieve_schema_migrations ORDER BY 1")
        ]
