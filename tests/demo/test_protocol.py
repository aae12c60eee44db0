"""The demo service over a real WebSocket on loopback, with real Postgres: protocol, traces, resilience."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pipeline.demo.client import DemoClient, new_traceparent
from tests.demo.conftest import Running

pytestmark = pytest.mark.postgres


async def _client(demo: Running) -> DemoClient:
    client = await DemoClient.connect(demo.url)
    ack = await client.hello(demo.settings.service.token)
    assert ack["ok"] is True, ack
    return client


async def test_a_turn_is_one_trace_rooted_at_its_message(demo: Running) -> None:
    client = await _client(demo)
    result = await client.call_tool("chat", {"prompt": "hi there", "continuation_id": "c-1"})
    await client.close()
    assert result.ok, result.frames
    assert [f["op"] for f in result.frames][-2:] == ["stream_complete", "call_tool_res"]
    assert result.chunks == 3

    spans = demo.finished_spans()
    by_name = {s.name: s for s in spans}
    root = by_name["call_tool"]
    assert root.parent is None and root.kind is SpanKind.SERVER
    assert root.attributes["websocket.message.op"] == "call_tool"
    assert root.attributes["websocket.message.request_id"] == result.request_id
    assert root.attributes["session.id"] == client.session_id
    assert root.attributes["websocket.message.size"] > 0
    # The message span is linked to the handshake span, never parented to a connection-long span.
    handshake = by_name["websocket handshake"]
    assert [link.context.span_id for link in root.links] == [handshake.context.span_id]
    assert handshake.end_time < root.start_time

    trace_spans = [s for s in spans if s.context.trace_id == root.context.trace_id]
    children = {s.name for s in trace_spans if s.parent and s.parent.span_id == root.context.span_id}
    assert {
        "get_conversation_by_continuation_id",
        "get_conversation_messages",
        "chat sim-1",
        "save_messages",
    } <= children
    # Each repository call is one CLIENT span: the drivers' statement spans would repeat it.
    lookup = by_name["get_conversation_messages"]
    assert not [s for s in trace_spans if s.parent and s.parent.span_id == lookup.context.span_id]
    assert lookup.kind is SpanKind.CLIENT and lookup.attributes["sieve.db.statements"] == 1
    assert lookup.attributes["db.operation.name"] == "get_conversation_messages"
    for key in ("sieve.db.pool_wait_s", "sieve.db.connect_s", "sieve.db.execute_s"):
        assert lookup.attributes[key] >= 0
    save = by_name["save_messages"]
    assert save.attributes["sieve.db.driver"] == "psycopg"
    assert save.attributes["sieve.db.statements"] == 2 and save.attributes["sieve.db.repeats"] == 2
    # Statement parameters are never captured by default.
    assert not any("db.statement.parameters" in (s.attributes or {}) for s in spans)


async def test_a_client_traceparent_is_continued(demo: Running) -> None:
    client = await _client(demo)
    traceparent, trace_id = new_traceparent()
    result = await client.call_tool("chat", {"prompt": "x"}, traceparent=traceparent)
    await client.close()
    assert result.ok
    root = next(s for s in demo.finished_spans() if s.name == "call_tool")
    assert f"{root.context.trace_id:032x}" == trace_id
    assert f"{root.parent.span_id:016x}" == traceparent.split("-")[2]
    assert root.parent.is_remote


async def test_a_garbage_traceparent_starts_a_new_trace(demo: Running) -> None:
    client = await _client(demo)
    result = await client.call_tool("chat", {"prompt": "x"}, traceparent="00-nothex-zz-01")
    await client.close()
    assert result.ok
    root = next(s for s in demo.finished_spans() if s.name == "call_tool")
    assert root.parent is None


async def test_provider_failure_is_an_error_trace_and_an_error_op(demo: Running) -> None:
    demo.provider.failure_rate = 1.0
    client = await _client(demo)
    result = await client.call_tool("chat", {"prompt": "x"})
    await client.close()
    assert not result.ok and result.error["code"] == "provider_error"
    spans = demo.finished_spans()
    root = next(s for s in spans if s.name == "call_tool")
    provider = next(s for s in spans if s.name == "chat sim-1")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["error.type"] == "provider_error"
    assert provider.status.status_code is StatusCode.ERROR
    assert provider.parent.span_id == root.context.span_id
    assert any(e.name == "exception" for e in provider.events)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("not json at all", "not_json"),
        (b"\x00\x01binary", "binary"),
        ("[1, 2, 3]", "not_object"),
        (json.dumps({"no_op": True}), "missing_op"),
        (json.dumps({"op": "call_tool", "pad": "x" * 8000}), "too_large"),
    ],
)
async def test_malformed_messages_are_counted_and_the_service_keeps_serving(
    demo: Running, payload: str | bytes, expected: str
) -> None:
    client = await _client(demo)
    await client.send(payload)
    reply = await client.recv()
    assert reply["op"] == "error"
    assert reply["error"]["code"] in ("bad_message", "unknown_op")
    # Same connection, still serving.
    await client.send({"op": "ping"})
    assert (await client.recv())["op"] == "pong"
    await client.close()
    bad = [s for s in demo.finished_spans() if s.attributes.get("error.type") == expected]
    assert bad and bad[0].name == "invalid"
    assert bad[0].status.status_code is StatusCode.ERROR


async def test_invalid_utf8_closes_only_that_connection(demo: Running) -> None:
    bad = await DemoClient.connect(demo.url)
    await bad.hello(demo.settings.service.token)
    # A text frame whose payload is not UTF-8: the protocol requires closing with 1007.
    from websockets.frames import Frame, Opcode

    bad.connection.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe\xfd"))
    bad.connection.send_data()  # type: ignore[attr-defined]
    with pytest.raises(ConnectionClosed) as closed:
        await bad.recv(timeout_s=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    good = await _client(demo)
    result = await good.call_tool("status", {})
    assert result.ok
    await good.close()


async def test_unknown_op_names_do_not_become_span_names(demo: Running) -> None:
    client = await _client(demo)
    for i in range(3):
        await client.send({"op": f"made_up_{i}"})
        assert (await client.recv())["error"]["code"] == "unknown_op"
    await client.close()
    names = {s.name for s in demo.finished_spans()}
    assert not any(name.startswith("made_up") for name in names)
    other = [s for s in demo.finished_spans() if s.name == "other"]
    assert len(other) == 3 and other[0].attributes["websocket.message.op_raw"] == "made_up_0"


async def test_list_tools_ping_and_cancel(demo: Running) -> None:
    client = await _client(demo)
    await client.send({"op": "list_tools"})
    tools = await client.recv()
    assert tools["op"] == "list_tools_res" and {"chat", "analyze", "status"} <= {t["name"] for t in tools["tools"]}
    demo.provider._settings = demo.provider._settings.model_copy(update={"latency_median_s": 2.0})
    await client.send({"op": "call_tool", "name": "chat", "arguments": {"prompt": "slow"}, "request_id": "r-9"})
    await client.send({"op": "ping"})
    frames = []
    while True:
        frame = await client.recv()
        frames.append(frame["op"])
        if frame["op"] == "pong":
            break
    await client.send({"op": "cancel", "request_id": "r-9"})
    while (frame := await client.recv())["op"] != "cancelled":
        pass
    assert frame["request_id"] == "r-9"
    await client.close()


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ("{not json", 4000),
        (json.dumps({"op": "ping"}), 4001),
        (json.dumps({"op": "hello", "token": "wrong"}), 4003),
    ],
)
async def test_close_codes_for_a_bad_first_message(demo: Running, first: str, code: int) -> None:
    async with connect(demo.url) as ws:
        await ws.send(first)
        with pytest.raises(ConnectionClosed):  # noqa: PT012 - reading until the server closes is what is tested
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == code


async def test_hello_timeout_closes_with_4002(demo: Running) -> None:
    async with connect(demo.url) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4002


async def test_session_id_from_the_client_is_kept_when_valid(demo: Running) -> None:
    client = await DemoClient.connect(demo.url)
    assert (await client.hello(demo.settings.service.token, "my-session_01"))["session_id"] == "my-session_01"
    await client.close()
    client = await DemoClient.connect(demo.url)
    assert (await client.hello(demo.settings.service.token, "bad id!"))["session_id"] != "bad id!"
    await client.close()
