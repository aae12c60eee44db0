"""Which metric series a kept span is an example of: the table the exemplar picker reads.

Each ``Source`` names a metric of ``pipeline.names`` and how a finished span maps to one of its series (the label
values, in the spec's label order) or to none. The mapping mirrors what records the metric:

* ``sieve.span.duration`` / ``sieve.span.errors``: every span, by name, kind and status (span metrics, recorded
  from 100 % of spans before sampling, ``pipeline/sampling/span_metrics.py``);
* ``websocket.server.message.duration`` / ``websocket.server.messages.received`` (its error series only): the
  message's SERVER span, by op and ``error.type`` (``collectors/_ws_messages.py`` records both from that span);
* ``db.client.operation.duration``: a repository operation's span, by system, operation, driver and
  ``error.type`` (``collectors/storage.py``).

A span that maps to a series its metric never recorded (a span name past the span-metrics cap, counted as
"other") simply finds no series at exposition: an exemplar is attached only where the series exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from pipeline.names import Kind, MetricSpec
from pipeline.names import sampling as sm
from pipeline.names import storage as st
from pipeline.names import websocket as ws

Labels = tuple[str, ...]


@dataclass(frozen=True)
class Source:
    """One metric that carries exemplars, and how a kept span maps to one of its series."""

    spec: MetricSpec
    labels: Callable[[ReadableSpan], Labels | None]  # the series' label values (spec.labels order), or None

    @property
    def is_histogram(self) -> bool:
        return self.spec.kind is Kind.HISTOGRAM

    @property
    def sample_name(self) -> str:
        """The exposition sample that carries the exemplar: a histogram's ``_bucket``, a counter's ``_total``."""
        return self.spec.prometheus_name + ("_bucket" if self.is_histogram else "")

    def key(self, labels: dict[str, str]) -> Labels:
        """The series key of an exposition sample's labels (missing labels read as empty, as Prometheus does)."""
        return tuple(labels.get(self.spec.prometheus_label(a), "") for a in self.spec.labels)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _span_duration(span: ReadableSpan) -> Labels | None:
    return span.name, span.kind.name, span.status.status_code.name


def _span_error(span: ReadableSpan) -> Labels | None:
    return (span.name, span.kind.name) if span.status.status_code is StatusCode.ERROR else None


def _message(span: ReadableSpan) -> Labels | None:
    attributes = span.attributes or {}
    op = attributes.get(ws.OP)
    if span.kind is not SpanKind.SERVER or not isinstance(op, str):
        return None
    return op, _text(attributes.get(ws.ERROR_TYPE))


def _message_error(span: ReadableSpan) -> Labels | None:
    labels = _message(span)
    return labels if labels is not None and labels[1] else None


def _operation(span: ReadableSpan) -> Labels | None:
    attributes = span.attributes or {}
    operation = attributes.get(st.DB_OPERATION)
    if st.EXECUTE_S not in attributes or not isinstance(operation, str):
        return None
    return (
        _text(attributes.get(st.DB_SYSTEM)),
        operation,
        _text(attributes.get(st.DRIVER)),
        _text(attributes.get(st.ERROR_TYPE)),
    )


SOURCES: tuple[Source, ...] = (
    Source(sm.SPAN_DURATION, _span_duration),
    Source(sm.SPAN_ERRORS, _span_error),
    Source(ws.MESSAGE_DURATION, _message),
    Source(ws.MESSAGES_RECEIVED, _message_error),
    Source(st.OPERATION_DURATION, _operation),
)
