"""WebSocket: connections and sessions, messages in and out by op, processing and send latency, close codes,
malformed input by reason (``collectors/websocket.py``'s metrics, ``pipeline/names/websocket.py``)."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dashboard_models

from dashboards.common import (
    PanelBuilder,
    assemble,
    base_dashboard,
    gauge,
    legend,
    quantile,
    rate,
    rate_unit,
    stat_panel,
    ts_panel,
    unit,
)
from pipeline.grafana.resources import WEBSOCKET_UID
from pipeline.names import websocket as ws

OP_IN = legend((ws.MESSAGES_RECEIVED, ws.OP))
OP_OUT = legend((ws.MESSAGES_SENT, ws.OP))
QUANTILES = (0.5, 0.95, 0.99)


def _now() -> list[PanelBuilder]:
    return [
        stat_panel(
            "Open connections",
            "WebSocket connections open now",
            unit(ws.CONNECTIONS_ACTIVE),
            [(gauge(ws.CONNECTIONS_ACTIVE), "connections")],
        ),
        stat_panel(
            "Sessions",
            "Connections that completed the hello exchange",
            unit(ws.SESSIONS_ACTIVE),
            [(gauge(ws.SESSIONS_ACTIVE), "sessions")],
        ),
        stat_panel(
            "Messages in",
            "Inbound messages per second, all ops",
            rate_unit(ws.MESSAGES_RECEIVED),
            [(rate(ws.MESSAGES_RECEIVED), "in")],
        ),
        stat_panel(
            "Malformed or failed",
            "Malformed messages and handler errors per second",
            rate_unit(ws.ERRORS),
            # or vector(0): the counter has no series until the first error, and "No data" reads like a fault.
            [(f"{rate(ws.ERRORS)} or vector(0)", "errors")],
            thresholds=((None, "green"), (0.1, "orange"), (1.0, "red")),
        ),
    ]


def _connections() -> list[PanelBuilder]:
    return [
        ts_panel(
            "Connections and sessions",
            "Open connections and established sessions",
            unit(ws.CONNECTIONS_ACTIVE),
            [(gauge(ws.CONNECTIONS_ACTIVE), "connections"), (gauge(ws.SESSIONS_ACTIVE), "sessions")],
            span=8,
        ),
        ts_panel(
            "Closes by close code",
            "Closed connections per second by close code (1000 normal, 1001 going away, 1006 abnormal, "
            "4000-4003 protocol: invalid first message, not hello, hello timeout, unauthorised)",
            rate_unit(ws.CLOSES),
            [(rate(ws.CLOSES, (ws.CLOSE_CODE,)), legend((ws.CLOSES, ws.CLOSE_CODE)))],
            span=8,
            stacked=True,
        ),
        ts_panel(
            "Handshakes",
            "Opening handshakes per second by outcome (no error type: accepted)",
            rate_unit(ws.HANDSHAKE_DURATION, "handshake"),
            [
                (
                    rate(ws.HANDSHAKE_DURATION, (ws.ERROR_TYPE,), suffix="_count"),
                    legend((ws.HANDSHAKE_DURATION, ws.ERROR_TYPE), prefix="handshakes "),
                )
            ],
            span=8,
        ),
        ts_panel(
            "Connection lifetime",
            "Quantiles of connection duration, by close code",
            unit(ws.CONNECTION_DURATION),
            [
                (
                    quantile(q, ws.CONNECTION_DURATION, (ws.CLOSE_CODE,)),
                    legend((ws.CONNECTION_DURATION, ws.CLOSE_CODE), prefix=f"p{int(q * 100)} "),
                )
                for q in (0.5, 0.95)
            ],
        ),
        ts_panel(
            "Handshake duration",
            "Quantiles of the opening handshake",
            unit(ws.HANDSHAKE_DURATION),
            [(quantile(q, ws.HANDSHAKE_DURATION), f"p{int(q * 100)}") for q in QUANTILES],
        ),
    ]


def _messages() -> list[PanelBuilder]:
    return [
        ts_panel(
            "Messages in by op",
            "Inbound messages per second by op (unknown ops are counted as 'other')",
            rate_unit(ws.MESSAGES_RECEIVED),
            [(rate(ws.MESSAGES_RECEIVED, (ws.OP,)), OP_IN)],
            stacked=True,
        ),
        ts_panel(
            "Messages out by op",
            "Outbound messages per second by op",
            rate_unit(ws.MESSAGES_SENT),
            [(rate(ws.MESSAGES_SENT, (ws.OP,)), OP_OUT)],
            stacked=True,
        ),
        ts_panel(
            "Processing p95 by op",
            "95th percentile of the time to process one inbound message (its root span)",
            unit(ws.MESSAGE_DURATION),
            [(quantile(0.95, ws.MESSAGE_DURATION, (ws.OP,)), legend((ws.MESSAGE_DURATION, ws.OP)))],
            exemplars=True,
        ),
        ts_panel(
            "Failed messages by op and error",
            "Inbound messages whose processing ended in an error, per second",
            rate_unit(ws.MESSAGES_RECEIVED),
            [
                (
                    rate(ws.MESSAGES_RECEIVED, (ws.OP, ws.ERROR_TYPE), {ws.ERROR_TYPE: "!"}),
                    legend((ws.MESSAGES_RECEIVED, ws.OP), (ws.MESSAGES_RECEIVED, ws.ERROR_TYPE)),
                )
            ],
            exemplars=True,
        ),
    ]


def _sending() -> list[PanelBuilder]:
    return [
        ts_panel(
            "Send latency",
            "Quantiles of one send() over all ops: a slow consumer or a full socket buffer shows here",
            unit(ws.SEND_DURATION),
            [(quantile(q, ws.SEND_DURATION), f"p{int(q * 100)}") for q in QUANTILES],
            span=8,
        ),
        ts_panel(
            "Send p99 by op",
            "99th percentile of send() by outbound op",
            unit(ws.SEND_DURATION),
            [(quantile(0.99, ws.SEND_DURATION, (ws.OP,)), legend((ws.SEND_DURATION, ws.OP)))],
            span=8,
        ),
        ts_panel(
            "Inbound message size p95",
            "95th percentile of inbound payload size by op",
            unit(ws.MESSAGE_SIZE_HIST),
            [(quantile(0.95, ws.MESSAGE_SIZE_HIST, (ws.OP,)), legend((ws.MESSAGE_SIZE_HIST, ws.OP)))],
            span=4,
        ),
        ts_panel(
            "Bytes sent",
            "Outbound payload bytes per second by op",
            rate_unit(ws.BYTES_SENT),
            [(rate(ws.BYTES_SENT, (ws.OP,)), legend((ws.BYTES_SENT, ws.OP)))],
            span=4,
        ),
    ]


def _malformed() -> list[PanelBuilder]:
    return [
        ts_panel(
            "Malformed input and handler errors by reason",
            "Per second, by type: not_json, binary, too_large, invalid_utf8, ... (never crash the handler)",
            rate_unit(ws.ERRORS),
            [(rate(ws.ERRORS, (ws.ERROR_TYPE,)), legend((ws.ERRORS, ws.ERROR_TYPE)))],
            span=24,
            stacked=True,
        ),
    ]


def build() -> dashboard_models.Dashboard:
    """The ``sieve-websocket`` dashboard."""
    board = base_dashboard(
        WEBSOCKET_UID,
        "Sieve / WebSocket",
        "Connections, sessions, messages by op, processing and send latency, close codes, malformed input",
    )
    return assemble(
        board,
        [
            ("Now", _now()),
            ("Connections", _connections()),
            ("Messages", _messages()),
            ("Sending", _sending()),
            ("Malformed input", _malformed()),
        ],
    )
