"""A small OTLP/HTTP receiver on loopback, for tests that must see what an exporter really sends.

It speaks the OTLP/HTTP binary protocol (``application/x-protobuf``; ``gzip`` or ``deflate`` when the exporter
compresses): ``POST /v1/traces`` is decoded with the proto package's ``ExportTraceServiceRequest`` and answered
``200`` with an empty ``ExportTraceServiceResponse``, as a Collector would. ``/v1/metrics`` and ``/v1/logs`` are
accepted and decoded too (the pipeline sends them to the same endpoint), and only counted. Anything else is
refused with the status a Collector answers (404, 405, 415, 400), and counted, so a test can assert that nothing
was refused.

Nothing here uses the SDK's span classes: spans are read back from the protobuf alone.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status

PROTOBUF = "application/x-protobuf"
_SIGNALS: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
}
STATUS_ERROR = Status.STATUS_CODE_ERROR
STATUS_OK = Status.STATUS_CODE_OK


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived: ids as integers (as the SDK has them), attributes decoded to Python values."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    name: str
    kind: int
    status_code: int
    trace_state: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    parent_is_remote: bool = False

    @property
    def is_error(self) -> bool:
        return self.status_code == STATUS_ERROR

    @property
    def is_local_root(self) -> bool:
        """No parent, or a remote one (OTLP span flags, bits 8-9): the root of the sending process's part."""
        return self.parent_span_id is None or self.parent_is_remote

    def tracestate_member(self, key: str) -> str | None:
        for member in self.trace_state.split(","):
            k, _, v = member.strip().partition("=")
            if k == key:
                return v
        return None


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return key_values(value.kvlist_value.values)
    return getattr(value, kind)


def key_values(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    item: KeyValue
    for item in items:
        out[item.key] = any_value(item.value)
    return out


def _span(span: Span, resource: dict[str, Any], scope: str) -> ReceivedSpan:
    parent = int.from_bytes(span.parent_span_id, "big") if span.parent_span_id else None
    return ReceivedSpan(
        trace_id=int.from_bytes(span.trace_id, "big"),
        span_id=int.from_bytes(span.span_id, "big"),
        parent_span_id=parent,
        name=span.name,
        kind=span.kind,
        status_code=span.status.code,
        trace_state=span.trace_state,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        attributes=key_values(span.attributes),
        resource=resource,
        scope=scope,
        parent_is_remote=bool(span.flags & SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
        and bool(span.flags & SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK),
    )


@dataclass
class Received:
    """What the receiver got, per signal; ``refused`` counts requests answered with an error, by status."""

    requests: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    encodings: Counter[str] = field(default_factory=Counter)
    refused: Counter[int] = field(default_factory=Counter)
    spans: list[ReceivedSpan] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's requests session expects

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: a test's output is not an access log

    def _answer(self, status: int, body: bytes = b"", content_type: str = PROTOBUF) -> None:
        if status != 200:  # counted before the client can see the answer
            self.server.receiver.refuse(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._drain()
        self._answer(405, b"POST only", "text/plain")

    def _drain(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        body = self._drain()
        path = self.path.split("?", 1)[0]
        signal = _SIGNALS.get(path)
        if signal is None:
            self._answer(404, b"unknown path", "text/plain")
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != PROTOBUF:
            self._answer(415, b"application/x-protobuf only", "text/plain")
            return
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding != "identity":
                self._answer(415, b"unsupported Content-Encoding", "text/plain")
                return
            request_type, response_type = signal
            request = request_type()
            request.ParseFromString(body)
        except (OSError, zlib.error, DecodeError) as exc:
            self._answer(400, str(exc).encode(), "text/plain")
            return
        self.server.receiver.accept(path, encoding, request)
        self._answer(200, response_type().SerializeToString())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: OtlpReceiver


class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` ... ``settings.otlp.endpoint = receiver.endpoint``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._lock = threading.Lock()
        self._received = Received()

    @property
    def endpoint(self) -> str:
        """The base URL exporters append ``/v1/traces`` (etc.) to."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def accept(self, path: str, encoding: str, request: Message) -> None:
        spans: list[ReceivedSpan] = []
        if isinstance(request, ExportTraceServiceRequest):
            for resource_spans in request.resource_spans:
                resource = key_values(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    scope = scope_spans.scope.name
                    spans.extend(_span(s, resource, scope) for s in scope_spans.spans)
            items = len(spans)
        elif isinstance(request, ExportMetricsServiceRequest):
            items = sum(len(sm.metrics) for rm in request.resource_metrics for sm in rm.scope_metrics)
        else:
            assert isinstance(request, ExportLogsServiceRequest)
            items = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        with self._lock:
            r = self._received
            r.requests[path] += 1
            r.items[path] += items
            r.encodings[encoding] += 1
            r.spans.extend(spans)

    def refuse(self, status: int) -> None:
        with self._lock:
            self._received.refused[status] += 1

    def snapshot(self) -> Received:
        """A copy of what arrived so far."""
        with self._lock:
            r = self._received
            return Received(Counter(r.requests), Counter(r.items), Counter(r.encodings), Counter(r.refused), [*r.spans])

    @property
    def spans(self) -> list[ReceivedSpan]:
        return self.snapshot().spans
