"""WebSocket metric names and attribute keys (``collectors/websocket.py``).

There are no WebSocket semantic conventions yet (semconv #2841 is open), so these follow the messaging
conventions' shape under a ``websocket.`` namespace; ``network.*``, ``error.type`` are the stable keys.
"""

from __future__ import annotations

from pipeline.names.spec import DURATION_BUCKETS_S, SIZE_BUCKETS_BY, Kind, MetricSpec

# Attribute keys.
OP = "websocket.message.op"  # bounded: known ops, else "other"
OP_RAW = "websocket.message.op_raw"  # span attribute only (unbounded), truncated
DIRECTION = "network.io.direction"  # "receive" | "transmit"
CONNECTION_ID = "websocket.connection.id"  # span attribute only: never a metric label
SESSION_ID = "session.id"  # span attribute only
MESSAGE_SIZE = "websocket.message.size"
CLOSE_CODE = "websocket.close.code"
ERROR_TYPE = "error.type"
REQUEST_ID = "websocket.message.request_id"
HANDSHAKE_LINKED = "websocket.handshake"  # link attribute naming the handshake span

# A connection lives from seconds to hours.
LIFETIME_BUCKETS_S: tuple[float, ...] = (1, 5, 15, 60, 300, 900, 3600, 14400)

CONNECTIONS_ACTIVE = MetricSpec(
    "websocket.server.connections.active", Kind.UP_DOWN_COUNTER, "{connection}", "Open WebSocket connections"
)
SESSIONS_ACTIVE = MetricSpec(
    "websocket.server.sessions.active", Kind.UP_DOWN_COUNTER, "{session}", "Sessions established by hello"
)
MESSAGES_RECEIVED = MetricSpec(
    "websocket.server.messages.received",
    Kind.COUNTER,
    "{message}",
    "Inbound messages by op and outcome",
    (OP, ERROR_TYPE),
)
MESSAGES_SENT = MetricSpec(
    "websocket.server.messages.sent", Kind.COUNTER, "{message}", "Outbound messages by op", (OP, ERROR_TYPE)
)
MESSAGE_SIZE_HIST = MetricSpec(
    "websocket.server.message.size",
    Kind.HISTOGRAM,
    "By",
    "Inbound message payload size",
    (OP, DIRECTION),
    buckets=SIZE_BUCKETS_BY,
)
BYTES_SENT = MetricSpec("websocket.server.sent.size", Kind.COUNTER, "By", "Bytes sent, by op", (OP,))
MESSAGE_DURATION = MetricSpec(
    "websocket.server.message.duration",
    Kind.HISTOGRAM,
    "s",
    "Time to process one inbound message (its root span)",
    (OP, ERROR_TYPE),
    buckets=DURATION_BUCKETS_S,
)
SEND_DURATION = MetricSpec(
    "websocket.server.send.duration",
    Kind.HISTOGRAM,
    "s",
    "Time spent in one send()",
    (OP, ERROR_TYPE),
    buckets=DURATION_BUCKETS_S,
)
CONNECTION_DURATION = MetricSpec(
    "websocket.server.connection.duration",
    Kind.HISTOGRAM,
    "s",
    "Connection lifetime",
    (CLOSE_CODE,),
    buckets=LIFETIME_BUCKETS_S,
)
HANDSHAKE_DURATION = MetricSpec(
    "websocket.server.handshake.duration",
    Kind.HISTOGRAM,
    "s",
    "Opening handshake",
    (ERROR_TYPE,),
    buckets=DURATION_BUCKETS_S,
)
CLOSES = MetricSpec(
    "websocket.server.closes", Kind.COUNTER, "{connection}", "Closed connections by close code", (CLOSE_CODE,)
)
ERRORS = MetricSpec(
    "websocket.server.errors",
    Kind.COUNTER,
    "{error}",
    "Malformed messages and handler errors, by type (not_json, binary, too_large, invalid_utf8, ...)",
    (ERROR_TYPE,),
)

METRICS: tuple[MetricSpec, ...] = (
    CONNECTIONS_ACTIVE,
    SESSIONS_ACTIVE,
    MESSAGES_RECEIVED,
    MESSAGES_SENT,
    MESSAGE_SIZE_HIST,
    BYTES_SENT,
    MESSAGE_DURATION,
    SEND_DURATION,
    CONNECTION_DURATION,
    HANDSHAKE_DURATION,
    CLOSES,
    ERRORS,
)
