"""A client for the demo protocol: what the load generator and the tests speak."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


@dataclass
class TurnResult:
    """What one ``call_tool`` turn came back with: its outcome, latency and the frames received."""

    request_id: str
    ok: bool
    latency_s: float
    chunks: int = 0
    error: dict[str, Any] | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)


class DemoClient:
    """One WebSocket client of the demo protocol: hello, turns and their streamed replies."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.session_id: str | None = None

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> DemoClient:
        # A short close timeout: a client stopping with the demo must not wait 10 s for a server that stops too.
        kwargs.setdefault("close_timeout", 1.0)
        return cls(await connect(url, max_size=None, **kwargs))

    async def close(self) -> None:
        await self.connection.close()

    async def send(self, payload: dict[str, Any] | str | bytes) -> None:
        await self.connection.send(json.dumps(payload) if isinstance(payload, dict) else payload)

    async def recv(self, timeout_s: float = 30.0) -> dict[str, Any]:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that races with
        # the frame's arrival, and the client then runs on after Ctrl-C.
        async with asyncio.timeout(timeout_s):
            raw = await self.connection.recv()
        data: dict[str, Any] = json.loads(raw)
        return data

    async def hello(self, token: str, session_id: str | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "hello", "token": token}
        if session_id:
            msg["session_id"] = session_id
        await self.send(msg)
        ack = await self.recv()
        if ack.get("ok"):
            self.session_id = ack.get("session_id")
        return ack

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        request_id: str | None = None,
        traceparent: str | None = None,
        timeout_s: float = 30.0,
    ) -> TurnResult:
        """Send one call_tool and read frames until its call_tool_res or error."""
        rid = request_id or uuid.uuid4().hex
        msg: dict[str, Any] = {"op": "call_tool", "name": name, "arguments": arguments, "request_id": rid}
        if traceparent:
            msg["traceparent"] = traceparent
        t0 = time.perf_counter()
        await self.send(msg)
        result = TurnResult(rid, ok=False, latency_s=0.0)
        while True:
            frame = await self.recv(timeout_s)
            result.frames.append(frame)
            if frame.get("request_id") not in (rid, None):
                continue
            op = frame.get("op")
            if op == "stream_chunk":
                result.chunks += 1
            elif op == "call_tool_res":
                result.ok = True
                break
            elif op in ("error", "cancelled"):
                result.error = frame.get("error") or {"code": op}
                break
        result.latency_s = time.perf_counter() - t0
        return result


def new_traceparent() -> tuple[str, str]:
    """A sampled W3C traceparent for a fresh trace; returns (traceparent, trace_id_hex)."""
    trace_id = uuid.uuid4().hex
    span_id = uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{span_id}-01", trace_id
