"""Exemplars that always resolve, against the real Prometheus (the Debian binary, 2.42 here) with exemplar storage.

The demo service runs in-process behind the default tail-sampling policies (most fast, successful turns dropped),
with the Postgres sink on; a share of the provider calls fail, so error counters move too. Prometheus scrapes
``/metrics`` every second (it asks for OpenMetrics, the format that carries exemplars). Then
``/api/v1/query_exemplars`` must return exemplars on the latency histograms and the error counters, and every
exemplar's trace must be in the sink's ``monitoring.spans``: zero dangling, although the sampler dropped traces.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline.config import load_settings
from pipeline.demo.client import DemoClient
from pipeline.demo.provider import Provider
from pipeline.demo.run import demo_settings
from pipeline.demo.service import DemoService
from pipeline.demo.store import ConversationRepository
from pipeline.names import sampling as sm
from pipeline.names import storage as st
from pipeline.names import websocket as ws
from pipeline.root import setup
from tests.stack.test_prometheus_scrape import _http, _prometheus

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HISTOGRAMS = [
    f"{spec.prometheus_name}_bucket" for spec in (sm.SPAN_DURATION, ws.MESSAGE_DURATION, st.OPERATION_DURATION)
]
COUNTERS = [sm.SPAN_ERRORS.prometheus_name, ws.MESSAGES_RECEIVED.prometheus_name]
WANTED = 30  # exemplars before the check


def _exemplars(url: str, metric: str, start: float) -> list[dict[str, Any]]:
    query = {"query": f'{{__name__="{metric}"}}', "start": f"{start:.3f}", "end": f"{time.time() + 5:.3f}"}
    status, body = _http(f"{url}/api/v1/query_exemplars?{urllib.parse.urlencode(query)}")
    assert status == 200, body
    return [e for series in json.loads(body)["data"] for e in series["exemplars"]]


async def _load(url: str, token: str, stop: asyncio.Event) -> None:
    async def client(n: int) -> None:
        conn = await DemoClient.connect(url)
        try:
            await conn.hello(token)
            turn = 0
            while not stop.is_set():
                await conn.call_tool("chat", {"prompt": f"turn {turn}", "continuation_id": f"exemplars-{n}"})
                turn += 1
                await asyncio.sleep(0.01)
        finally:
            await conn.close()

    await asyncio.gather(*(client(n) for n in range(3)))


async def test_every_exemplar_names_a_trace_the_sampler_kept(migrated_dsn: str, tmp_path: Path) -> None:
    settings = demo_settings(
        load_settings(
            environ={},
            database={"dsn": migrated_dsn},
            prometheus={"port": 0},
            service={"port": 0, "progress_interval_s": 0.05, "db_connect_delay_s": 0},
            # A fifth of the turns fail upstream: error spans, error counters, traces kept by the errors policy.
            provider={"latency_median_s": 0.005, "latency_sigma": 0.1, "chunks": 2, "failure_rate": 0.2},
            tracing={"schedule_delay_ms": 50},
            sampling={"enabled": True, "extensions": False},
            sink={"enabled": True, "spool_dir": str(tmp_path / "spool"), "flush_interval_s": 0.2},
            logs={"enabled": False},
            storage={"explain": {"enabled": False}},
        )
    )
    kept = InMemorySpanExporter()  # what the sampler forwards, beside the sink
    sieve = setup(settings, install_globals=False, span_exporters=[kept])
    store = await ConversationRepository.open(migrated_dsn, sieve.storage, settings.service)
    provider = Provider(settings.provider, sieve.tracer_provider, random.Random(3))
    service = await DemoService(settings.service, store, provider, sieve.websocket).start()
    telemetry = sieve.telemetry
    assert telemetry is not None and telemetry.metrics_url and telemetry.sampler is not None
    stop = asyncio.Event()
    load = asyncio.create_task(_load(service.url, settings.service.token, stop))
    started = time.time() - 5
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        with _prometheus(tmp_path, urllib.parse.urlsplit(telemetry.metrics_url).netloc) as prometheus:
            deadline = time.monotonic() + 40
            while True:
                await asyncio.sleep(1.0)
                found = {
                    m: await asyncio.to_thread(_exemplars, prometheus.url, m, started) for m in HISTOGRAMS + COUNTERS
                }
                enough = sum(len(v) for v in found.values()) >= WANTED and all(found[m] for m in COUNTERS)
                if enough or time.monotonic() > deadline:
                    break
            stop.set()
            await asyncio.wait_for(load, timeout=10)
            sieve.force_flush()  # decide what is held, push kept spans into the sink
            await asyncio.sleep(2.0)  # a last scrape or two
            found = {m: await asyncio.to_thread(_exemplars, prometheus.url, m, started) for m in HISTOGRAMS + COUNTERS}
        stats = telemetry.sampler.stats()
        sieve.force_flush()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(load, timeout=10)
        await service.stop()
        await store.close()
        await sieve.aclose()

    exemplars = [e for v in found.values() for e in v]
    counts = {m: len(v) for m, v in found.items()}
    print(f"exemplars per metric: {counts}; sampler: {stats['traces_seen']} traces seen, {stats['traces_kept']} kept")
    assert len(exemplars) >= WANTED, counts
    assert all(counts[m] for m in HISTOGRAMS + COUNTERS), counts
    assert stats["traces_dropped"] > 0  # the sampler did drop traces: a pre-sampling pick could have dangled
    for e in exemplars:
        assert set(e["labels"]) == {"trace_id", "span_id"}
        assert len(e["labels"]["trace_id"]) == 32 and len(e["labels"]["span_id"]) == 16
    traces = {e["labels"]["trace_id"] for e in exemplars}
    with psycopg.connect(migrated_dsn) as conn:
        stored = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT trace_id FROM monitoring.spans WHERE trace_id = ANY(%s)", (sorted(traces),)
            )
        }
        spans = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT trace_id, span_id FROM monitoring.spans WHERE trace_id = ANY(%s)", (sorted(traces),)
            )
        }
    dangling = traces - stored
    assert dangling == set(), f"{len(dangling)} of {len(traces)} exemplar traces are not in the sink"
    # Each exemplar names the very span that was measured, and the sink has it.
    assert {(e["labels"]["trace_id"], e["labels"]["span_id"]) for e in exemplars} <= spans
    kept_traces = {format(s.context.trace_id, "032x") for s in kept.get_finished_spans()}
    assert traces <= kept_traces
