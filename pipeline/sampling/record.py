"""What the buffer holds for an ended span: its data, without the SDK's span object around it.

A finished SDK span is a dozen objects the garbage collector tracks (the span, its ``__dict__``, the
``BoundedAttributes`` wrapper and its lock, the events and links ``BoundedList``s and their deques, ...). Buffered
for seconds, they all reach Python's oldest generation, and every full collection walks them: at high span rates
that cost more than deciding. :class:`BufferedSpan` keeps the fields a policy or an exporter reads - the
attributes dict, context, parent, status, times, events, links, resource, scope - in one slotted object, and the
SDK span is freed at intake. It answers the same property names as ``ReadableSpan``, so policies and
:func:`~pipeline.sampling.counting.stamp` (which builds the kept copy) read either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status
from opentelemetry.util.types import AttributeValue

_EMPTY: Mapping[str, AttributeValue] = {}


class BufferedSpan:
    """The data of one ended span (read-only by convention)."""

    __slots__ = (
        "attributes",
        "context",
        "dropped_attributes",
        "dropped_events",
        "dropped_links",
        "end_time",
        "events",
        "instrumentation_scope",
        "kind",
        "links",
        "name",
        "parent",
        "resource",
        "start_time",
        "status",
    )

    def __init__(self, span: ReadableSpan) -> None:
        try:  # the pinned SDK's fields: a third of the cost of its properties
            attributes: Any = span._attributes
            self.name: str = span._name
            self.context: SpanContext | None = span._context
            self.parent: SpanContext | None = span._parent
            self.kind: SpanKind = span._kind
            self.status: Status = span._status
            self.start_time: int | None = span._start_time
            self.end_time: int | None = span._end_time
            self.resource: Any = span._resource
            self.instrumentation_scope: Any = span._instrumentation_scope
            events, links = span._events, span._links
        except AttributeError:  # any other ReadableSpan
            attributes, events, links = span.attributes, span.events, span.links
            self.name, self.context, self.parent = span.name, span.context, span.parent
            self.kind, self.status = span.kind, span.status
            self.start_time, self.end_time = span.start_time, span.end_time
            self.resource, self.instrumentation_scope = span.resource, span.instrumentation_scope
        inner = getattr(attributes, "_dict", None)  # BoundedAttributes: keep the plain dict, not the wrapper
        self.attributes: Mapping[str, AttributeValue] = (
            inner if isinstance(inner, dict) else (attributes if attributes is not None else _EMPTY)
        )
        self.events: Sequence[Any] = tuple(events) if events else ()
        self.links: Sequence[Any] = tuple(links) if links else ()
        self.dropped_attributes: int = getattr(attributes, "dropped", 0) or 0
        self.dropped_events: int = getattr(events, "dropped", 0) or 0
        self.dropped_links: int = getattr(links, "dropped", 0) or 0

    def get_span_context(self) -> SpanContext | None:
        return self.context


SpanData = ReadableSpan | BufferedSpan  # what policies and the buffer read: either answers the same names
