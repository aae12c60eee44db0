"""A read-only view of one buffered trace, handed to every policy at decision time.

Derived values (duration, root span, error flag) are computed once, on first use, because several policies ask
for the same thing and a decision must stay cheap (a few microseconds per trace).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

SERVICE_NAME = "service.name"
ERROR_TYPE = "error.type"
UNKNOWN_SERVICE = "unknown_service"

# Rough per-span wire cost used by bytes_limiting: the Collector measures the marshalled protobuf size, which a
# Python process cannot get cheaply; ids, timestamps, kind, status and framing come to roughly this many bytes.
SPAN_OVERHEAD_BYTES = 64


def is_local_root(span: ReadableSpan) -> bool:
    """True for a span with no parent or a remote parent: the root of this process's part of the trace."""
    parent = span.parent
    return parent is None or parent.is_remote


class TraceView:
    """The spans of one trace as buffered so far, with cached derived values."""

    __slots__ = ("_duration_ns", "_error", "_incident", "_root", "_size", "spans", "trace_id")

    def __init__(self, trace_id: int, spans: Sequence[ReadableSpan]) -> None:
        self.trace_id = trace_id
        self.spans = spans
        self._duration_ns: int | None = None
        self._error: bool | None = None
        self._incident: tuple[frozenset[str], bool] | None = None
        self._root: ReadableSpan | None = None
        self._size: int | None = None

    @property
    def span_count(self) -> int:
        return len(self.spans)

    @property
    def duration_ns(self) -> int:
        """Latest end minus earliest start, as the Collector's ``latency`` policy measures it."""
        if self._duration_ns is None:
            starts = [s.start_time for s in self.spans if s.start_time is not None]
            ends = [s.end_time for s in self.spans if s.end_time is not None]
            self._duration_ns = max(ends) - min(starts) if starts and ends else 0
        return self._duration_ns

    @property
    def has_error(self) -> bool:
        if self._error is None:
            self._error = any(s.status.status_code is StatusCode.ERROR for s in self.spans)
        return self._error

    def has_incident_error(self, ignored: frozenset[str]) -> bool:
        """An error span whose ``error.type`` is not one of ``ignored`` (client input such as malformed
        messages is an error of the request, not an incident of the service)."""
        if not ignored or not self.has_error:
            return self.has_error
        cached = self._incident
        if cached is None or cached[0] is not ignored:
            found = any(
                s.status.status_code is StatusCode.ERROR and (s.attributes or {}).get(ERROR_TYPE) not in ignored
                for s in self.spans
            )
            cached = self._incident = (ignored, found)
        return cached[1]

    @property
    def root(self) -> ReadableSpan | None:
        """The earliest-starting local root span, else the earliest-starting span."""
        if self._root is None and self.spans:
            roots = [s for s in self.spans if is_local_root(s)] or list(self.spans)
            self._root = min(roots, key=lambda s: s.start_time or 0)
        return self._root

    @property
    def root_name(self) -> str:
        root = self.root
        return root.name if root is not None else ""

    @property
    def service(self) -> str:
        root = self.root
        if root is None:
            return UNKNOWN_SERVICE
        value = root.resource.attributes.get(SERVICE_NAME)
        return str(value) if value is not None else UNKNOWN_SERVICE

    @property
    def status_name(self) -> str:
        """``ERROR`` when any span failed, else the root span's status code name."""
        if self.has_error:
            return StatusCode.ERROR.name
        root = self.root
        return root.status.status_code.name if root is not None else StatusCode.UNSET.name

    @property
    def size_bytes(self) -> int:
        """An estimate of the trace's OTLP size, for ``bytes_limiting``."""
        if self._size is None:
            self._size = sum(span_size(span) for span in self.spans)
        return self._size

    def resources(self) -> Iterator[dict[str, AttributeValue]]:
        """Distinct resources of the trace's spans (usually one), as attribute mappings."""
        seen: set[int] = set()
        for span in self.spans:
            resource = span.resource
            if id(resource) not in seen:
                seen.add(id(resource))
                yield dict(resource.attributes)


def span_size(span: ReadableSpan) -> int:
    """An estimate of one span's OTLP size in bytes."""
    total = SPAN_OVERHEAD_BYTES + len(span.name)
    for key, value in (span.attributes or {}).items():
        total += len(key) + _value_size(value)
    for event in span.events:
        total += 16 + len(event.name)
    return total


def _value_size(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, tuple | list):
        return sum(_value_size(v) for v in value)
    return 8
