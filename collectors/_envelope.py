"""Reading a message envelope without trusting it, and keeping metric labels bounded.

A WebSocket peer controls every byte it sends: the op name, the request id, the traceparent. Nothing from a
message becomes a metric label or a span name unless it is in a bounded set, and parsing never raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

OTHER = "other"
INVALID = "invalid"
_MAX_ATTR_CHARS = 128


@dataclass(frozen=True)
class Envelope:
    """What the instrumentation learned from one inbound message."""

    size: int
    body: dict[str, Any] | None  # the parsed JSON object, when it is one
    op: str | None  # the raw op, truncated; None when absent
    error: str | None  # not_json | not_object | binary | too_large | missing_op, or None
    request_id: str | None
    traceparent: str | None
    tracestate: str | None


def read_envelope(
    data: str | bytes,
    *,
    max_bytes: int,
    op_field: str = "op",
    traceparent_field: str = "traceparent",
    allow_binary: bool = False,
) -> Envelope:
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        # Do not pay for parsing what we will refuse anyway.
        return Envelope(size, None, None, "too_large", None, None, None)
    if isinstance(data, bytes):
        if not allow_binary:
            return Envelope(size, None, None, "binary", None, None, None)
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return Envelope(size, None, None, "invalid_utf8", None, None, None)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return Envelope(size, None, None, "not_json", None, None, None)
    if not isinstance(body, dict):
        return Envelope(size, None, None, "not_object", None, None, None)
    op = body.get(op_field)
    op = _text(op)
    raw_meta = body.get("_meta")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    traceparent = _text(body.get(traceparent_field) or meta.get(traceparent_field))
    tracestate = _text(body.get("tracestate") or meta.get("tracestate"), 512)
    return Envelope(
        size=size,
        body=body,
        op=op,
        error=None if op else "missing_op",
        request_id=_text(body.get("request_id")),
        traceparent=traceparent,
        tracestate=tracestate,
    )


def _text(value: object, limit: int = _MAX_ATTR_CHARS) -> str | None:
    if isinstance(value, str) and value:
        return value[:limit]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)[:limit]
    return None


class BoundedLabel:
    """Maps untrusted values onto a bounded label set.

    With ``allowed`` the set is fixed; without it the first ``limit`` distinct values seen are kept and the
    rest become ``"other"`` (so a peer inventing op names cannot grow the metric series without bound).
    """

    def __init__(self, allowed: Iterable[str] | None = None, limit: int = 64) -> None:
        self._fixed = allowed is not None
        self._values: set[str] = set(allowed or ())
        self._limit = limit

    def __call__(self, value: str | None) -> str:
        if value is None:
            return INVALID
        if value in self._values:
            return value
        if not self._fixed and len(self._values) < self._limit:
            self._values.add(value)
            return value
        return OTHER
