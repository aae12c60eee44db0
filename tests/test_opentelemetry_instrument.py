"""The OpenTelemetry way: an app that knows nothing of Sieve, run under ``opentelemetry-instrument``.

The example service (``examples/echo_store.py``: websockets + asyncpg) runs in its own process with a real
WebSocket client on loopback and a real Postgres; what it exports is read back from the kept-spans file and its
``/metrics`` endpoint. SIGTERM stops it the way an orchestrator would, and the last traces still arrive.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.postgres


def test_entry_points_are_discoverable() -> None:
    def names(group: str) -> dict[str, str]:
        return {ep.name: ep.value for ep in entry_points(group=group)}

    assert names("opentelemetry_distro")["sieve"] == "pipeline.distro:SieveDistro"
    assert names("opentelemetry_configurator")["sieve"] == "pipeline.distro:SieveConfigurator"
    instrumentors = names("opentelemetry_instrumentor")
    assert instrumentors["websockets"] == "collectors.instrumentors:WebSocketsInstrumentor"
    assert instrumentors["sieve_storage"] == "collectors.instrumentors:StorageInstrumentor"
    for group in ("opentelemetry_distro", "opentelemetry_configurator", "opentelemetry_instrumentor"):
        for ep in entry_points(group=group):
            if ep.value.startswith(("pipeline.", "collectors.")):
                assert ep.load() is not None


def _sample(exposition: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def instrumented_app(fresh_dsn: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, str, Path]]:
    metrics_port = _free_port()
    spans_file = tmp_path / "spans.jsonl"
    env = {
        **os.environ,
        "APP_DSN": fresh_dsn,
        "APP_PORT": "0",
        "OTEL_SERVICE_NAME": "echo-store",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
        "SIEVE_TRACING__SPANS_FILE": str(spans_file),
        "SIEVE_TRACING__SCHEDULE_DELAY_MS": "100",
        "SIEVE_SINK__ENABLED": "false",
        "SIEVE_SINK__SPOOL_DIR": str(tmp_path / "spool"),
        "SIEVE_SAMPLING__EXTENSIONS": "false",
        "SIEVE_TEST_PG_DSN": "not a setting",  # a foreign SIEVE_* name never breaks a start
    }
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    proc = subprocess.Popen(
        [str(instrument), sys.executable, str(ROOT / "examples" / "echo_store.py")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (ws://\S+)", line)
        assert match, f"the app did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        yield proc, match.group(1), f"http://127.0.0.1:{metrics_port}", spans_file
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _get(url: str) -> bytes:
    """One GET from the instrumented app's HTTP server (run off the test's event loop)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


async def test_an_app_that_knows_nothing_of_sieve_runs_the_pipeline(
    instrumented_app: tuple[subprocess.Popen[str], str, str, Path],
) -> None:
    proc, url, metrics_url, spans_file = instrumented_app
    async with connect(url) as ws:
        for i in range(30):
            await ws.send(f"hello {i}")
            assert json.loads(await ws.recv())["echo"] == f"hello {i}"
    # The handler's bug closes the connection with 1011: connect, send, receive is the one statement under test.
    with pytest.raises(ConnectionClosedError):  # noqa: PT012
        async with connect(url) as ws:
            await ws.send("fail")
            await ws.recv()

    exposition = (await asyncio.to_thread(_get, f"{metrics_url}/metrics")).decode()
    received = "websocket_server_messages_received_total"
    assert _sample(exposition, received, error_type="", websocket_message_op="message") == 30
    assert _sample(exposition, received, error_type="RuntimeError", websocket_message_op="message") == 1
    assert _sample(exposition, "sieve_span_duration_seconds_count", span_name="websocket.message") == 31
    assert json.loads(await asyncio.to_thread(_get, f"{metrics_url}/readyz"))["status"] == "ready"

    proc.send_signal(signal.SIGTERM)  # as `docker stop` does: the pipeline flushes what it holds
    assert proc.wait(timeout=30) in (0, 1, -signal.SIGTERM, 128 + signal.SIGTERM, 130)

    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert spans, "no kept span reached the spans file"
    assert {s["resource"]["attributes"]["service.name"] for s in spans} == {"echo-store"}
    failed = [s for s in spans if s["name"] == "websocket.message" and s["status"]["status_code"] == "ERROR"]
    assert len(failed) == 1 and failed[0]["attributes"]["sieve.sampling.reason"] == "errors"
    by_trace: dict[str, list[dict[str, object]]] = {}
    for s in spans:
        by_trace.setdefault(s["context"]["trace_id"], []).append(s)
    kept_turns = [t for t in by_trace.values() if any(s["name"] == "websocket.message" for s in t)]
    # An ordinary message: its span never says "malformed", and its statements carry fingerprints.
    for trace in kept_turns:
        message = next(s for s in trace if s["name"] == "websocket.message")
        assert message["attributes"].get("error.type") in (None, "RuntimeError")
        for statement in (s for s in trace if s["kind"] == "SpanKind.CLIENT"):
            assert re.fullmatch(r"[0-9a-f]{16}", statement["attributes"]["sieve.db.fingerprint"])
    assert any(s["kind"] == "SpanKind.CLIENT" for t in kept_turns for s in t) or len(kept_turns) == 1
