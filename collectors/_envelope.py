"""Reading a message envelope without trusting it, and keeping metric labels bounded.

A WebSocket peer controls every byte it sends: the op name, the request id, the traceparent. Nothing from a
message becomes a metric label or a span name unless it is in a bounded set, and parsing never raises.

How much is read depends on the service's protocol (``websocket.envelope``):

* ``none``: nothing; every message is opaque and ordinary (text, binary, any framing);
* ``json``: a JSON object's op, request id and traceparent when the message is one; anything else is ordinary;
* ``json_strict``: the protocol is JSON: a message that is not a JSON object with an op is malformed, and the
  envelope says why (``not_json``, ``not_object``, ``binary``, ``invalid_utf8``, ``too_large``, ``missing_op``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

EnvelopeMode = Literal["none", "json", "json_strict"]
OTHER = "other"
INVALID = "invalid"
_MAX_ATTR_CHARS = 128
_OBJECT_START = re.compile(r"\s*\{")


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


def message_size(data: str | bytes) -> int:
    """Bytes on the wire (UTF-8), without encoding a text message: ASCII text is one byte a character."""
    if isinstance(data, bytes):
        return len(data)
    if data.isascii():
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def _unread(size: int, error: str | None, strict: bool) -> Envelope:
    return Envelope(size, None, None, error if strict else None, None, None, None)


def read_envelope(
    data: str | bytes,
    *,
    max_bytes: int,
    op_field: str = "op",
    traceparent_field: str = "traceparent",
    allow_binary: bool = False,
    mode: EnvelopeMode = "json_strict",
) -> Envelope:
    size = message_size(data)
    if mode == "none":
        return Envelope(size, None, None, None, None, None, None)
    strict = mode == "json_strict"
    if size > max_bytes:
        # Do not pay for parsing what we will refuse (or would only skim) anyway.
        return _unread(size, "too_large", strict)
    if isinstance(data, bytes):
        if strict and not allow_binary:
            return _unread(size, "binary", strict)
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return _unread(size, "invalid_utf8", strict)
    if not strict and _OBJECT_START.match(data) is None:
        return _unread(size, None, strict)  # plainly not a JSON object: no parse attempt
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return _unread(size, "not_json", strict)
    if not isinstance(body, dict):
        return _unread(size, "not_object", strict)
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
        error=None if op or not strict else "missing_op",
        request_id=_text(body.get("request_id")),
        traceparent=traceparent,
        tracestate=tracestate,
    )


def _text(value: object, limit: int = _MAX_ATTR_CHARS) -> str | None:
    if isinstance(value, str) and value:
        # JSON may carry lone surrogates ("\ud800"); an exporter's UTF-8 encoding would refuse the whole batch.
        text = value[:limit]
        return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")
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
