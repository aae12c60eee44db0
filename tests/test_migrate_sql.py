"""The SQL of ``sql/`` itself: one definition per function, repeatable files that can run again without changing
anything, attribute keys that ``pipeline.names`` declares, and a layout found from a checkout and from a wheel."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import tomllib
from pathlib import Path

import psycopg
import pytest
from opentelemetry.semconv._incubating.attributes import db_attributes

import pipeline.names
from pipeline.migrate import FUNCTIONS, MIGRATIONS, discover, migrate, sql_dir
from pipeline.names import storage

ROOT = Path(__file__).resolve().parents[1]
SQL_FILES = sorted((ROOT / "sql").rglob("*.sql"))
_DEFINITION = re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?FUNCTION\s+([\w.]+)\s*\(", re.IGNORECASE)
# A quoted key after a jsonb operator: attributes ->> 'k', a -> 'k', attributes ? 'k', ?| and ?& alike.
_JSONB_KEY = re.compile(r"(?:->>|->|\?\||\?&|\?)\s*'([^']+)'")
_JSONB_CONTAINS = re.compile(r"@>\s*'(\{[^']*\})'")


def code(path: Path) -> str:
    """The file without its ``--`` comments (examples in comments are not what the SQL reads)."""
    return re.sub(r"--[^\n]*", "", path.read_text())


def definitions() -> list[tuple[str, bool, Path]]:
    """(function name, written with OR REPLACE, file) for every function definition under sql/."""
    return [(m.group(2), bool(m.group(1)), path) for path in SQL_FILES for m in _DEFINITION.finditer(code(path))]


def test_each_function_is_defined_once_in_a_repeatable_file() -> None:
    found = definitions()
    names = [name for name, _, _ in found]
    assert len(names) > 10
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    # Functions live in functions/ and can run again; migrations hold tables, types, roles and grants.
    assert [(n, p.parent.name) for n, _, p in found if p.parent.name != FUNCTIONS] == []
    assert [n for n, or_replace, _ in found if not or_replace] == []


def test_the_functions_the_code_calls_are_defined() -> None:
    names = {name for name, _, _ in definitions()}
    # Called by pipeline/export/postgres, pipeline/slowlookups, dashboards/ and the old API's users.
    assert {
        "monitoring.insert_points",
        "monitoring.insert_events",
        "monitoring.insert_spans",
        "monitoring.insert_metric",
        "monitoring.maintain",
        "monitoring.get_recent_metrics",
        "monitoring.get_recent_points",
        "monitoring.get_trace",
        "monitoring.get_slow_lookup_groups",
    } <= names


def name_constants() -> set[str]:
    """Every attribute key and metric name ``pipeline.names`` declares: its modules' string constants and labels."""
    found: set[str] = set()
    modules = [pipeline.names] + [
        importlib.import_module(f"pipeline.names.{info.name}") for info in pkgutil.iter_modules(pipeline.names.__path__)
    ]
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, str):
                found.add(value)
            elif isinstance(value, pipeline.names.MetricSpec):
                found.update(value.labels)
    return found


# Keys the SQL reads that Sieve does not write itself: the contrib asyncpg and psycopg instrumentations still
# write the pre-stable database conventions' system key on their statement spans (spans.db_system reads both).
DRIVER_KEYS = {db_attributes.DB_SYSTEM}


def jsonb_keys(sql: str) -> list[str]:
    """Keys after a jsonb operator, and the top-level keys of a containment literal (a @> '{"k": true}')."""
    contained = [key for literal in _JSONB_CONTAINS.findall(sql) for key in json.loads(literal)]
    return _JSONB_KEY.findall(sql) + contained


def test_the_attribute_keys_the_sql_reads_are_declared_in_pipeline_names() -> None:
    read = {(key, path.name) for path in SQL_FILES for key in jsonb_keys(code(path))}
    keys = {key for key, _ in read}
    # The parse finds what the slow-lookup report and the tables read.
    assert {storage.FINGERPRINT, storage.EXECUTE_S, storage.SLOW, storage.PLAN_ANALYZED, storage.DB_SYSTEM} <= keys
    allowed = name_constants() | DRIVER_KEYS
    assert sorted((key, file) for key, file in read if key not in allowed) == []


def test_the_key_parse_sees_every_operator_and_skips_comments(tmp_path: Path) -> None:
    path = tmp_path / "x.sql"
    path.write_text(
        "SELECT a ->> 'k1', a->'k2', a ? 'k3', a ?| 'k4', b -> (i - 1), jsonb_typeof(e -> k)\n"
        "-- attributes ->> 'in.a.comment'\n"
    )
    assert _JSONB_KEY.findall(code(path)) == ["k1", "k2", "k3", "k4"]
    path.write_text('SELECT a @> \'{"k5": true}\', a @> \'{"k6": 1, "k7": "x"}\'\n')
    assert jsonb_keys(code(path)) == ["k5", "k6", "k7"]


def test_sql_is_found_in_the_checkout_and_in_an_installed_wheel(tmp_path: Path) -> None:
    assert sql_dir() == ROOT / "sql"
    # The wheel carries sql/ as pipeline/_sql (pyproject's force-include), subfolders and all ...
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]["sql"] == "pipeline/_sql"
    # ... so an installed package finds it there, not in whatever else site-packages holds called sql/.
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "sql", site / "pipeline" / "_sql")
    (site / "sql").mkdir()
    assert sql_dir(site / "pipeline") == site / "pipeline" / "_sql"
    installed, checkout = discover(sql_dir(site / "pipeline")), discover()
    assert [s.label for s in installed.migrations + installed.repeatables] == [
        s.label for s in checkout.migrations + checkout.repeatables
    ]
    assert [s.checksum for s in installed.repeatables] == [s.checksum for s in checkout.repeatables]


def test_no_sql_directory_is_an_error(tmp_path: Path) -> None:
    from pipeline.errors import MigrationError

    (tmp_path / "pipeline").mkdir()
    (tmp_path / "sql").mkdir()  # no migrations/ inside: not Sieve's
    with pytest.raises(MigrationError, match=f"no sql/{MIGRATIONS}/ directory"):
        sql_dir(tmp_path / "pipeline")


CATALOG = """
    SELECT p.oid::regprocedure::text, p.oid, p.prosrc, p.proacl::text, p.prosecdef, p.proconfig::text,
           pg_get_userbyid(p.proowner)
      FROM pg_proc p
     WHERE p.pronamespace = 'monitoring'::regnamespace
     ORDER BY 1
"""


@pytest.mark.postgres
def test_the_database_holds_exactly_the_functions_the_files_define(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn) as conn:
        in_db = {
            r[0]
            for r in conn.execute("SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'monitoring'::regnamespace")
        }
    assert {f"monitoring.{name}" for name in in_db} == {name for name, _, _ in definitions()}


@pytest.mark.postgres
def test_applying_every_repeatable_file_again_changes_nothing(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        before = conn.execute(CATALOG).fetchall()
        conn.execute("DELETE FROM public.sieve_schema_repeatables")
    again = migrate(migrated_dsn)
    assert [s.label for s in again] == [s.label for s in discover().repeatables]
    with psycopg.connect(migrated_dsn) as conn:
        after = conn.execute(CATALOG).fetchall()
    # Same functions (same oids: replaced, not dropped and made anew), same bodies, same grants and settings.
    assert after == before
    assert migrate(migrated_dsn) == []
