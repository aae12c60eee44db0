"""WebSocket connections: the handshake span, connection and session gauges, lifetimes and close codes.

The close code recorded is the one of the side that closed first: ``connection.close_code`` is only what the
peer sent, so a connection the server (or the library, on invalid UTF-8 or an oversized frame) closed would
otherwise show 1006. The library's own rejections (1007, 1009) are counted as malformed input.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Counter, Meter
from opentelemetry.propagate import extract
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from collectors._envelope import BoundedLabel
from pipeline import metering
from pipeline.names import websocket as n

ABNORMAL_CLOSURE = 1006  # no close frame either way
_LIBRARY_CLOSES = {1007: "invalid_utf8", 1009: "too_large"}


@dataclass
class ConnectionState:
    """What the instrumentation knows of one connection."""

    id: str
    opened_at: float
    handshake: trace.SpanContext | None = None
    session_id: str | None = None
    session_counted: bool = False


def close_code(connection: Any) -> int:
    """The close code of the side that closed first (the server's when it initiated), 1006 when none was sent."""
    protocol = getattr(connection, "protocol", None)
    sent = getattr(protocol, "close_sent", None)
    received = getattr(protocol, "close_rcvd", None)
    if sent is not None and (received is None or not getattr(protocol, "close_rcvd_then_sent", False)):
        return int(sent.code)
    if received is not None:
        return int(received.code)
    return ABNORMAL_CLOSURE


class ConnectionTracker:
    """Connection lifecycle telemetry, keyed weakly by the library's connection object."""

    def __init__(
        self,
        tracer: trace.Tracer,
        meter: Meter,
        errors: Counter,
        internal_error: Callable[[str], None],
        on_first_connection: Callable[[], None] | None = None,
    ) -> None:
        self._tracer = tracer
        self._errors = errors
        self._internal_error = internal_error
        self._on_first = on_first_connection
        self._close_label = BoundedLabel(None, 32)
        self._states: weakref.WeakKeyDictionary[ServerConnection, ConnectionState] = weakref.WeakKeyDictionary()
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, tuple[Span, float]] = weakref.WeakKeyDictionary()
        self._connections = metering.up_down_counter(meter, n.CONNECTIONS_ACTIVE)
        self._sessions = metering.up_down_counter(meter, n.SESSIONS_ACTIVE)
        self._closes = metering.counter(meter, n.CLOSES)
        self._conn_duration = metering.histogram(meter, n.CONNECTION_DURATION)
        self._handshake_duration = metering.histogram(meter, n.HANDSHAKE_DURATION)

    def state(self, connection: ServerConnection) -> ConnectionState:
        state = self._states.get(connection)
        if state is None:
            state = ConnectionState(id=str(getattr(connection, "id", "")), opened_at=time.monotonic())
            self._states[connection] = state
        return state

    # -- the opening handshake -------------------------------------------------------------------------------

    def request(self, connection: ServerConnection, request: Request) -> None:
        """``process_request``: start the handshake span (headers may carry a traceparent)."""
        try:
            if self._on_first is not None:
                self._on_first()
            parent = extract(dict(request.headers.raw_items()))
            span = self._tracer.start_span(
                "websocket handshake",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": "GET",
                    "url.path": request.path.split("?", 1)[0][:256],
                    "network.protocol.name": "websocket",
                    "user_agent.original": (request.headers.get("User-Agent") or "")[:256],
                    n.CONNECTION_ID: str(connection.id),
                },
            )
            self._handshakes[connection] = (span, time.perf_counter())
        except Exception:
            self._internal_error("process_request")

    def response(self, connection: ServerConnection, response: Response) -> None:
        """``process_response``: end the handshake span with the response status."""
        try:
            started = self._handshakes.pop(connection, None)
            if started is None:
                return
            span, t0 = started
            span.set_attribute("http.response.status_code", response.status_code)
            error = None if response.status_code == 101 else str(response.status_code)
            if error:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute(n.ERROR_TYPE, error)
            span.end()
            self._handshake_duration.record(time.perf_counter() - t0, {n.ERROR_TYPE: error or ""})
            self.state(connection).handshake = span.get_span_context()
        except Exception:
            self._internal_error("process_response")

    # -- lifecycle -------------------------------------------------------------------------------------------

    def opened(self, connection: ServerConnection) -> ConnectionState:
        state = self.state(connection)
        try:
            self._connections.add(1)
        except Exception:
            self._internal_error("opened")
        return state

    def set_session(self, connection: ServerConnection, session_id: str) -> None:
        try:
            state = self.state(connection)
            state.session_id = session_id[:128]
            if not state.session_counted:
                state.session_counted = True
                self._sessions.add(1)
        except Exception:
            self._internal_error("set_session")

    def closed(self, connection: ServerConnection, state: ConnectionState) -> None:
        try:
            code = close_code(connection)
            label = self._close_label(str(code))
            self._connections.add(-1)
            if state.session_counted:
                self._sessions.add(-1)
            self._closes.add(1, {n.CLOSE_CODE: label})
            self._conn_duration.record(time.monotonic() - state.opened_at, {n.CLOSE_CODE: label})
            rejected = _LIBRARY_CLOSES.get(code)
            if rejected is not None:
                self._errors.add(1, {n.ERROR_TYPE: rejected})
        except Exception:
            self._internal_error("closed")
