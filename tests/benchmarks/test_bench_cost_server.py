"""Each of the cost benchmark's server variants, started as the benchmark starts it (its own process), answers
turns and exports what its variant promises: (a) nothing, (b) every span, (c) the spans Sieve keeps.

This is the guard on ``build_sieve_server``: if the composition root changes under it, (c) must fail here
rather than export nothing in the benchmark and look cheap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.bench_cost import REPO, overrides
from bench.cost_report import VARIANTS
from pipeline.config import load_settings
from pipeline.demo.client import DemoClient
from pipeline.demo.seed import seed

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OK_TURNS = 3


async def _turns(url: str, token: str) -> None:
    client = await DemoClient.connect(url)
    try:
        assert (await client.hello(token)).get("ok")
        for i in range(OK_TURNS):
            turn = await client.call_tool("chat", {"prompt": f"turn {i}", "continuation_id": "seed-1"})
            assert turn.ok, turn.error
        bad = await client.call_tool("no_such_tool", {})  # an error trace: Sieve keeps every one
        assert not bad.ok
    finally:
        await client.close()


@pytest.mark.parametrize("variant", VARIANTS)
async def test_server_variant_serves_and_exports(variant: str, migrated_dsn: str, tmp_path: Path) -> None:
    base = overrides(migrated_dsn, tmp_path)
    settings = load_settings(environ={}, **base)
    seed(migrated_dsn, settings.demo)
    # Popen returns at once; the test then blocks on the server's pipes, which run in a process of their own.
    server = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "bench.cost_server", "--variant", variant, "--settings", json.dumps(base)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        line = server.stdout.readline()
        assert line, server.stderr.read() if server.stderr else ""
        ready = json.loads(line)
        assert ready["pid"] == server.pid
        assert (ready["metrics_url"] is None) == (variant == "none")
        await _turns(ready["url"], settings.service.token)
        server.stdin.close()
        stats: dict[str, Any] = json.loads(server.stdout.readline())
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    turns = OK_TURNS + 1
    if variant == "none":
        assert stats["spans_exported"] == 0
    elif variant == "otel":
        # Per ok turn at least: the message span, two asyncpg and two psycopg statements, the provider call.
        assert stats["spans_exported"] >= 6 * OK_TURNS + 1
    else:
        sampler = stats["sampler"]
        assert sampler["traces_seen"] >= turns
        assert stats["spans_exported"] >= 1  # the error trace at least went through the kept path's encoder
        assert stats["spans_exported"] < sampler["spans_seen"] or sampler["traces_kept"] == sampler["traces_seen"]
