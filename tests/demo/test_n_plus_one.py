"""The demo's N+1, end to end: turns on seeded conversations read each attached file with its own query (the old
daemon's way); the spans go through the real sink; ``sieve slow-lookups`` finds the loop in the stored spans and
names the parent, the count and the one query that replaces it. With ``--fix-n-plus-one`` the loop is gone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pipeline.config import load_settings
from pipeline.demo.client import DemoClient
from pipeline.demo.provider import Provider
from pipeline.demo.run import demo_settings
from pipeline.demo.seed import seed
from pipeline.demo.service import DemoService
from pipeline.demo.store import ConversationRepository
from pipeline.root import setup
from pipeline.slowlookups import collect_report
from pipeline.slowlookups.render import render_text, to_dict

pytestmark = pytest.mark.postgres

FILES = 6
TURNS = 4
GET_FILE = "SELECT id, name, mime_type, size_bytes FROM public.files WHERE id = $1"


async def _turns(dsn: str, tmp_path: Path, *, batched: bool) -> None:
    settings = demo_settings(
        load_settings(
            environ={},
            database={"dsn": dsn},
            prometheus={"enabled": False},
            service={"port": 0, "db_connect_delay_s": 0, "batch_file_lookups": batched},
            provider={"latency_median_s": 0.002, "latency_sigma": 0.1, "chunks": 1, "failure_rate": 0.0},
            tracing={"schedule_delay_ms": 50},
            # Every trace is kept here: keeping N+1 traces under sampling is the tail sampler's detector (later).
            sampling={"enabled": False},
            sink={"enabled": True, "spool_dir": str(tmp_path / f"spool-{batched}"), "flush_interval_s": 0.1},
            logs={"enabled": False},
            storage={"explain": {"enabled": False}},
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
        await sieve.aclose()  # flushes the kept spans into the sink


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
