"""``sieve trace``: a real trace written through the Postgres sink, read back as a waterfall and as JSON.

The trace is made by the real collectors: a message span, two repository operations through the storage
telemetry (one slow, explained off the hot path, its plan joining the trace) and a driver statement span, exported
by the real ``PostgresSink``. The command runs in a process of its own, as a user runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from collectors.storage import ExplainOptions, StorageTelemetry, instrument_drivers, uninstrument_drivers
from pipeline.cli import main
from pipeline.export.postgres import PostgresSink
from pipeline.slowlookups.trace import build_view, parse_trace_id
from pipeline.slowlookups.waterfall import JSON_VERSION, render_text
from tests.sink.conftest import fast_settings

pytestmark = pytest.mark.postgres

HISTORY = "SELECT id, body FROM public.notes WHERE owner = $1 ORDER BY created_at DESC LIMIT $2"


def sieve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own, as a user runs it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIEVE_", "OTEL_", "GRAFANA_"))}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=clean,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the tests assert on the exit status
    )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The same in this process (``main``), for speed."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


@pytest.fixture
def written(migrated_dsn: str, tmp_path: Path) -> tuple[str, str]:
    """(dsn, trace id) of one turn written through the sink, with a slow explained read in it."""
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.notes (id bigint PRIMARY KEY, owner int, body text, created_at timestamptz)")
        conn.execute(
            "INSERT INTO public.notes SELECT g, g % 20, 'x', now() - make_interval(secs => g) "
            "FROM generate_series(1, 20000) AS g"
        )
        conn.execute("ANALYZE public.notes")
        conn.execute("SELECT monitoring.maintain(7)")
    sink = PostgresSink(migrated_dsn, fast_settings(tmp_path / "spool"))
    provider = TracerProvider(resource=Resource.create({"service.name": "trace-test"}))
    provider.add_span_processor(SimpleSpanProcessor(sink.span_exporter()))
    instrument_drivers(provider)
    try:
        trace_id = asyncio.run(_turn(migrated_dsn, provider))
        provider.force_flush()
        assert sink.flush(10)
    finally:
        uninstrument_drivers()
        sink.shutdown()
    return migrated_dsn, trace_id


async def _turn(dsn: str, provider: TracerProvider) -> str:
    telemetry = StorageTelemetry(
        provider, slow_threshold_ms=0.001, slow_thresholds_ms={"count_notes": 10_000}, explain=ExplainOptions(dsn=dsn)
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("call_tool", kind=SpanKind.SERVER) as root:
        async with telemetry.operation("get_notes", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as c:
            await c.fetch(HISTORY, 3, 5)
        async with telemetry.operation("count_notes", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as c:
            await c.fetchval("SELECT count(*) FROM public.notes WHERE owner = $1", 3)
        await telemetry.drain_plans()
    await pool.close()
    await telemetry.close()
    return format(root.get_span_context().trace_id, "032x")


def test_the_waterfall_shows_the_tree_the_time_split_the_statement_and_the_plan(
    written: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn, trace_id = written
    proc = sieve("--dsn", dsn, "trace", trace_id, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"trace {trace_id}  trace-test  ")
    # A span's row: offset, duration ("11.5 ms"), the name indented under its parent, the bar, the details.
    spans = [line for line in lines[3:] if line[:9].strip().replace(".", "").isdigit()]
    rows = {line.split()[3]: line for line in spans}
    assert "call_tool" in rows and "get_notes" in rows and "count_notes" in rows
    get_notes = rows["get_notes"]
    assert "wait " in get_notes and " / connect " in get_notes and " / execute " in get_notes and "SLOW" in get_notes
    assert "SLOW" not in rows["count_notes"]  # its own threshold
    # Children are indented under their parent, in start order; the statement and the plan sit under their spans.
    order = [line.split()[3] for line in spans]
    assert order[:2] == ["call_tool", "get_notes"]
    assert rows["get_notes"].index("get_notes") == rows["call_tool"].index("call_tool") + 2
    assert rows["EXPLAIN"].index("EXPLAIN") == rows["get_notes"].index("get_notes") + 2
    assert any(line.strip() == HISTORY for line in lines)
    explain = next(line for line in lines if " EXPLAIN " in line)
    assert "plan " in explain and "(captured)" in explain
    assert any(line.strip().startswith("plan: [Limit") for line in lines)
    assert "|" in get_notes and "#" in get_notes  # the bar
    assert "events of this trace: none in the sink" in proc.stdout

    same = main(["--dsn", dsn, "trace", "0x" + trace_id.upper()])
    assert same == 0 and capsys.readouterr().out == proc.stdout


def test_json_is_versioned_and_carries_what_the_text_shows(
    written: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dsn, trace_id = written
    proc = run(capsys, "--dsn", dsn, "trace", "--json", trace_id)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["version"] == JSON_VERSION == 1
    assert doc["trace_id"] == trace_id and doc["services"] == ["trace-test"] and doc["orphans"] == 0
    spans = {s["name"]: s for s in doc["spans"]}
    assert spans["call_tool"]["depth"] == 0 and spans["call_tool"]["kind"] == "server"
    notes = spans["get_notes"]
    assert notes["depth"] == 1 and notes["parent_span_id"] == spans["call_tool"]["span_id"]
    db: dict[str, Any] = notes["db"]
    assert db["statement"] == HISTORY and db["slow"] is True and len(db["fingerprint"]) == 16
    assert set(db["time_ms"]) == {"pool_wait", "connect", "execute"} and db["time_ms"]["execute"] > 0
    # Both reads were explained: the slow one, and the fast one once (the plan in force, a baseline capture).
    explains = {s["parent_span_id"]: s for s in doc["spans"] if s["name"] == "EXPLAIN"}
    assert set(explains) == {notes["span_id"], spans["count_notes"]["span_id"]}
    plan = explains[notes["span_id"]]["plan"]
    assert len(plan["hash"]) == 16 and plan["cached"] is False and plan["key_nodes"][0]["node_type"] == "Limit"
    # The operation's span is the call's one CLIENT span: no driver statement span repeats it underneath.
    assert notes["kind"] == "client"
    assert not [s for s in doc["spans"] if s["kind"] == "client" and s["parent_span_id"] == notes["span_id"]]
    assert doc["spans"][0]["offset_ms"] == 0.0
    assert doc["events"] == []


def test_events_that_name_the_trace_are_shown(written: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    dsn, trace_id = written
    with psycopg.connect(dsn, autocommit=True) as conn:
        ts = conn.execute("SELECT min(start_ts) FROM monitoring.spans WHERE trace_id = %s", (trace_id,)).fetchone()
        assert ts is not None
        rows = [
            {"id": "6f1c0c52-2f43-4c55-9a2e-0d7f0e3a9c01", "ts": ts[0].isoformat(), "type": "cache_miss",
             "data": {"trace_id": trace_id, "key": "conv:1"}},
            {"id": "6f1c0c52-2f43-4c55-9a2e-0d7f0e3a9c02", "ts": ts[0].isoformat(), "type": "other",
             "data": {"trace_id": "0" * 31 + "1"}},
        ]  # fmt: skip
        conn.execute("SELECT monitoring.insert_events(%s::jsonb)", (json.dumps(rows),))
    proc = run(capsys, "--dsn", dsn, "trace", trace_id)
    assert "events of this trace" in proc.stdout and "cache_miss" in proc.stdout and "other" not in proc.stdout


def test_a_trace_the_sink_does_not_have_exits_1_with_a_hint(
    migrated_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = run(capsys, "--dsn", migrated_dsn, "trace", "4bf92f3577b34da6a3ce929d0e0e4736")
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("sieve: no trace 4bf92f3577b34da6a3ce929d0e0e4736 in the sink")
    assert "dropped it" in line and "30 days" in line  # the default retention


@pytest.mark.parametrize("bad", ["xyz", "4bf92f3577b34da6a3ce929d0e0e473", "0" * 32, "0x" + "g" * 32, ""])
def test_a_bad_trace_id_is_one_line_and_exit_2_before_any_database(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = run(capsys, "--dsn", "postgresql://nobody@127.0.0.1:1/none", "trace", bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("sieve: bad trace id") and "32 hex digits" in line


def test_an_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = sieve(
        "--dsn", "postgresql://nobody@127.0.0.1:1/none", "trace", "4bf92f3577b34da6a3ce929d0e0e4736", cwd=tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("sieve: cannot reach Postgres")


def test_trace_ids_are_accepted_as_people_paste_them() -> None:
    assert parse_trace_id("  0X4BF92F3577B34DA6A3CE929D0E0E4736 ") == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_spans_whose_parent_was_not_kept_are_shown_at_the_top_level() -> None:
    from datetime import UTC, datetime, timedelta

    from pipeline.slowlookups.trace import TraceSpan

    t0 = datetime(2025, 1, 1, tzinfo=UTC)

    def span(sid: str, parent: str | None, offset_ms: float) -> TraceSpan:
        return TraceSpan(sid, parent, f"s{sid}", "internal", "unset", None, t0 + timedelta(milliseconds=offset_ms),
                         10.0, "svc", {})  # fmt: skip

    view = build_view("ab" * 16, [span("2", "1", 5), span("1", None, 0), span("3", "9", 1), span("4", "2", 6)])
    assert [(s.span_id, s.depth) for s in view.spans] == [("1", 0), ("2", 1), ("4", 2), ("3", 0)]
    assert view.orphans == 1
    assert "whose parent the sink does not have" in render_text(view)
