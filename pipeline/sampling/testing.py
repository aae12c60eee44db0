"""Fakes for testing sampling logic without threads, sleeps or a real exporter (shipped, like the SDK's
``InMemorySpanExporter``): a manual clock, a finished-span factory and a recording downstream processor.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import AttributeValue

DEFAULT_RESOURCE = Resource({"service.name": "demo"})
_span_ids = itertools.count(1)


class FakeClock:
    """A monotonic clock you move by hand: ``clock()`` reads it, ``advance(s)`` moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def make_span(
    trace_id: int,
    name: str = "op",
    *,
    parent: int | None = None,
    remote_parent: bool = False,
    status: StatusCode = StatusCode.UNSET,
    attributes: Mapping[str, AttributeValue] | None = None,
    start_ns: int = 1_000_000_000,
    duration_ms: float = 1.0,
    resource: Resource = DEFAULT_RESOURCE,
    trace_state: TraceState | None = None,
    sampled_flag: bool = True,
    kind: SpanKind = SpanKind.INTERNAL,
    span_id: int | None = None,
) -> ReadableSpan:
    """A finished span. ``parent`` is a parent span id in the same trace (``remote_parent`` marks it remote)."""
    flags = TraceFlags(TraceFlags.SAMPLED if sampled_flag else TraceFlags.DEFAULT)
    state = trace_state or TraceState()
    context = SpanContext(trace_id, span_id or next(_span_ids), False, flags, state)
    parent_ctx = None
    if parent is not None or remote_parent:
        parent_ctx = SpanContext(trace_id, parent or next(_span_ids), remote_parent, flags, state)
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent_ctx,
        resource=resource,
        attributes=dict(attributes or {}),
        kind=kind,
        status=Status(status),
        start_time=start_ns,
        end_time=start_ns + int(duration_ms * 1_000_000),
    )


def make_trace(
    trace_id: int,
    *,
    children: int = 2,
    error: bool = False,
    duration_ms: float = 10.0,
    root_name: str = "root",
    attributes: Mapping[str, AttributeValue] | None = None,
) -> list[ReadableSpan]:
    """A local root with ``children`` children (children first, root last, as they end in practice)."""
    root_id = next(_span_ids)
    spans = [
        make_span(
            trace_id,
            f"child-{i}",
            parent=root_id,
            status=StatusCode.ERROR if error and i == 0 else StatusCode.UNSET,
            duration_ms=duration_ms / 2,
        )
        for i in range(children)
    ]
    spans.append(make_span(trace_id, root_name, span_id=root_id, duration_ms=duration_ms, attributes=attributes))
    return spans


class RecordingProcessor(SpanProcessor):
    """A downstream that records what it receives."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.flushed = 0
        self.is_shutdown = False

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushed += 1
        return True

    def shutdown(self) -> None:
        self.is_shutdown = True

    def trace_ids(self) -> set[int]:
        return {s.context.trace_id for s in self.spans if s.context is not None}
