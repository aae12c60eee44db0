"""Instrumentation for servers on the ``websockets.asyncio`` API.

The trace model (see shared/reference/python-otel.md section 1): a short SERVER span for the opening
handshake, then **one root span per inbound message**, named by its op and linked to the handshake span. A
message that carries a W3C ``traceparent`` in its envelope (or in ``_meta``) continues that trace instead:
browsers cannot set handshake headers, so context travels in the message. There is never a
connection-long span, which a tail sampler would have to hold for the connection's whole life.

Two ways to use it with any ``websockets.asyncio`` server::

    ws = WebSocketInstrumentation(tracer_provider, meter_provider, ops={"hello", "call_tool"})

    # 1. automatic: each recv() ends the previous message's span and starts the next one
    async def handler(conn: InstrumentedConnection) -> None:
        async for message in conn:
            await conn.send(reply(message))
    async with serve(ws.handler(handler), host, port, **ws.serve_kwargs()): ...

    # 2. explicit: the span covers exactly the block (use it to process messages in tasks)
    async with ws.message(connection, raw) as msg:
        ...  # msg.body, msg.op, msg.error

Instrumentation never raises into the handler: its own failures are counted under ``error.type=
"instrumentation"`` and logged at debug level. Exceptions raised *by the handler* are recorded on the message
span and re-raised unchanged.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.propagate import extract
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.http11 import Request, Response

from collectors._envelope import BoundedLabel, Envelope, read_envelope
from pipeline.names import DURATION_BUCKETS_S, SIZE_BUCKETS_BY
from pipeline.names import websocket as n

log = logging.getLogger(__name__)
_SCOPE = "sieve.collectors.websocket"
_W3C = TraceContextTextMapPropagator()
Handler = Callable[[ServerConnection], Awaitable[None]]


@dataclass
class _ConnState:
    id: str
    opened_at: float
    handshake: trace.SpanContext | None = None
    session_id: str | None = None
    session_counted: bool = False


@dataclass
class Message:
    """One inbound message, as the instrumentation parsed it."""

    data: str | bytes
    envelope: Envelope
    op: str  # bounded: a known op, "other", or "invalid"
    span: Span
    _error_type: str | None = field(default=None, repr=False)

    @property
    def body(self) -> dict[str, Any] | None:
        return self.envelope.body

    @property
    def error(self) -> str | None:
        """Why the envelope is malformed (``not_json``, ``binary``, ``too_large``, ...), or None."""
        return self.envelope.error

    def fail(self, error_type: str, description: str | None = None) -> None:
        """Mark the message as failed without an exception (e.g. the reply was an ``error`` op).

        A malformed envelope keeps its own, more precise ``error.type`` (``not_json``, ``missing_op``, ...).
        """
        self.span.set_status(Status(StatusCode.ERROR, description))
        if self.envelope.error is None:
            self._error_type = error_type
            self.span.set_attribute(n.ERROR_TYPE, error_type)


class WebSocketInstrumentation:
    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        ops: Iterable[str] | None = None,
        send_ops: Iterable[str] | None = None,
        max_ops: int = 64,
        max_message_bytes: int = 1 << 20,
        op_field: str = "op",
        traceparent_field: str = "traceparent",
        allow_binary: bool = False,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = get_meter(_SCOPE, meter_provider=meter_provider)
        # Inbound ops come from peers (untrusted); outbound ops from the application. Both stay bounded.
        self._op_label = BoundedLabel(ops, max_ops)
        self._send_op_label = BoundedLabel(send_ops, max_ops)
        self._close_label = BoundedLabel(None, 32)
        self._max_bytes = max_message_bytes
        self._op_field = op_field
        self._traceparent_field = traceparent_field
        self._allow_binary = allow_binary
        self._conns: weakref.WeakKeyDictionary[ServerConnection, _ConnState] = weakref.WeakKeyDictionary()
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, tuple[Span, float]] = weakref.WeakKeyDictionary()

        def hist(spec: Any, buckets: tuple[float, ...]) -> Any:
            return meter.create_histogram(
                spec.name, spec.unit, spec.description, explicit_bucket_boundaries_advisory=list(buckets)
            )

        self._connections = meter.create_up_down_counter(
            n.CONNECTIONS_ACTIVE.name, n.CONNECTIONS_ACTIVE.unit, n.CONNECTIONS_ACTIVE.description
        )
        self._sessions = meter.create_up_down_counter(
            n.SESSIONS_ACTIVE.name, n.SESSIONS_ACTIVE.unit, n.SESSIONS_ACTIVE.description
        )
        self._received = meter.create_counter(
            n.MESSAGES_RECEIVED.name, n.MESSAGES_RECEIVED.unit, n.MESSAGES_RECEIVED.description
        )
        self._sent = meter.create_counter(n.MESSAGES_SENT.name, n.MESSAGES_SENT.unit, n.MESSAGES_SENT.description)
        self._closes = meter.create_counter(n.CLOSES.name, n.CLOSES.unit, n.CLOSES.description)
        self._errors = meter.create_counter(n.ERRORS.name, n.ERRORS.unit, n.ERRORS.description)
        self._size = hist(n.MESSAGE_SIZE_HIST, SIZE_BUCKETS_BY)
        self._duration = hist(n.MESSAGE_DURATION, DURATION_BUCKETS_S)
        self._send_duration = hist(n.SEND_DURATION, DURATION_BUCKETS_S)
        self._conn_duration = hist(n.CONNECTION_DURATION, (1, 5, 15, 60, 300, 900, 3600, 14400))
        self._handshake_duration = hist(n.HANDSHAKE_DURATION, DURATION_BUCKETS_S)

    # -- the opening handshake -------------------------------------------------------------------------

    def process_request(self, connection: ServerConnection, request: Request) -> None:
        """``serve(process_request=...)`` hook: starts the handshake span (headers may carry traceparent)."""
        try:
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

    def process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        """``serve(process_response=...)`` hook: ends the handshake span with the response status."""
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
            self._state(connection).handshake = span.get_span_context()
        except Exception:
            self._internal_error("process_response")

    def serve_kwargs(
        self,
        process_request: Callable[..., Any] | None = None,
        process_response: Callable[..., Any] | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for ``serve()``, chaining the application's own hooks after Sieve's."""

        async def request_hook(connection: ServerConnection, request: Request) -> Response | None:
            self.process_request(connection, request)
            if process_request is None:
                return None
            result = process_request(connection, request)
            return await result if isinstance(result, Awaitable) else result

        async def response_hook(connection: ServerConnection, request: Request, response: Response) -> Response | None:
            result: Any = None
            if process_response is not None:
                result = process_response(connection, request, response)
                result = await result if isinstance(result, Awaitable) else result
            self.process_response(connection, request, result or response)
            return result

        return {"process_request": request_hook, "process_response": response_hook}

    # -- connection lifecycle --------------------------------------------------------------------------

    def handler(self, fn: Callable[[InstrumentedConnection], Awaitable[None]]) -> Handler:
        """Wrap a connection handler: connection metrics, and per-message spans through the proxy."""

        async def wrapped(connection: ServerConnection) -> None:
            conn = InstrumentedConnection(self, connection)
            async with self.connection(connection):
                try:
                    await fn(conn)
                except BaseException as exc:
                    conn._end_current(exc)
                    raise
                conn._end_current(None)

        return wrapped

    @asynccontextmanager
    async def connection(self, connection: ServerConnection) -> AsyncIterator[None]:
        """Connection-level metrics for a handler that manages its own messages (explicit mode)."""
        state = self._state(connection)
        self._safe(self._connections.add, 1)
        code = 1000
        try:
            yield
        except BaseException:
            code = 1011  # what the library sends when a handler fails
            raise
        finally:
            if connection.close_code is None:
                # The server would close right after the handler returns; do it here (with the same code) so
                # the close code is known when the connection's metrics are recorded.
                with suppress(Exception):
                    await connection.close(code)
            self._connection_ended(connection, state)

    def set_session(self, connection: ServerConnection, session_id: str) -> None:
        """Record the session a connection belongs to (after ``hello``): a span attribute, a gauge."""
        try:
            state = self._state(connection)
            state.session_id = session_id[:128]
            if not state.session_counted:
                state.session_counted = True
                self._sessions.add(1)
        except Exception:
            self._internal_error("set_session")

    def _connection_ended(self, connection: ServerConnection, state: _ConnState) -> None:
        try:
            code = connection.close_code
            label = self._close_label(str(code) if code is not None else "none")
            self._connections.add(-1)
            if state.session_counted:
                self._sessions.add(-1)
            self._closes.add(1, {n.CLOSE_CODE: label})
            self._conn_duration.record(time.monotonic() - state.opened_at, {n.CLOSE_CODE: label})
            # The library itself closes on invalid UTF-8 (1007) and oversized frames (1009): count them.
            if code in (1007, 1009):
                self._errors.add(1, {n.ERROR_TYPE: "invalid_utf8" if code == 1007 else "too_large"})
        except Exception:
            self._internal_error("connection_ended")

    # -- messages --------------------------------------------------------------------------------------

    @asynccontextmanager
    async def message(self, connection: ServerConnection, data: str | bytes) -> AsyncIterator[Message]:
        """A root span around the processing of one inbound message (explicit mode)."""
        async with self.scope(self.start_message(connection, data)) as msg:
            yield msg

    def start_message(self, connection: ServerConnection, data: str | bytes) -> Message:
        """Start the span of one inbound message without making it current (hand it to a task with scope())."""
        return self._start_message(connection, data)

    @asynccontextmanager
    async def scope(self, msg: Message) -> AsyncIterator[Message]:
        """Make a started message's span current for the block, then end it (recording an exception)."""
        token = otel_context.attach(trace.set_span_in_context(msg.span))
        try:
            yield msg
        except BaseException as exc:
            otel_context.detach(token)
            self._end_message(msg, exc)
            raise
        otel_context.detach(token)
        self._end_message(msg, None)

    async def send(
        self, connection: ServerConnection, message: str | bytes | dict[str, Any], *, op: str | None = None
    ) -> None:
        """Send one message, measuring its duration and size. A dict is JSON-encoded and its op read."""
        if isinstance(message, dict):
            op = op or (message.get(self._op_field) if isinstance(message.get(self._op_field), str) else None)
            data: str | bytes = json.dumps(message, separators=(",", ":"))
        else:
            data = message
        size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
        t0 = time.perf_counter()
        error = ""
        try:
            await connection.send(data)
        except ConnectionClosed:
            error = "connection_closed"
            raise
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            self._sent_metrics(op, size, time.perf_counter() - t0, error)

    def _sent_metrics(self, op: str | None, size: int, duration_s: float, error: str) -> None:
        try:
            label = self._send_op_label(op) if op else "unknown"
            self._sent.add(1, {n.OP: label, n.ERROR_TYPE: error})
            self._send_duration.record(duration_s, {n.OP: label, n.ERROR_TYPE: error})
            self._size.record(size, {n.OP: label, n.DIRECTION: "transmit"})
            # Sends are metrics, never a span per chunk; only a failed send leaves a mark on the message span.
            current = trace.get_current_span()
            if error and current.is_recording():
                current.add_event("send failed", {n.OP: label, n.ERROR_TYPE: error, n.MESSAGE_SIZE: size})
        except Exception:
            self._internal_error("send")

    def _start_message(self, connection: ServerConnection, data: str | bytes) -> Message:
        try:
            state = self._state(connection)
            env = read_envelope(
                data,
                max_bytes=self._max_bytes,
                op_field=self._op_field,
                traceparent_field=self._traceparent_field,
                allow_binary=self._allow_binary,
            )
            op = self._op_label(env.op) if env.error in (None, "missing_op") and env.op else "invalid"
            parent = otel_context.Context()  # a new trace per message, never nested in the previous one
            if env.traceparent:
                carrier = {"traceparent": env.traceparent}
                if env.tracestate:
                    carrier["tracestate"] = env.tracestate
                parent = _W3C.extract(carrier, context=parent)
            links = [Link(state.handshake, {n.HANDSHAKE_LINKED: True})] if state.handshake else []
            attributes: dict[str, Any] = {
                n.OP: op,
                n.CONNECTION_ID: state.id,
                n.MESSAGE_SIZE: env.size,
                "network.protocol.name": "websocket",
                n.DIRECTION: "receive",
            }
            if env.op and env.op != op:
                attributes[n.OP_RAW] = env.op
            if state.session_id:
                attributes[n.SESSION_ID] = state.session_id
            if env.request_id:
                attributes[n.REQUEST_ID] = env.request_id
            if env.error:
                attributes[n.ERROR_TYPE] = env.error
            span = self._tracer.start_span(op, context=parent, kind=SpanKind.SERVER, links=links, attributes=attributes)
            if env.error:
                span.set_status(Status(StatusCode.ERROR, f"malformed message: {env.error}"))
                self._errors.add(1, {n.ERROR_TYPE: env.error})
            msg = Message(data, env, op, span)
            msg._error_type = env.error
            return msg
        except Exception:
            self._internal_error("start_message")
            empty = Envelope(0, None, None, "instrumentation", None, None, None)
            return Message(data, empty, "invalid", trace.INVALID_SPAN)

    def _end_message(self, msg: Message, exc: BaseException | None) -> None:
        try:
            span = msg.span
            error = msg._error_type or ""
            if exc is not None and not isinstance(exc, GeneratorExit):
                error = type(exc).__name__
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{error}: {exc}"[:256]))
                span.set_attribute(n.ERROR_TYPE, error)
            start_ns = getattr(span, "start_time", None)
            span.end()
            end_ns = getattr(span, "end_time", None)
            attrs = {n.OP: msg.op, n.ERROR_TYPE: error}
            self._received.add(1, attrs)
            self._size.record(msg.envelope.size, {n.OP: msg.op, n.DIRECTION: "receive"})
            if start_ns is not None and end_ns is not None:
                self._duration.record((end_ns - start_ns) / 1e9, attrs)
        except Exception:
            self._internal_error("end_message")

    # -- internals -------------------------------------------------------------------------------------

    def _state(self, connection: ServerConnection) -> _ConnState:
        state = self._conns.get(connection)
        if state is None:
            state = _ConnState(id=str(getattr(connection, "id", "")), opened_at=time.monotonic())
            self._conns[connection] = state
        return state

    def _safe(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self._internal_error(getattr(fn, "__name__", "call"))

    def _internal_error(self, where: str) -> None:
        log.debug("websocket instrumentation failed in %s", where, exc_info=True)
        with suppress(Exception):
            self._errors.add(1, {n.ERROR_TYPE: "instrumentation"})


class InstrumentedConnection:
    """A proxy for ``ServerConnection`` whose ``recv()`` and iteration open one span per message.

    The span of a message ends when the handler asks for the next one (or returns), so it covers the
    processing of that message. Everything else is delegated to the wrapped connection.
    """

    def __init__(self, instrumentation: WebSocketInstrumentation, connection: ServerConnection) -> None:
        self._instr = instrumentation
        self.connection = connection
        self._current: Message | None = None
        self._token: object | None = None

    @property
    def current(self) -> Message | None:
        return self._current

    async def recv(self, decode: bool | None = None) -> str | bytes:
        self._end_current(None)
        data = await self.connection.recv(decode)
        msg = self._instr._start_message(self.connection, data)
        self._current = msg
        self._token = otel_context.attach(trace.set_span_in_context(msg.span))
        return data

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return
        finally:
            self._end_current(None)

    async def send(self, message: str | bytes | dict[str, Any], *, op: str | None = None) -> None:
        await self._instr.send(self.connection, message, op=op)

    def set_session(self, session_id: str) -> None:
        self._instr.set_session(self.connection, session_id)

    def _end_current(self, exc: BaseException | None) -> None:
        if self._token is not None:
            with suppress(Exception):
                otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        if self._current is not None:
            msg, self._current = self._current, None
            self._instr._end_message(msg, exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)
