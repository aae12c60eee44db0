"""Apply ``sql/NNNN_name.sql`` migrations in order, each once, each in its own transaction.

A session-level advisory lock serialises concurrent runners (two demo processes starting together); the
``public.sieve_schema_migrations`` table records what ran with a checksum, and a migration whose file changed
after it was applied is an error rather than a silent skip.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from opentelemetry.instrumentation.utils import suppress_instrumentation

from pipeline.errors import MigrationError

# Any fixed 64-bit number; it only has to differ from the application's own advisory locks.
_LOCK_KEY = 0x5F1E7E_0001
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def sql_dir() -> Path:
    """``sql/`` of a checkout, or the copy a wheel carries inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "sql", here / "_sql"):
        if candidate.is_dir():
            return candidate
    raise MigrationError(f"no sql/ directory found next to {here}")


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number in {directory}")
    return found


def migrate(dsn: str, directory: Path | None = None) -> list[Migration]:
    """Apply what has not run yet; return the migrations applied by this call."""
    migrations = discover(directory)
    applied_now: list[Migration] = []
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
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"{migration.path.name} changed after it was applied; add a new migration instead"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO public.sieve_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"{migration.path.name} failed and was rolled back: {exc}") from exc
                applied_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def applied(dsn: str) -> list[tuple[int, str]]:
    with suppress_instrumentation(), psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('public.sieve_schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return []
        return [
            (r[0], r[1]) for r in conn.execute("SELECT version, name FROM public.sieve_schema_migrations ORDER BY 1")
        ]
