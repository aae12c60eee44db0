"""The WebSocket collector on a plain websockets.asyncio echo server (not the demo): automatic mode."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from collectors._envelope import BoundedLabel, read_envelope
from collectors.websocket import InstrumentedConnection, WebSocketInstrumentation


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def echo_url(spans: InMemorySpanExporter) -> AsyncIterator[str]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    ws = WebSocketInstrumentation(provider, envelope="json", max_message_bytes=1024)

    async def handler(conn: InstrumentedConnection) -> None:
        async for message in conn:
            body = json.loads(message) if conn.current and conn.current.body is not None else None
            if body and body.get("op") == "boom":
                raise RuntimeError("handler failed")
            await conn.send({"op": "echo", "data": body})

    async with serve(ws.handler(handler), "127.0.0.1", 0, **ws.serve_kwargs()) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_each_message_is_its_own_root_span_linked_to_the_handshake(
    echo_url: str, spans: InMemorySpanExporter
) -> None:
    async with connect(echo_url) as ws:
        for op in ("a", "b", "a"):
            await ws.send(json.dumps({"op": op}))
            assert json.loads(await ws.recv())["op"] == "echo"
    finished = spans.get_finished_spans()
    handshake = [s for s in finished if s.name == "websocket handshake"]
    messages = [s for s in finished if s.kind is SpanKind.SERVER and s.name != "websocket handshake"]
    assert len(handshake) == 1 and handshake[0].attributes["http.response.status_code"] == 101
    assert [s.name for s in messages] == ["a", "b", "a"]
    assert len({s.context.trace_id for s in messages}) == 3
    assert all(s.parent is None for s in messages)
    assert all(s.links[0].context.span_id == handshake[0].context.span_id for s in messages)


async def test_a_handler_exception_is_recorded_on_the_message_span(echo_url: str, spans: InMemorySpanExporter) -> None:
    async with connect(echo_url) as ws:
        await ws.send(json.dumps({"op": "boom"}))
        await ws.wait_closed()
        assert ws.close_code == 1011  # the server's handler failed
    boom = next(s for s in spans.get_finished_spans() if s.name == "boom")
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.attributes["error.type"] == "RuntimeError"
    assert any(e.name == "exception" for e in boom.events)


async def test_handshake_headers_carry_context_for_non_browser_clients(
    echo_url: str, spans: InMemorySpanExporter
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    async with connect(echo_url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"op": "a"}))
        await ws.recv()
    handshake = next(s for s in spans.get_finished_spans() if s.name == "websocket handshake")
    assert f"{handshake.context.trace_id:032x}" == trace_id


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("{", "not_json"),
        ("42", "not_object"),
        (b"\x00", "binary"),
        ("x" * 2000, "too_large"),
        ('{"op": ""}', "missing_op"),
        ('{"op": "ok"}', None),
    ],
)
def test_read_envelope_never_raises(data: str | bytes, error: str | None) -> None:
    env = read_envelope(data, max_bytes=1024, mode="json_strict")
    assert env.error == error
    # A service that has not declared its protocol JSON: the same messages are ordinary, never malformed.
    assert read_envelope(data, max_bytes=1024, mode="json").error is None
    assert read_envelope(data, max_bytes=1024, mode="none") == read_envelope(data, max_bytes=1, mode="none")


def test_only_declared_json_reads_ops_and_traceparents() -> None:
    text = json.dumps({"op": "hello", "traceparent": "00-abc"})
    assert read_envelope(text, max_bytes=1024, mode="json").op == "hello"
    assert read_envelope(text, max_bytes=1024, mode="json").traceparent == "00-abc"
    opaque = read_envelope(text, max_bytes=1024, mode="none")
    assert (opaque.op, opaque.traceparent, opaque.body, opaque.size) == (None, None, None, len(text))
    assert read_envelope("héllo\ud800", max_bytes=1024, mode="none").size == len(
        "héllo\ud800".encode("utf-8", "surrogatepass")
    )


async def test_websockets_own_echo_example_is_ordinary_traffic(spans: InMemorySpanExporter) -> None:
    """websockets' asyncio echo example, instrumented with the defaults: plain text is not an error."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    ws = WebSocketInstrumentation(provider)

    async def echo(websocket: InstrumentedConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    async with serve(ws.handler(echo), "127.0.0.1", 0, **ws.serve_kwargs()) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            for text in ("hello", "{not json", '{"op": "x"}'):
                await client.send(text)
                assert await client.recv() == text
            await client.send(b"\x00\x01")
            assert await client.recv() == b"\x00\x01"
    messages = [s for s in spans.get_finished_spans() if s.name != "websocket handshake"]
    assert [s.name for s in messages] == ["websocket.message"] * 4
    assert all(s.status.status_code is StatusCode.UNSET for s in messages)
    assert all("error.type" not in (s.attributes or {}) for s in messages)


def test_envelope_reads_traceparent_from_meta_and_truncates_values() -> None:
    env = read_envelope(
        json.dumps({"op": "x" * 500, "_meta": {"traceparent": "00-abc"}, "request_id": 7}), max_bytes=10_000
    )
    assert env.traceparent == "00-abc"
    assert env.op is not None and len(env.op) == 128
    assert env.request_id == "7"


def test_bounded_label_keeps_first_values_then_other() -> None:
    label = BoundedLabel(None, limit=2)
    assert [label(v) for v in ("a", "b", "c", "a", None)] == ["a", "b", "other", "a", "invalid"]
    fixed = BoundedLabel({"hello"})
    assert fixed("hello") == "hello" and fixed("x") == "other"
