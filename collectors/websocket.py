"""Instrumentation for servers on the ``websockets.asyncio`` API.

The trace model: a short SERVER span for the opening handshake, then **one root span per inbound message**,
linked to the handshake span. With a JSON envelope (``envelope="json"`` or ``"json_strict"``) the span is named
by the message's op and a W3C ``traceparent`` in the envelope (or in ``_meta``) continues the client's trace:
browsers cannot set handshake headers, so context travels in the message. Without one (``envelope="none"``, the
default) every message is an ordinary ``websocket.message`` span. There is never a connection-long span, which a
tail sampler would have to hold for the connection's whole life.

Three ways to use it with any ``websockets.asyncio`` server::

    ws = WebSocketInstrumentation(tracer_provider, meter_provider, envelope="json", ops={"hello", "call_tool"})

    # 1. automatic: each recv() ends the previous message's span and starts the next one
    async def handler(conn: InstrumentedConnection) -> None:
        async for message in conn:
            await conn.send(reply(message))
    async with serve(ws.handler(handler), host, port, **ws.serve_kwargs()): ...

    # 2. explicit: the span covers exactly the block (use it to process messages in tasks)
    async with ws.message(connection, raw) as msg:
        ...  # msg.body, msg.op, msg.error

    # 3. no code at all: ``opentelemetry-instrument`` (collectors.instrumentors.WebSocketsInstrumentor)

Instrumentation never raises into the handler: its own failures are counted under ``error.type=
"instrumentation"`` and logged at debug level. Exceptions raised *by the handler* are recorded on the message
span and re-raised unchanged.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.trace import TracerProvider
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.http11 import Request, Response

from collectors._envelope import EnvelopeMode
from collectors._ws_connections import ConnectionTracker, close_code
from collectors._ws_messages import Message, MessageTracer

# serve()'s own hook types (websockets.asyncio.server.serve): sync or async, a Response to answer instead.
ProcessRequest = Callable[[ServerConnection, Request], Awaitable[Response | None] | Response | None]
ProcessResponse = Callable[[ServerConnection, Request, Response], Awaitable[Response | None] | Response | None]

__all__ = ["InstrumentedConnection", "Message", "WebSocketInstrumentation", "close_code"]

_SCOPE = "sieve.collectors.websocket"
Handler = Callable[[ServerConnection], Awaitable[None]]


class WebSocketInstrumentation:
    """Message spans and connection telemetry for one or more ``websockets.asyncio`` servers."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        envelope: EnvelopeMode = "none",
        ops: Iterable[str] | None = None,
        send_ops: Iterable[str] | None = None,
        max_ops: int = 64,
        max_message_bytes: int = 1 << 20,
        op_field: str = "op",
        traceparent_field: str = "traceparent",
        allow_binary: bool = False,
        on_first_connection: Callable[[], None] | None = None,
    ) -> None:
        tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = get_meter(_SCOPE, meter_provider=meter_provider)
        self.messages = MessageTracer(
            tracer,
            meter,
            envelope=envelope,
            ops=ops,
            send_ops=send_ops,
            max_ops=max_ops,
            max_message_bytes=max_message_bytes,
            op_field=op_field,
            traceparent_field=traceparent_field,
            allow_binary=allow_binary,
        )
        self.connections = ConnectionTracker(
            tracer, meter, self.messages.errors, self.messages.internal_error, on_first_connection
        )

    # -- the opening handshake -------------------------------------------------------------------------

    def process_request(self, connection: ServerConnection, request: Request) -> None:
        """``serve(process_request=...)`` hook: starts the handshake span (headers may carry traceparent)."""
        self.connections.request(connection, request)

    def process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        """``serve(process_response=...)`` hook: ends the handshake span with the response status."""
        self.connections.response(connection, response)

    def serve_kwargs(
        self,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for ``serve()``, chaining the application's own hooks after Sieve's."""

        async def request_hook(connection: ServerConnection, request: Request) -> Response | None:
            self.process_request(connection, request)
            if process_request is None:
                return None
            result = process_request(connection, request)
            return await result if isinstance(result, Awaitable) else result

        async def response_hook(connection: ServerConnection, request: Request, response: Response) -> Response | None:
            result: Response | None = None
            if process_response is not None:
                returned = process_response(connection, request, response)
                result = await returned if isinstance(returned, Awaitable) else returned
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
                    conn.end_current(exc)
                    raise
                conn.end_current(None)

        return wrapped

    @asynccontextmanager
    async def connection(self, connection: ServerConnection) -> AsyncIterator[None]:
        """Connection-level metrics for a handler that manages its own messages (explicit mode)."""
        state = self.connections.opened(connection)
        code = 1000
        try:
            yield
        except BaseException:
            code = 1011  # what the library sends when a handler fails
            raise
        finally:
            if connection.close_code is None and connection.protocol.close_sent is None:
                # The server would close right after the handler returns; do it here (with the same code) so
                # the close code is known when the connection's metrics are recorded.
                with suppress(Exception):
                    await connection.close(code)
            self.connections.closed(connection, state)

    def set_session(self, connection: ServerConnection, session_id: str) -> None:
        """Record the session a connection belongs to (after ``hello``): a span attribute, a gauge."""
        self.connections.set_session(connection, session_id)

    # -- automatic mode (the instrumentor): a ServerConnection subclass ---------------------------------

    def connection_class(self, base: type[ServerConnection] = ServerConnection) -> type[ServerConnection]:
        """A subclass of ``base`` (``serve(create_connection=...)``) whose ``recv()`` (and so ``async for``)
        starts one span per message, made current for the handler, and whose ``send()`` is measured."""
        return _connection_class(self, base)

    def auto_handler(self, handler: Handler) -> Handler:
        """Wrap a handler served with :meth:`connection_class`: connection metrics, last message span ended."""

        async def wrapped(connection: ServerConnection) -> None:
            async with self.connection(connection):
                try:
                    await handler(connection)
                except BaseException as exc:
                    _end_auto(self, connection, exc)
                    raise
                _end_auto(self, connection, None)

        return wrapped

    # -- messages --------------------------------------------------------------------------------------

    @asynccontextmanager
    async def message(self, connection: ServerConnection, data: str | bytes) -> AsyncIterator[Message]:
        """A root span around the processing of one inbound message (explicit mode)."""
        async with self.scope(self.start_message(connection, data)) as msg:
            yield msg

    def start_message(self, connection: ServerConnection, data: str | bytes) -> Message:
        """Start the span of one inbound message without making it current (hand it to a task with scope())."""
        state = self.connections.state(connection)
        return self.messages.start(data, connection_id=state.id, handshake=state.handshake, session_id=state.session_id)

    def end_message(self, msg: Message, exc: BaseException | None = None) -> None:
        """End a message's span (recording ``exc``, if any) and count it."""
        self.messages.end(msg, exc)

    @asynccontextmanager
    async def scope(self, msg: Message) -> AsyncIterator[Message]:
        """Make a started message's span current for the block, then end it (recording an exception)."""
        token = otel_context.attach(trace.set_span_in_context(msg.span))
        try:
            yield msg
        except BaseException as exc:
            otel_context.detach(token)
            self.end_message(msg, exc)
            raise
        otel_context.detach(token)
        self.end_message(msg, None)

    async def send(
        self, connection: ServerConnection, message: str | bytes | dict[str, Any], *, op: str | None = None
    ) -> None:
        """Send one message, measuring its duration and size. A dict is JSON-encoded and its op read."""
        data, op = self.messages.encode(message, op)
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
            self.messages.sent(op, data, time.perf_counter() - t0, error)


def _end_auto(instr: WebSocketInstrumentation, connection: Any, exc: BaseException | None) -> None:
    token = getattr(connection, "_sieve_token", None)
    if token is not None:
        connection._sieve_token = None
        with suppress(Exception):  # detached from another task's context: nothing to restore there
            otel_context.detach(token)
    current = getattr(connection, "_sieve_current", None)
    if current is not None:
        connection._sieve_current = None
        instr.end_message(current, exc)


def _connection_class(instr: WebSocketInstrumentation, base: type[ServerConnection]) -> type[ServerConnection]:
    # base is a class known only at run time (the application's create_connection, or ServerConnection): mypy
    # cannot take a variable as a base class.
    class SieveServerConnection(base):  # type: ignore[valid-type,misc]
        """A connection whose messages are spans (see ``WebSocketInstrumentation.connection_class``)."""

        _sieve_current: Message | None = None
        _sieve_token: Token[Context] | None = None

        async def recv(self, decode: bool | None = None) -> str | bytes:
            _end_auto(instr, self, None)
            data: str | bytes = await super().recv(decode)
            msg = instr.start_message(self, data)
            self._sieve_current = msg
            # recv() is awaited by the handler's own task, so the context change is the handler's.
            self._sieve_token = otel_context.attach(trace.set_span_in_context(msg.span))
            return data

        async def send(self, message: Any, *args: Any, **kwargs: Any) -> None:
            if not isinstance(message, str | bytes):  # fragmented (iterables): not measured
                await super().send(message, *args, **kwargs)
                return
            t0 = time.perf_counter()
            error = ""
            try:
                await super().send(message, *args, **kwargs)
            except ConnectionClosed:
                error = "connection_closed"
                raise
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                instr.messages.sent(None, message, time.perf_counter() - t0, error)

    SieveServerConnection.__name__ = f"Sieve{base.__name__}"
    return SieveServerConnection


class InstrumentedConnection:
    """A proxy for ``ServerConnection`` whose ``recv()`` and iteration open one span per message.

    The span of a message ends when the handler asks for the next one (or returns), so it covers the
    processing of that message. Everything else is delegated to the wrapped connection.
    """

    def __init__(self, instrumentation: WebSocketInstrumentation, connection: ServerConnection) -> None:
        self._instr = instrumentation
        self.connection = connection
        self._current: Message | None = None
        self._token: Token[Context] | None = None

    @property
    def current(self) -> Message | None:
        return self._current

    async def recv(self, decode: bool | None = None) -> str | bytes:
        self.end_current(None)
        data = await self.connection.recv(decode)
        msg = self._instr.start_message(self.connection, data)
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
            self.end_current(None)

    async def send(self, message: str | bytes | dict[str, Any], *, op: str | None = None) -> None:
        await self._instr.send(self.connection, message, op=op)

    def set_session(self, session_id: str) -> None:
        self._instr.set_session(self.connection, session_id)

    def end_current(self, exc: BaseException | None) -> None:
        """End the current message's span (the handler moved on, returned or failed)."""
        if self._token is not None:
            with suppress(Exception):
                otel_context.detach(self._token)
            self._token = None
        if self._current is not None:
            msg, self._current = self._current, None
            self._instr.end_message(msg, exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)
