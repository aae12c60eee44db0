"""The demo's N+1, end to end: turns on seeded conversations read each attached file with its own query (the old
daemon's way); the spans go through the real sink; ``sieve slow-lookups`` finds the loop and names the parent, the
count and the one query that replaces it. With ``--fix-n-plus-one`` the loop is gone.

Twice: with tail sampling off (every span stored; the report finds the loop by grouping the stored spans), and with
the default in-process sampling on, where the sampler's N+1 detector keeps those traces (reason ``n-plus-one``)
and marks the repeated spans, and the report reads the marks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline.config import load_settings
from pipeline.demo.client import DemoClient
from pipeline.demo.provider import Provider
from pipeline.demo.run import demo_settings
from pipeline.demo.seed import seed
from pipeline.demo.service import DemoService
from pipeline.demo.store import ConversationRepository
from pipeline.names import storage as st
from pipeline.root import setup
from pipeline.slowlookups import collect_report
from pipeline.slowlookups.render import render_text, to_dict

pytestmark = pytest.mark.postgres

FILES = 6
TURNS = 4
GET_FILE = "SELECT id, name, mime_type, size_bytes FROM public.files WHERE id = $1"


async def _turns(dsn: str, tmp_path: Path, *, batched: bool, sampling: bool = False) -> dict[str, Any]:
    """TURNS turns on the seeded conversation; the sampler's stats (empty with sampling off)."""
    settings = demo_settings(
        load_settings(
            environ={},
            database={"dsn": dsn},
            prometheus={"enabled": False},
            service={"port": 0, "db_connect_delay_s": 0, "batch_file_lookups": batched},
            provider={"latency_median_s": 0.002, "latency_sigma": 0.1, "chunks": 1, "failure_rate": 0.0},
            tracing={"schedule_delay_ms": 50},
            # Off: every trace is kept. On: the default in-process policies (extensions included) decide.
            sampling={"enabled": sampling},
            sink={
                "enabled": True,
                "spool_dir": str(tmp_path / f"spool-{batched}-{sampling}"),
                "flush_interval_s": 0.1,
            },
            logs={"enabled": False},
            # The reason stamped is the first policy that kept the trace: a first connect slower than the 20 ms
            # default would make it `slow-lookups` (an earlier filter) instead of `n-plus-one`.
            storage={"explain": {"enabled": False}, "slow_threshold_ms": 60_000},
        )
    )
    sieve = setup(settings, install_globals=False)
    store = await ConversationRepository.open(dsn, sieve.storage, settings.service)
    service = await DemoService(
        settings.service, store, Provider(settings.provider, sieve.tracer_provider, random.Random(5)), sieve.websocket
    ).start()
    try:
        client = await DemoClient.connect(service.url)
        await client.hello(settings.service.token)
        for turn in range(TURNS):
            assert (await client.call_tool("chat", {"prompt": f"t{turn}", "continuation_id": "seed-1"})).ok
        await client.close()
    finally:
        await service.stop()
        await store.close()
        await sieve.aclose()  # decides what is pending, flushes the kept spans into the sink
    sampler = sieve.telemetry.sampler if sieve.telemetry is not None else None
    return sampler.stats() if sampler is not None and sampler.sampling else {}


async def test_the_n_plus_one_is_found_in_the_stored_spans_diagnosed_and_gone_after_the_fix(
    migrated_dsn: str, tmp_path: Path
) -> None:
    demo = load_settings(environ={}).demo
    seeded = seed(migrated_dsn, demo.model_copy(update={"seed_conversations": 3, "heavy_conversations": 0}))
    assert seeded["files"] == 3 * FILES

    await _turns(migrated_dsn, tmp_path, batched=False)
    report = collect_report(migrated_dsn, timedelta(hours=1))
    assert report.n_plus_one_source == "scan"
    (loop,) = report.n_plus_one
    assert (loop.parent, loop.operation, loop.statement) == ("call_tool", "get_file", GET_FILE)
    assert (loop.occurrences, loop.traces, loop.executions_p50, loop.executions_max) == (TURNS, TURNS, FILES, FILES)
    assert loop.batched_statement == GET_FILE.replace("id = $1", "id = ANY($1)")
    assert not loop.marked and len(loop.example_trace_ids) == 3
    text = render_text(report)
    assert f"get_file x{FILES} under call_tool" in text and "open one: sieve trace " in text
    assert to_dict(report)["n_plus_one"]["groups"][0]["executions"] == {"p50": FILES, "max": FILES}

    fixed_at = datetime.now(UTC)
    await _turns(migrated_dsn, tmp_path, batched=True)
    until = datetime.now(UTC)
    after = collect_report(migrated_dsn, until - fixed_at, until=until)
    assert after.n_plus_one == () and after.n_plus_one_source == "scan"
    with psycopg.connect(migrated_dsn) as conn:  # the window does hold the fixed turns: one joined read each
        (joined,) = conn.execute(
            "SELECT count(*) FROM monitoring.spans WHERE name = 'get_conversation_files' AND start_ts >= %s",
            (fixed_at,),
        ).fetchone() or (0,)
    assert joined == TURNS
    assert "N+1: none (found in the stored spans)." in render_text(after)


async def test_with_sampling_on_the_detector_keeps_and_marks_the_n_plus_one_and_the_report_reads_the_marks(
    migrated_dsn: str, tmp_path: Path
) -> None:
    demo = load_settings(environ={}).demo
    seed(migrated_dsn, demo.model_copy(update={"seed_conversations": 3, "heavy_conversations": 0}))

    started = datetime.now(UTC)
    stats = await _turns(migrated_dsn, tmp_path, batched=False, sampling=True)
    # Every turn's trace kept, by the detector, with probability 1 (a deterministic policy: the priority tier).
    assert stats["policy_votes"]["n-plus-one/sampled"] == TURNS
    assert stats["kept_by_policy"]["n-plus-one"] == TURNS
    with psycopg.connect(migrated_dsn) as conn:
        turns = conn.execute(
            "SELECT trace_id, sampling_reason, sampling_probability, attributes ->> %s FROM monitoring.spans"
            " WHERE name = 'call_tool' AND start_ts >= %s",
            (st.N_PLUS_ONE_FINGERPRINT, started),
        ).fetchall()
        assert len(turns) == TURNS
        assert {(reason, p) for _, reason, p, _ in turns} == {("n-plus-one", 1.0)}
        repeated = conn.execute(
            "SELECT sampling_reason, attributes FROM monitoring.spans WHERE name = 'get_file' AND start_ts >= %s",
            (started,),
        ).fetchall()
    # Every repeated span marked with the executions under its parent; the parent names the repeated shape.
    assert len(repeated) == TURNS * FILES
    for reason, attributes in repeated:
        assert (attributes[st.N_PLUS_ONE], attributes[st.N_PLUS_ONE_COUNT], reason) == (True, FILES, "n-plus-one")
    fingerprint = repeated[0][1][st.FINGERPRINT]
    assert {fp for *_, fp in turns} == {fingerprint}

    report = collect_report(migrated_dsn, timedelta(hours=1))
    assert report.n_plus_one_source == "marked"  # read through the partial index spans_n_plus_one
    (loop,) = report.n_plus_one
    assert (loop.parent, loop.operation, loop.statement, loop.fingerprint) == ("call_tool", "get_file", GET_FILE,
                                                                               fingerprint)  # fmt: skip
    assert (loop.occurrences, loop.traces, loop.executions_p50, loop.executions_max) == (TURNS, TURNS, FILES, FILES)
    assert loop.marked and set(loop.example_trace_ids) <= {trace_id for trace_id, *_ in turns}
    assert loop.batched_statement == GET_FILE.replace("id = $1", "id = ANY($1)")
    text = render_text(report)
    assert "N+1: one statement run again and again under one parent (marked by the tail sampler)" in text
    assert f"get_file x{FILES} under call_tool" in text and "[marked in-process]" in text

    fixed_at = datetime.now(UTC)
    fixed = await _turns(migrated_dsn, tmp_path, batched=True, sampling=True)
    until = datetime.now(UTC)
    # The fix: the detector saw every turn (it votes on each decided trace) and found no loop.
    assert "n-plus-one/sampled" not in fixed["policy_votes"] and "n-plus-one" not in fixed["kept_by_policy"]
    assert fixed["policy_votes"]["n-plus-one/not_sampled"] == fixed["traces_seen"] >= TURNS
    after = collect_report(migrated_dsn, until - fixed_at, until=until)
    assert after.n_plus_one == ()
    with psycopg.connect(migrated_dsn) as conn:
        (marked,) = conn.execute(
            "SELECT count(*) FROM monitoring.spans WHERE attributes ? %s AND start_ts >= %s",
            (st.N_PLUS_ONE, fixed_at),
        ).fetchone() or (0,)
    assert marked == 0
    assert "N+1: none" in render_text(after)
