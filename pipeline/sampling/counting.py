"""Adjusted counts on kept spans: readable attributes plus the specification's ``ot=th`` threshold.

``th`` (OpenTelemetry "tracestate probability sampling"): rejection threshold ``T = (1 - p) * 2^56`` as up to 14
hex digits with trailing zeros removed (``th:0`` = 100 %, ``th:8`` = 50 %, ``th:c`` = 25 %). A kept span's
probability is the tail decision's probability times any upstream probability already in its tracestate
(stages multiply; the threshold only ever rises).

A finished ``ReadableSpan`` is immutable, so kept spans are re-created with the new context and attributes; the
copy keeps the original's dropped attribute/event/link counts.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceState
from opentelemetry.util.types import AttributeValue

from pipeline.names import sampling as names
from pipeline.sampling.record import SpanData

RANDOM_BITS = 56
MAX_THRESHOLD = 1 << RANDOM_BITS
OT_KEY = "ot"
_HEX_DIGITS = RANDOM_BITS // 4


def threshold_for(probability: float) -> int:
    """The 56-bit rejection threshold for a keep probability in (0, 1]."""
    p = min(1.0, max(0.0, probability))
    return min(MAX_THRESHOLD - 1, max(0, MAX_THRESHOLD - round(p * MAX_THRESHOLD)))


def encode_threshold(threshold: int) -> str:
    """``th`` value: 14 hex digits, trailing zeros trimmed, ``0`` for 100 %."""
    if threshold <= 0:
        return "0"
    return f"{threshold:0{_HEX_DIGITS}x}".rstrip("0")


def decode_threshold(text: str) -> int | None:
    if not text or len(text) > _HEX_DIGITS:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value << (4 * (_HEX_DIGITS - len(text)))


def probability_of(threshold: int) -> float:
    return (MAX_THRESHOLD - threshold) / MAX_THRESHOLD


def _split_ot(value: str) -> tuple[int | None, list[str]]:
    threshold: int | None = None
    rest: list[str] = []
    for member in value.split(";") if value else []:
        if member.startswith("th:"):
            threshold = decode_threshold(member[3:])
        elif member:
            rest.append(member)
    return threshold, rest


def upstream_probability(trace_state: TraceState) -> float:
    """The probability an earlier stage recorded in ``ot=th``, else 1."""
    value = trace_state.get(OT_KEY)
    if not value:
        return 1.0
    threshold, _ = _split_ot(value)
    return 1.0 if threshold is None else probability_of(threshold)


def with_probability(trace_state: TraceState, probability: float) -> TraceState:
    """``trace_state`` with ``ot=th`` set for ``probability``, other ``ot`` members (e.g. ``rv``) kept."""
    _, rest = _split_ot(trace_state.get(OT_KEY) or "")
    ot = ";".join([f"th:{encode_threshold(threshold_for(probability))}", *rest])
    if OT_KEY in trace_state:
        return trace_state.update(OT_KEY, ot)
    return trace_state.add(OT_KEY, ot)


class SampledSpan(ReadableSpan):
    """A kept span's copy: same data, new context and attributes, original dropped counts."""

    def __init__(
        self, original: SpanData, context: SpanContext | None, attributes: Mapping[str, AttributeValue] | None
    ) -> None:
        super().__init__(
            name=original.name,
            context=context,
            parent=original.parent,
            resource=original.resource,
            attributes=attributes,
            events=original.events,
            links=original.links,
            kind=original.kind,
            status=original.status,
            start_time=original.start_time,
            end_time=original.end_time,
            instrumentation_scope=original.instrumentation_scope,
        )
        self._dropped_attributes = original.dropped_attributes
        self._dropped_events = original.dropped_events
        self._dropped_links = original.dropped_links

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        return self._dropped_links


def stamp(
    span: SpanData,
    probability: float,
    reason: str,
    *,
    cached: bool = False,
    marks: Mapping[int, Mapping[str, AttributeValue]] | None = None,
) -> ReadableSpan:
    """A copy of ``span`` carrying its effective keep probability, adjusted count and reason, plus the ``marks``
    (:attr:`~pipeline.sampling.decision.Verdict.marks`) for its span id, if any."""
    ctx = span.context
    if ctx is None:
        return span if isinstance(span, ReadableSpan) else SampledSpan(span, ctx, span.attributes)
    p = probability * upstream_probability(ctx.trace_state)
    new_ctx = SpanContext(
        trace_id=ctx.trace_id,
        span_id=ctx.span_id,
        is_remote=ctx.is_remote,
        trace_flags=ctx.trace_flags,
        trace_state=with_probability(ctx.trace_state, p),
    )
    attributes: dict[str, AttributeValue] = dict(span.attributes or {})
    attributes[names.SPAN_PROBABILITY] = p
    attributes[names.SPAN_ADJUSTED_COUNT] = 1.0 / p if p > 0 else 0.0
    attributes[names.SPAN_REASON] = reason
    if cached:
        attributes[names.SPAN_CACHED_DECISION] = True
    if marks:
        extra = marks.get(ctx.span_id)
        if extra:
            attributes.update(extra)
    return SampledSpan(span, new_ctx, attributes)
