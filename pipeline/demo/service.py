"""The demo WebSocket service: the old daemon's "op" protocol (docs/background.md section 1).

Client ops: ``hello`` (first, within the hello timeout), ``call_tool``, ``list_tools``, ``ping``, ``cancel``.
Server ops: ``hello_ack``, ``progress``, ``stream_chunk``, ``stream_complete``, ``call_tool_res``,
``list_tools_res``, ``cancelled``, ``pong``, ``error``. Close codes: 4000 invalid first message, 4001 first
message not ``hello``, 4002 hello timeout, 4003 unauthorised.

Each ``call_tool`` turn: conversation lookup by continuation id, the newest page of history, a streamed call to
the provider, then the turn's messages written. Turns run as tasks (up to 8 in flight per connection, as in the
old daemon; a ninth is refused with ``busy``) so ``ping`` and ``cancel`` are answered while a turn streams.

Every turn gets an answer: a storage failure (or a storage call past ``service.storage_timeout_s``) replies
``storage_unavailable``, any other failure ``internal_error``, at once, and the turn's span records it. Text a
database would refuse (NUL, lone surrogates) is refused as ``invalid_request`` before it reaches a driver.
One client cannot pin much memory: frames are limited to a little over ``max_message_bytes``, the receive queue
holds a few frames, and turns in flight are bounded.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
from contextlib import suppress
from typing import Any

from opentelemetry import trace
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from collectors.logs import LogBridge, disabled_category
from collectors.websocket import Message, WebSocketInstrumentation
from pipeline.config import ServiceSettings
from pipeline.demo.provider import Provider, ProviderError
from pipeline.demo.store import ConversationRepository, NewMessage, RepositoryUnavailable
from pipeline.errors import ListenError

log = logging.getLogger(__name__)

CLIENT_OPS = frozenset({"hello", "call_tool", "tool_call", "list_tools", "ping", "cancel"})
SERVER_OPS = frozenset(
    {"hello_ack", "progress", "stream_chunk", "stream_complete", "call_tool_res", "list_tools_res", "cancelled"}
    | {"pong", "error"}
)
TOOLS: dict[str, str] = {
    "chat": "Talk to the model, with the conversation's history",
    "analyze": "Ask the model to analyse the arguments, with the conversation's history",
    "status": "Report the service's status (no model call, no storage)",
}
CLOSE_INVALID_FIRST = 4000
CLOSE_NOT_HELLO = 4001
CLOSE_HELLO_TIMEOUT = 4002
CLOSE_UNAUTHORISED = 4003
MAX_IN_FLIGHT = 8
RECEIVE_QUEUE_FRAMES = 4  # websockets' default is 16: with 1 MiB frames, 16 MiB a connection before any turn
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{3,64}$")


class DemoService:
    """The demo's WebSocket server: sessions, turns through the repository and the provider, and their logs."""

    def __init__(
        self,
        settings: ServiceSettings,
        store: ConversationRepository,
        provider: Provider,
        ws: WebSocketInstrumentation,
        logs: LogBridge | None = None,
    ) -> None:
        # The old daemon's log categories (docs/background.md section 2), now sampled before a record is built.
        category = logs.category if logs is not None else disabled_category
        self._log_send, self._log_loop = category("SAFE_SEND"), category("MSG_LOOP")
        self._log_session, self._log_cleanup = category("SESSION"), category("CLEANUP")
        self.settings = settings
        self.store = store
        self.provider = provider
        self.ws = ws
        self._server: Server | None = None

    async def start(self) -> DemoService:
        try:
            self._server = await serve(
                self.handle,
                self.settings.host,
                self.settings.port,
                # The library's own limit sits a little above ours so an oversized message is answered (too_large),
                # not a dropped socket; far larger frames are refused by the library (close 1009, counted).
                max_size=self.settings.max_message_bytes + 16 * 1024,
                max_queue=RECEIVE_QUEUE_FRAMES,
                **self.ws.serve_kwargs(),
            )
        except OSError as exc:
            setting = "service.port, env SIEVE_SERVICE__PORT or --port"
            raise ListenError(self.settings.host, self.settings.port, setting, exc) from None
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # -- a connection --------------------------------------------------------------------------------

    async def handle(self, connection: ServerConnection) -> None:
        async with self.ws.connection(connection):
            session_id = await self._hello(connection)
            if session_id is None:
                return
            in_flight: dict[str, asyncio.Task[None]] = {}
            try:
                async for raw in connection:
                    await self._dispatch(connection, raw, session_id, in_flight)
            except ConnectionClosed:
                pass
            finally:
                self._log_cleanup.info("connection closed session={} cancelled_turns={}", session_id, len(in_flight))
                for task in in_flight.values():
                    task.cancel()
                if in_flight:
                    await asyncio.gather(*in_flight.values(), return_exceptions=True)

    async def _hello(self, connection: ServerConnection) -> str | None:
        try:
            raw = await asyncio.wait_for(connection.recv(), self.settings.hello_timeout_s)
        except TimeoutError:
            self._log_cleanup.info("hello timeout, closing with {}", CLOSE_HELLO_TIMEOUT)
            await connection.close(CLOSE_HELLO_TIMEOUT, "hello timeout")
            return None
        except ConnectionClosed:
            return None
        async with self.ws.message(connection, raw) as msg:
            body = msg.body
            if body is None:
                msg.fail("invalid_first_message")
                await connection.close(CLOSE_INVALID_FIRST, "invalid first message")
                return None
            if body.get("op") != "hello":
                msg.fail("not_hello")
                await connection.close(CLOSE_NOT_HELLO, "first message must be hello")
                return None
            token = body.get("token")
            if not isinstance(token, str) or not hmac.compare_digest(_bytes(token), _bytes(self.settings.token)):
                # Never log the token or a prefix of it (the old daemon logged ten characters of both).
                msg.fail("unauthorized")
                self._log_session.warning("hello rejected: unauthorized")
                await self._send(connection, {"op": "hello_ack", "ok": False, "error": "unauthorized"})
                await connection.close(CLOSE_UNAUTHORISED, "unauthorized")
                return None
            requested = body.get("session_id")
            session_id = requested if isinstance(requested, str) and _SESSION_ID.match(requested) else None
            session_id = session_id or uuid.uuid4().hex
            self.ws.set_session(connection, session_id)
            self._log_session.info("session established session={}", session_id)
            await self._send(connection, {"op": "hello_ack", "ok": True, "session_id": session_id})
            return session_id

    async def _dispatch(
        self,
        connection: ServerConnection,
        raw: str | bytes,
        session_id: str,
        in_flight: dict[str, asyncio.Task[None]],
    ) -> None:
        msg = self.ws.start_message(connection, raw)
        with trace.use_span(msg.span, end_on_exit=False):  # the line follows its message's trace
            self._log_loop.debug("received session={} bytes={}", session_id, len(raw))
        op = msg.body.get("op") if msg.body else None
        if op not in ("call_tool", "tool_call"):
            async with self.ws.scope(msg):
                await self._answer_inline(connection, msg, in_flight)
            return
        # A turn runs in its own task (its span already started at receipt), so ping and cancel stay responsive.
        request_id = _request_id(msg.body)
        refusal = None
        if request_id in in_flight:
            refusal = ("duplicate_request", "request_id already in flight")
        elif len(in_flight) >= MAX_IN_FLIGHT:
            refusal = ("busy", f"{MAX_IN_FLIGHT} turns already in flight on this connection")
        if refusal is not None:
            async with self.ws.scope(msg):
                await self._error(connection, msg, *refusal, request_id)
            return

        async def run() -> None:
            async with self.ws.scope(msg):
                await self._answered_turn(connection, msg, session_id, request_id)

        task = asyncio.create_task(run())
        in_flight[request_id] = task
        task.add_done_callback(lambda _t: in_flight.pop(request_id, None))

    async def _answer_inline(
        self, connection: ServerConnection, msg: Message, in_flight: dict[str, asyncio.Task[None]]
    ) -> None:
        body = msg.body
        if body is None:
            # The instrumentation already marked the span with the precise reason (not_json, binary, ...).
            await self._error(connection, None, "bad_message", f"message rejected: {msg.error}")
            return
        op = body.get("op")
        if op == "ping":
            await self._send(connection, {"op": "pong", "ts": time.time()})
        elif op == "list_tools":
            tools = [{"name": k, "description": v} for k, v in TOOLS.items()]
            await self._send(connection, {"op": "list_tools_res", "tools": tools})
        elif op == "cancel":
            rid = _request_id(body)
            task = in_flight.get(rid)
            if task is None:
                await self._error(connection, msg, "not_found", "no such request in flight", rid)
            else:
                task.cancel()
                await self._send(connection, {"op": "cancelled", "request_id": rid})
        elif op == "hello":
            await self._error(connection, msg, "already_hello", "hello was already received")
        else:
            await self._error(connection, msg, "unknown_op", f"unknown op {str(op)[:64]!r}")

    # -- a turn --------------------------------------------------------------------------------------

    async def _answered_turn(self, connection: ServerConnection, msg: Message, session_id: str, rid: str) -> None:
        """Run a turn; whatever fails, the client gets an ``error`` reply now, not at its own timeout."""
        try:
            async with asyncio.timeout(self.settings.turn_timeout_s):
                await self._call_tool(connection, msg, session_id)
        except RepositoryUnavailable as exc:
            self._log_session.error("storage unavailable request_id={} error={}", rid, exc)
            msg.span.record_exception(exc)
            await self._error(connection, msg, "storage_unavailable", "storage is unavailable; try again", rid)
        except TimeoutError:
            await self._error(connection, msg, "timeout", f"no answer within {self.settings.turn_timeout_s:g} s", rid)
        except Exception as exc:  # a bug: answer, record it on the span, log it with its trace
            self._log_session.exception("turn failed request_id={}", rid)
            msg.span.record_exception(exc)
            await self._error(connection, msg, "internal_error", "internal error", rid)

    async def _call_tool(self, connection: ServerConnection, msg: Message, session_id: str) -> None:
        body = msg.body or {}
        request_id = _request_id(body)
        tool = body.get("tool")
        # The old protocol has two spellings: call_tool {name} and tool_call {tool: {name}}.
        name = tool.get("name") if isinstance(tool, dict) else body.get("name")
        arguments = body.get("arguments") or {}
        if name not in TOOLS or not isinstance(arguments, dict):
            detail = f"unknown tool or bad arguments: {_printable(name)!r}"
            await self._error(connection, msg, "invalid_request", detail, request_id)
            return
        bad = next(
            (k for k, v in arguments.items() if not _storable(k) or (isinstance(v, str) and not _storable(v))), None
        )
        if bad is not None:
            # Postgres refuses NUL in text and lone surrogates in UTF-8: say so now, not as a storage failure.
            detail = f"argument {_printable(bad)!r} holds text a database cannot store (NUL or a lone surrogate)"
            await self._error(connection, msg, "invalid_request", detail, request_id)
            return
        msg.span.set_attribute("sieve.demo.tool", str(name))
        if name == "status":
            await self._result(connection, request_id, "ok")
            return

        continuation_id = str(arguments.get("continuation_id") or session_id)[:128]
        prompt = str(arguments.get("prompt") or "hello")[:4000]
        conversation = await self.store.get_conversation_by_continuation_id(continuation_id)
        if conversation is None:
            conversation = await self.store.save_conversation(continuation_id, session_id, prompt[:60])
        history = await self.store.get_conversation_messages(conversation.id, self.settings.history_page_size)
        await self.store.conversation_files(
            conversation.id, batched=self.settings.batch_file_lookups
        )  # the N+1 the demo shows (or its fix)

        progress = asyncio.create_task(self._progress(connection, request_id))
        chunks: list[str] = []
        try:
            async for chunk in self.provider.generate(prompt, len(history)):
                chunks.append(chunk)
                chunk_msg = {
                    "op": "stream_chunk",
                    "request_id": request_id,
                    "chunk": chunk,
                    "timestamp": time.time(),
                }
                await self._send(connection, chunk_msg)
        except ProviderError as exc:
            self._log_session.error("provider failed request_id={} error={}", request_id, exc)
            await self._error(connection, msg, "provider_error", str(exc), request_id)
            return
        finally:
            progress.cancel()
            with suppress(asyncio.CancelledError):
                await progress
        await self._send(connection, {"op": "stream_complete", "request_id": request_id})
        reply = "".join(chunks)
        await self.store.save_messages(
            conversation.id,
            [
                NewMessage("user", prompt, {"tool": name}, request_id),
                NewMessage("assistant", reply, {"tool": name, "model": self.provider.model}, request_id),
            ],
        )
        await self._result(connection, request_id, reply)

    async def _result(self, connection: ServerConnection, request_id: str, text: str) -> None:
        outputs = [{"type": "text", "text": text}]
        await self._send(connection, {"op": "call_tool_res", "request_id": request_id, "outputs": outputs})

    async def _progress(self, connection: ServerConnection, request_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.progress_interval_s)
            await self._send(connection, {"op": "progress", "request_id": request_id, "message": "in progress"})

    # -- sending -------------------------------------------------------------------------------------

    async def _send(self, connection: ServerConnection, payload: dict[str, Any]) -> None:
        try:
            await self.ws.send(connection, payload)
        except ConnectionClosed:
            # A peer that went away is a normal end of a conversation, not a failure of the turn.
            self._log_cleanup.info("send after close op={}", payload.get("op"))
            return
        self._log_send.debug("sent op={} request_id={}", payload.get("op"), payload.get("request_id"))

    async def _error(
        self,
        connection: ServerConnection,
        msg: Message | None,
        code: str,
        message: str,
        request_id: str | None = None,
    ) -> None:
        if msg is not None:
            msg.fail(code, message)
        payload: dict[str, Any] = {"op": "error", "error": {"code": code, "message": message}}
        if request_id:
            payload["request_id"] = request_id
        await self._send(connection, payload)


def _bytes(text: str) -> bytes:
    # A JSON string may hold a lone surrogate ("\ud800"): strict UTF-8 would raise in the middle of a hello.
    return text.encode("utf-8", "surrogatepass")


def _storable(text: str) -> bool:
    """True for text Postgres accepts: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(value: object) -> str:
    return str(value)[:64].encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def _request_id(body: dict[str, Any] | None) -> str:
    value = (body or {}).get("request_id")
    return str(value)[:128] if isinstance(value, str | int) and value != "" else uuid.uuid4().hex
