"""`sieve demo` end to end, shortened: embedded Postgres, migrations, seed, service, load, report."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline.cli import main
from pipeline.config import load_settings
from pipeline.demo.report import render
from pipeline.demo.run import run_demo

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_the_demo_runs_to_its_report(migrated_dsn: str, tmp_path: Path) -> None:
    settings = load_settings(
        environ={},
        database={"dsn": migrated_dsn},
        prometheus={"port": 0},
        service={"port": 0},
        tracing={"spans_file": str(tmp_path / "spans.jsonl"), "schedule_delay_ms": 100},
        sink={"spool_dir": str(tmp_path / "spool"), "flush_interval_s": 0.2},
        # Short histories in a short test: every history read counts as slow, so each run has a plan to diagnose.
        storage={"slow_thresholds_ms": {"get_conversation_messages": 0.01}},
        demo={
            "duration_s": 4,
            "clients": 3,
            "report_path": str(tmp_path / "report.json"),
            "heavy_messages": 2000,
            "error_burst_share": 0.5,
            "slow_lookup_share": 1.0,  # every turn reads a long history, so the cached plan is one of those
        },
    )
    out = io.StringIO()
    report = await run_demo(settings, out=out)
    load = report["load"]
    assert load["turns"] > 10
    assert load["ok"] + sum(load["errors"].values()) == load["turns"]
    assert sum(load["errors"].values()) > 0  # the error burst happened
    assert any(w["burst"] for w in load["windows"])
    assert report["spans"]["by_name"]["call_tool"] == load["turns"]
    assert {"get_conversation_by_continuation_id", "get_conversation_messages", "save_messages"} <= set(
        report["spans"]["storage"]
    )
    assert report["metrics"]["families"] > 10
    assert json.loads((tmp_path / "report.json").read_text())["load"]["turns"] == load["turns"]
    # The tail sampler saw every span; the spans file holds exactly the kept ones, errors among them.
    sampling = report["sampling"]
    assert sampling["spans_seen"] == report["spans"]["total"]
    assert sampling["spans_kept"] + sampling["spans_dropped"] == sampling["spans_seen"]
    assert sampling["kept_by_policy"]["errors"] >= 1
    lines = (tmp_path / "spans.jsonl").read_text().splitlines()
    assert len(lines) == sampling["spans_kept"]
    assert all(w["boost"] >= 1 for w in load["windows"])
    # Windows show the keep probability of a MSG_LOOP line (and of an ordinary turn, once one was decided: here
    # every turn reads a long history, so each is a slow lookup kept for that reason) as the boost made them.
    log_keeps = [w["log_keep"] for w in load["windows"] if w["log_keep"]]
    assert log_keeps and all(0 < base <= effective <= 1 for base, effective in log_keeps)
    turns = [w["turn_keep"] for w in load["windows"] if w["turn_keep"]]
    assert all(0 < effective <= 1 for _base, effective in turns)
    assert "turns kept" in render(report) and "lines kept" in render(report)
    assert json.loads(lines[0])["context"]["trace_id"].startswith("0x")
    assert "sieve demo: service ws://127.0.0.1:" in out.getvalue()
    # Every error-level log line was kept; sampled categories dropped most of their lines.
    logs = report["logs"]
    assert logs["errors_seen"] > 0 and logs["all_errors_kept"] is True
    assert logs["kept"] < logs["seen"]
    # Kept spans and metric points reached the Postgres sink, each once.
    assert report["sink"]["written"]["spans"] == sampling["spans_kept"]
    assert report["sink"]["written"]["points"] > 0
    with psycopg.connect(migrated_dsn) as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM monitoring.spans").fetchone()
    assert stored == (sampling["spans_kept"], sampling["spans_kept"])
    # The slow history reads were kept, explained and diagnosed: the missing index, and the statement to add it.
    groups = {g["operation"]: g for g in report["slow_lookups"]["groups"]}
    history = groups["get_conversation_messages"]
    assert history["plan"] is not None
    finding = history["findings"][0]
    assert finding["kind"] == "missing_index" and finding["table"] == "public.messages"
    assert finding["columns"] == ["conversation_id", "created_at DESC"]
    assert "CREATE INDEX" in report["slow_lookups_text"] and "(history index absent" in render(report)


async def test_with_the_index_the_history_read_uses_it(migrated_dsn: str, tmp_path: Path) -> None:
    settings = load_settings(
        environ={},
        database={"dsn": migrated_dsn},
        prometheus={"port": 0},
        service={"port": 0, "db_connect_delay_s": 0},
        sink={"spool_dir": str(tmp_path / "spool"), "flush_interval_s": 0.2},
        storage={"slow_thresholds_ms": {"get_conversation_messages": 0.01}},
        demo={
            "duration_s": 2,
            "clients": 2,
            "report_path": str(tmp_path / "report.json"),
            "heavy_messages": 2000,
            "slow_lookup_share": 1.0,  # every turn reads a long history, so the cached plan is one of those
            "error_burst_share": 0,
            "with_index": True,
        },
    )
    report = await run_demo(settings, out=io.StringIO())
    history = {g["operation"]: g for g in report["slow_lookups"]["groups"]}["get_conversation_messages"]
    assert "missing_index" not in [f["kind"] for f in history["findings"]]
    nodes = history["plan"]["key_nodes"]
    assert any(n["index_name"] == "messages_conversation_id_created_at_idx" for n in nodes)
    assert not any(n["node_type"] == "Sort" for n in nodes)


def test_cli_reports_a_bad_setting_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIEVE_DEMO__CLIENTS", "0")
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "demo.clients" in err and "greater than or equal to 1" in err


def test_cli_migrate_against_a_dsn(migrated_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dsn", migrated_dsn, "migrate"]) == 0
    assert "applied 0 migration(s)" in capsys.readouterr().out


async def test_a_failed_start_leaves_nothing_running() -> None:
    """The service's port is taken after Postgres started: the error surfaces and the embedded server stops."""
    import shutil
    import tempfile

    from pipeline.demo.run import start_stack
    from pipeline.errors import ListenError

    # Not pytest's tmp_path: under root, pgserver's own system user must reach the data directory, and pytest's
    # base directory is private to root (the session fixture uses mkdtemp for the same reason).
    tmp_path = Path(tempfile.mkdtemp(prefix="sieve-test-failed-start-"))
    try:
        await _failed_start(tmp_path, start_stack, ListenError)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


async def _failed_start(tmp_path: Path, start_stack: Any, error: type[Exception]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = load_settings(
            environ={},
            database={"data_dir": str(tmp_path / "pg")},
            prometheus={"port": 0},
            service={"port": taken.getsockname()[1]},
            sink={"spool_dir": str(tmp_path / "spool")},
            demo={"heavy_conversations": 0, "seed_conversations": 5},
        )
        with pytest.raises(error, match=r"service\.port"):
            await start_stack(settings)
    assert not (tmp_path / "pg" / "postmaster.pid").exists()
