"""One root span per inbound WebSocket message, and the metrics of messages in and out.

A message's span is a new trace (or continues the ``traceparent`` its envelope carries), linked to the
connection's handshake span. The envelope is read as the service's protocol says (``_envelope``): a service that
speaks plain text or its own framing gets ordinary message spans, never "malformed" errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from collectors._envelope import INVALID, BoundedLabel, Envelope, EnvelopeMode, message_size, read_envelope
from pipeline import metering
from pipeline.metering import DeferredHistogram
from pipeline.names import websocket as n

log = logging.getLogger(__name__)
_W3C = TraceContextTextMapPropagator()
OPAQUE_OP = "message"  # the op of a message whose protocol Sieve does not read
OPAQUE_SPAN_NAME = "websocket.message"


@dataclass
class Message:
    """One inbound message, as the instrumentation parsed it."""

    data: str | bytes
    envelope: Envelope
    op: str  # bounded: a known op, "other", "invalid", or "message" when the protocol is not read
    span: Span
    error_type: str | None = field(default=None, repr=False)

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
            self.error_type = error_type
            self.span.set_attribute(n.ERROR_TYPE, error_type)


def _observe(counts: dict[Any, int], keys: tuple[str, ...]) -> Callable[[CallbackOptions], list[Observation]]:
    """A collection-time callback reporting plain counts (a dict the event loop increments) as observations."""

    def callback(_options: CallbackOptions) -> list[Observation]:
        snapshot = counts.copy()  # one C-level copy under the GIL: safe while the loop thread increments
        return [
            Observation(value, dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)))
            for key, value in snapshot.items()
        ]

    return callback


class MessageTracer:
    """Starts and ends message spans and records message metrics. Never raises into the handler."""

    def __init__(
        self,
        tracer: trace.Tracer,
        meter: Meter,
        *,
        envelope: EnvelopeMode,
        ops: Iterable[str] | None,
        send_ops: Iterable[str] | None,
        max_ops: int,
        max_message_bytes: int,
        op_field: str,
        traceparent_field: str,
        allow_binary: bool,
    ) -> None:
        self._tracer = tracer
        self._mode: EnvelopeMode = envelope
        # Inbound ops come from peers (untrusted); outbound ops from the application. Both stay bounded.
        self._op_label = BoundedLabel(ops, max_ops)
        self._send_op_label = BoundedLabel(send_ops, max_ops)
        self._max_bytes = max_message_bytes
        self._op_field = op_field
        self._traceparent_field = traceparent_field
        self._allow_binary = allow_binary
        # Counts are plain dict increments on the event loop, published at collection (observable counters): a
        # counter.add through the SDK costs microseconds (attribute hashing, aggregation) per message and send.
        self._received: dict[tuple[str, str], int] = {}
        self._sent: dict[tuple[str, str], int] = {}
        self._sent_bytes: dict[str, int] = {}
        metering.observable_counter(meter, n.MESSAGES_RECEIVED, _observe(self._received, (n.OP, n.ERROR_TYPE)))
        metering.observable_counter(meter, n.MESSAGES_SENT, _observe(self._sent, (n.OP, n.ERROR_TYPE)))
        metering.observable_counter(meter, n.BYTES_SENT, _observe(self._sent_bytes, (n.OP,)))
        self.errors = metering.counter(meter, n.ERRORS)
        # Recorded on the event loop for every message and send: deferred (a list append), merged at collection.
        self._size = DeferredHistogram(meter, n.MESSAGE_SIZE_HIST, (n.OP, n.DIRECTION))
        self._duration = DeferredHistogram(meter, n.MESSAGE_DURATION, (n.OP, n.ERROR_TYPE))
        self._send_duration = DeferredHistogram(meter, n.SEND_DURATION, (n.OP, n.ERROR_TYPE))

    # -- inbound ---------------------------------------------------------------------------------------------

    def start(
        self,
        data: str | bytes,
        *,
        connection_id: str,
        handshake: trace.SpanContext | None,
        session_id: str | None,
    ) -> Message:
        """Start the root span of one inbound message (not made current)."""
        try:
            env = read_envelope(
                data,
                max_bytes=self._max_bytes,
                op_field=self._op_field,
                traceparent_field=self._traceparent_field,
                allow_binary=self._allow_binary,
                mode=self._mode,
            )
            if env.op and env.error in (None, "missing_op"):
                op = self._op_label(env.op)
            elif env.error is not None:
                op = INVALID
            else:
                op = OPAQUE_OP
            parent = otel_context.Context()  # a new trace per message, never nested in the previous one
            if env.traceparent:
                carrier = {"traceparent": env.traceparent}
                if env.tracestate:
                    carrier["tracestate"] = env.tracestate
                parent = _W3C.extract(carrier, context=parent)
            links = [Link(handshake, {n.HANDSHAKE_LINKED: True})] if handshake else []
            attributes: dict[str, Any] = {
                n.OP: op,
                n.CONNECTION_ID: connection_id,
                n.MESSAGE_SIZE: env.size,
                "network.protocol.name": "websocket",
                n.DIRECTION: "receive",
            }
            if env.op and env.op != op:
                attributes[n.OP_RAW] = env.op
            if session_id:
                attributes[n.SESSION_ID] = session_id
            if env.request_id:
                attributes[n.REQUEST_ID] = env.request_id
            if env.error:
                attributes[n.ERROR_TYPE] = env.error
            name = OPAQUE_SPAN_NAME if op == OPAQUE_OP else op
            span = self._tracer.start_span(
                name, context=parent, kind=SpanKind.SERVER, links=links, attributes=attributes
            )
            if env.error:
                span.set_status(Status(StatusCode.ERROR, f"malformed message: {env.error}"))
                self.errors.add(1, {n.ERROR_TYPE: env.error})
            return Message(data, env, op, span, env.error)
        except Exception:
            self.internal_error("start_message")
            empty = Envelope(0, None, None, "instrumentation", None, None, None)
            return Message(data, empty, INVALID, trace.INVALID_SPAN)

    def end(self, msg: Message, exc: BaseException | None) -> None:
        """End a message's span (recording ``exc``) and count the message."""
        try:
            span = msg.span
            error = msg.error_type or ""
            if exc is not None and not isinstance(exc, GeneratorExit):
                error = type(exc).__name__
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{error}: {exc}"[:256]))
                span.set_attribute(n.ERROR_TYPE, error)
            start_ns = getattr(span, "start_time", None)
            span.end()
            end_ns = getattr(span, "end_time", None)
            key = (msg.op, error)
            self._received[key] = self._received.get(key, 0) + 1
            self._size.record(msg.envelope.size, msg.op, "receive")
            if start_ns is not None and end_ns is not None:
                self._duration.record((end_ns - start_ns) / 1e9, msg.op, error)
        except Exception:
            self.internal_error("end_message")

    # -- outbound --------------------------------------------------------------------------------------------

    def encode(self, message: str | bytes | dict[str, Any], op: str | None) -> tuple[str | bytes, str | None]:
        """A dict is JSON-encoded and its op read; text and bytes go as they are."""
        if isinstance(message, dict):
            value = message.get(self._op_field)
            return json.dumps(message, separators=(",", ":")), op or (value if isinstance(value, str) else None)
        return message, op

    def sent(self, op: str | None, data: str | bytes, duration_s: float, error: str) -> None:
        try:
            label = self._send_op_label(op) if op else (OPAQUE_OP if self._mode == "none" else "unknown")
            size = message_size(data)
            key = (label, error)
            self._sent[key] = self._sent.get(key, 0) + 1
            self._sent_bytes[label] = self._sent_bytes.get(label, 0) + size
            # The one SDK measurement of a send: its duration (a slow client shows here first).
            self._send_duration.record(duration_s, label, error)
            # Sends are metrics, never a span per chunk; only a failed send leaves a mark on the message span.
            current = trace.get_current_span()
            if error and current.is_recording():
                current.add_event("send failed", {n.OP: label, n.ERROR_TYPE: error, n.MESSAGE_SIZE: size})
        except Exception:
            self.internal_error("send")

    def internal_error(self, where: str) -> None:
        # Called from except blocks only: exc_info is the exception being handled there.
        log.debug("websocket instrumentation failed in %s", where, exc_info=True)  # noqa: LOG014
        with suppress(Exception):
            self.errors.add(1, {n.ERROR_TYPE: "instrumentation"})
