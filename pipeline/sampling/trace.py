"""A read-only view of one buffered trace, handed to every policy at decision time.

Derived values (duration, root span, error flag) are computed once, on first use, because several policies ask
for the same thing and a decision must stay cheap (a few microseconds per trace).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType

from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from pipeline.sampling.fnv import fnv1a64
from pipeline.sampling.nplusone import Repetition, detect
from pipeline.sampling.record import BufferedSpan, SpanData

SERVICE_NAME = "service.name"
ERROR_TYPE = "error.type"
UNKNOWN_SERVICE = "unknown_service"

# Rough per-span wire cost used by bytes_limiting: the Collector measures the marshalled protobuf size, which a
# Python process cannot get cheaply; ids, timestamps, kind, status and framing come to roughly this many bytes.
SPAN_OVERHEAD_BYTES = 64
_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})


def is_local_root(span: SpanData) -> bool:
    """True for a span with no parent or a remote parent: the root of this process's part of the trace."""
    parent = span.parent
    return parent is None or parent.is_remote


class TraceView:
    """The spans of one trace as buffered so far, with cached derived values."""

    __slots__ = (
        "_attributes",
        "_codes",
        "_duration_ns",
        "_error",
        "_hashes",
        "_incident",
        "_key",
        "_n_plus_one",
        "_resources",
        "_root",
        "_size",
        "_values",
        "spans",
        "trace_id",
    )

    def __init__(self, trace_id: int, spans: Sequence[SpanData], root: SpanData | None = None) -> None:
        """``root``: the trace's local root when the caller already knows it (the buffer sees it end)."""
        self.trace_id = trace_id
        self.spans = spans
        self._duration_ns: int | None = None
        self._error: bool | None = None
        self._incident: tuple[frozenset[str], bool] | None = None
        self._root: SpanData | None = root
        self._size: int | None = None
        self._hashes: dict[str, int] | None = None
        self._codes: tuple[StatusCode, ...] | None = None
        self._attributes: tuple[Mapping[str, AttributeValue], ...] | None = None
        self._resources: tuple[Mapping[str, AttributeValue], ...] | None = None
        self._key: tuple[str, str] | None = None
        self._values: dict[str, list[AttributeValue]] | None = None
        self._n_plus_one: tuple[tuple[int, int], tuple[Repetition, ...]] | None = None

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
    def status_codes(self) -> tuple[StatusCode, ...]:
        """Every span's status code (read once per trace: several policies ask)."""
        if self._codes is None:
            self._codes = tuple(s.status.status_code for s in self.spans)
        return self._codes

    @property
    def span_attributes(self) -> tuple[Mapping[str, AttributeValue], ...]:
        """Every span's attributes (read once per trace)."""
        if self._attributes is None:
            self._attributes = tuple(_span_attributes(s) for s in self.spans)
        return self._attributes

    @property
    def resource_attributes(self) -> tuple[Mapping[str, AttributeValue], ...]:
        """The attributes of the trace's distinct resources (usually one)."""
        if self._resources is None:
            spans = self.spans
            first = spans[0].resource if spans else None
            if first is None or all(s.resource is first for s in spans):  # the usual case: one resource
                self._resources = (_plain(first.attributes),) if first is not None else ()
            else:
                seen: dict[int, Mapping[str, AttributeValue]] = {}
                for span in spans:
                    resource = span.resource
                    if id(resource) not in seen:
                        seen[id(resource)] = _plain(resource.attributes)
                self._resources = tuple(seen.values())
        return self._resources

    def hash64(self, salt: str) -> int:
        """The Collector's FNV-1a hash of ``salt`` and the trace id, computed once per trace and salt."""
        cache = self._hashes
        if cache is None:
            cache = self._hashes = {}
        h = cache.get(salt)
        if h is None:
            h = cache[salt] = fnv1a64(salt, self.trace_id)
        return h

    def uniform(self, salt: str) -> float:
        """The trace's uniform for ``salt``: its hash / 2^64 (what every random vote draws from)."""
        return self.hash64(salt) / 18446744073709551616.0

    def values_of(self, key: str) -> list[AttributeValue]:
        """Every value of attribute ``key`` on the trace's resources, then its spans (computed once per key)."""
        values = self._values
        if values is None:
            values = self._values = {}
        found = values.get(key)
        if found is None:
            found = [a[key] for a in self.resource_attributes if key in a]
            found += [a[key] for a in self.span_attributes if key in a]
            values[key] = found
        return found

    def n_plus_one(self, min_count: int, min_total_ns: int = 0) -> tuple[Repetition, ...]:
        """The trace's N+1 loops (:mod:`pipeline.sampling.nplusone`), found once per trace and thresholds: the
        ``n_plus_one`` policy votes on them and the engine marks a kept trace's spans with them."""
        cached = self._n_plus_one
        if cached is None or cached[0] != (min_count, min_total_ns):
            found = detect(self.spans, self.span_attributes, min_count=min_count, min_total_ns=min_total_ns)
            cached = self._n_plus_one = ((min_count, min_total_ns), found)
        return cached[1]

    @property
    def has_error(self) -> bool:
        if self._error is None:
            self._error = StatusCode.ERROR in self.status_codes
        return self._error

    def has_incident_error(self, ignored: frozenset[str]) -> bool:
        """An error span whose ``error.type`` is not one of ``ignored`` (client input such as malformed
        messages is an error of the request, not an incident of the service)."""
        if not ignored or not self.has_error:
            return self.has_error
        cached = self._incident
        if cached is None or cached[0] is not ignored:
            found = any(
                code is StatusCode.ERROR and attrs.get(ERROR_TYPE) not in ignored
                for code, attrs in zip(self.status_codes, self.span_attributes, strict=True)
            )
            cached = self._incident = (ignored, found)
        return cached[1]

    @property
    def root(self) -> SpanData | None:
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
    def key(self) -> tuple[str, str]:
        """``(service, root operation)``: the key of the error signal and the effective keep rates."""
        if self._key is None:
            self._key = (self.service, self.root_name)
        return self._key

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

    def resources(self) -> Iterator[Mapping[str, AttributeValue]]:
        """Distinct resources of the trace's spans (usually one), as attribute mappings."""
        return iter(self.resource_attributes)


def _span_attributes(span: SpanData) -> Mapping[str, AttributeValue]:
    """A span's attributes without the ``MappingProxyType`` the SDK's property wraps them in on every access."""
    if type(span) is BufferedSpan:
        return span.attributes
    inner = getattr(span, "_attributes", None)
    if isinstance(inner, dict):
        return inner
    if inner is not None:
        return _plain(inner)
    return _plain(span.attributes)


def _plain(attributes: Mapping[str, AttributeValue] | None) -> Mapping[str, AttributeValue]:
    """The plain dict behind the SDK's ``BoundedAttributes`` (a ``MutableMapping`` whose ``in`` and ``get`` go
    through Python-level ``__getitem__``); any other mapping as it is. Read-only use."""
    inner = getattr(attributes, "_dict", None)
    if isinstance(inner, dict):
        return inner
    return attributes if attributes is not None else _EMPTY


def span_size(span: SpanData) -> int:
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
