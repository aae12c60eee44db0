"""/metrics fetched over HTTP and parsed with prometheus_client's parser; /healthz and /readyz."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.demo.client import DemoClient
from pipeline.names import BY_NAME
from pipeline.names import storage as db
from pipeline.names import websocket as ws
from tests.demo.conftest import Running

pytestmark = pytest.mark.postgres


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _scrape(demo: Running) -> dict[str, list]:  # type: ignore[type-arg]
    assert demo.telemetry.metrics_url
    status, text = await asyncio.to_thread(_get, demo.telemetry.metrics_url)
    assert status == 200
    samples: dict[str, list] = {}  # type: ignore[type-arg]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


async def test_websocket_and_storage_metrics_are_exposed_with_their_labels(demo: Running) -> None:
    client = await DemoClient.connect(demo.url)
    await client.hello(demo.settings.service.token)
    for _ in range(2):
        assert (await client.call_tool("chat", {"prompt": "x", "continuation_id": "m-1"})).ok
    await client.send("garbage")
    await client.recv()

    live = await _scrape(demo)
    active = live[ws.CONNECTIONS_ACTIVE.prometheus_name]
    assert [s.value for s in active] == [1.0]
    assert [s.value for s in live[ws.SESSIONS_ACTIVE.prometheus_name]] == [1.0]
    await client.close()
    await asyncio.sleep(0.1)

    samples = await _scrape(demo)
    received = {
        (s.labels["websocket_message_op"], s.labels["error_type"]): s.value
        for s in samples[ws.MESSAGES_RECEIVED.prometheus_name]
    }
    assert received[("call_tool", "")] == 2
    assert received[("hello", "")] == 1
    assert received[("invalid", "not_json")] == 1
    sent = {s.labels["websocket_message_op"]: s.value for s in samples[ws.MESSAGES_SENT.prometheus_name]}
    assert sent["stream_chunk"] == 6 and sent["call_tool_res"] == 2 and sent["hello_ack"] == 1
    errors = {s.labels["error_type"]: s.value for s in samples[ws.ERRORS.prometheus_name]}
    assert errors["not_json"] == 1
    assert [s.value for s in samples[ws.CONNECTIONS_ACTIVE.prometheus_name]] == [0.0]
    closes = {s.labels["websocket_close_code"]: s.value for s in samples[ws.CLOSES.prometheus_name]}
    assert closes == {"1000": 1.0}
    duration_count = {
        s.labels["websocket_message_op"]: s.value
        for s in samples[ws.MESSAGE_DURATION.prometheus_name + "_count"]
        if s.labels["error_type"] == ""
    }
    assert duration_count["call_tool"] == 2

    ops = {s.labels["db_operation_name"]: s.value for s in samples[db.OPERATION_DURATION.prometheus_name + "_count"]}
    assert ops["get_conversation_by_continuation_id"] == 2
    assert ops["get_conversation_messages"] == 2
    assert ops["save_messages"] == 2
    # Durations are in seconds with buckets that resolve milliseconds (not the SDK's 0, 5, 10, ... defaults).
    buckets = [float(s.labels["le"]) for s in samples[db.OPERATION_DURATION.prometheus_name + "_bucket"]]
    assert 0.001 in buckets and 0.05 in buckets
    waits = {s.labels["db_client_connection_pool_name"] for s in samples[db.CONNECTION_WAIT.prometheus_name + "_count"]}
    assert waits == {"asyncpg", "psycopg"}
    states = {
        (s.labels["db_client_connection_pool_name"], s.labels["db_client_connection_state"])
        for s in samples[db.CONNECTION_COUNT.prometheus_name]
    }
    assert ("asyncpg", "idle") in states and ("psycopg", "used") in states


async def test_every_sieve_metric_in_the_exposition_is_in_the_names_table(demo: Running) -> None:
    client = await DemoClient.connect(demo.url)
    await client.hello(demo.settings.service.token)
    await client.call_tool("chat", {"prompt": "x"})
    await client.close()
    await asyncio.sleep(0.1)
    samples = await _scrape(demo)
    exposed = {name for name in samples if name.startswith(("websocket_", "db_client_"))}
    known = {spec.prometheus_name for spec in BY_NAME.values()}
    suffixes = ("_bucket", "_count", "_sum", "_created")
    bases = {next((n[: -len(x)] for x in suffixes if n.endswith(x) and n[: -len(x)] in known), n) for n in exposed}
    assert bases <= known, bases - known


async def test_healthz_and_readyz(demo: Running) -> None:
    base = demo.telemetry.metrics_url.removesuffix("/metrics")  # type: ignore[union-attr]
    status, body = await asyncio.to_thread(_get, base + "/healthz")
    assert status == 200 and json.loads(body)["status"] == "alive"
    status, body = await asyncio.to_thread(_get, base + "/readyz")
    report = json.loads(body)
    assert status == 200 and report["status"] == "ready"
    assert report["components"]["prometheus"]["ready"] is True

    from pipeline.health import ComponentState

    demo.telemetry.readiness.register("database", lambda: ComponentState(False, {"error": "connection refused"}))
    status, body = await asyncio.to_thread(_get, base + "/readyz")
    assert status == 503
    assert json.loads(body)["components"]["database"] == {"ready": False, "error": "connection refused"}
    status, _ = await asyncio.to_thread(_get, base + "/nope")
    assert status == 404
