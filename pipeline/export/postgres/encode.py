"""Pure encoding: SDK metric data, finished spans and application events to the JSON rows the insert functions take.

The keys of each row are the attribute names of ``monitoring.point_in`` / ``span_in`` / ``event_in``
(sql/0102). Timestamps are ISO 8601 strings in UTC with microseconds (Postgres' resolution): the same nanosecond
value always encodes to the same text, so a retried row hits the same natural key.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from pipeline.export.postgres.repair import clean_value
from pipeline.names.sampling import SPAN_ADJUSTED_COUNT, SPAN_PROBABILITY, SPAN_REASON
from pipeline.names.storage import PLAN

Row = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SAMPLING_KEYS = (SPAN_PROBABILITY, SPAN_ADJUSTED_COUNT, SPAN_REASON)
_MOVED_KEYS = (*_SAMPLING_KEYS, PLAN)  # attributes that get a column of their own


def _plan(value: Any) -> Any:
    """A captured EXPLAIN (FORMAT JSON) document: the span carries it as a JSON string; the column is jsonb."""
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:  # truncated by a span attribute length limit: keep it readable rather than lose it
        return {"unparsed": value}


def iso_from_ns(ns: int) -> str:
    """UTC ISO 8601 with microseconds, by integer arithmetic (no float rounding between retries)."""
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()


def finite(value: float | int | None) -> float | int | None:
    """JSON has no NaN or infinity (and jsonb refuses them): an empty histogram's min/max become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_value(value: Any) -> Any:
    """An OTel attribute value as JSON: sequences become lists, non-finite floats and bytes become strings."""
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Sequence):
        return [json_value(v) for v in value]
    return str(value)


def attributes(attrs: Mapping[str, Any] | None, drop: Iterable[str] = ()) -> dict[str, Any]:
    if not attrs:
        return {}
    skip = set(drop)
    return {str(k): json_value(v) for k, v in attrs.items() if k not in skip}


def dumps(obj: Any) -> str:
    """The one JSON encoder of the sink (spool lines and query parameters). ``default=str`` so an application's
    event payload holding a datetime or a Decimal does not fail the whole batch; anything else strict JSON has no
    form for (NaN, odd keys, cycles) goes through ``repair.clean_value``. The writer repairs strings (lone
    surrogates, NUL) before rows get here (``repair.repair_rows``)."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    except Exception:
        return json.dumps(clean_value(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# -- metrics ---------------------------------------------------------------------------------------------------


def points_from_metrics(data: MetricsData, on_error: Callable[[Metric, Exception], None] | None = None) -> list[Row]:
    """One row per data point of every metric in an export. With ``on_error``, a metric that fails to encode is
    reported there and skipped, and the others are still encoded; without it the error propagates."""
    rows: list[Row] = []
    for resource_metrics in data.resource_metrics:
        res = resource_metrics.resource.attributes
        base = {
            "service": str(res.get("service.name", "")),
            "instance": str(res.get("service.instance.id", "")),
        }
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope.name
            for metric in scope_metrics.metrics:
                try:
                    rows.extend(_metric_rows(metric, {**base, "scope": scope}))
                except Exception as exc:
                    if on_error is None:
                        raise
                    on_error(metric, exc)
    return rows


def _temporality(value: AggregationTemporality) -> str | None:
    if value is AggregationTemporality.CUMULATIVE:
        return "cumulative"
    if value is AggregationTemporality.DELTA:
        return "delta"
    return None


def _metric_rows(metric: Metric, base: Row) -> list[Row]:
    data = metric.data
    common = {**base, "name": metric.name, "unit": metric.unit or ""}
    rows: list[Row] = []
    if isinstance(data, Sum | Gauge):
        if isinstance(data, Sum):
            kind = "counter" if data.is_monotonic else "updowncounter"
            temporality = _temporality(data.aggregation_temporality)
        else:
            kind, temporality = "gauge", None
        for point in data.data_points:
            value = finite(point.value)
            if value is None:
                continue  # a NaN gauge reading carries nothing to store
            rows.append(
                {
                    **common,
                    "kind": kind,
                    "temporality": temporality,
                    "ts": iso_from_ns(point.time_unix_nano),
                    "start_ts": iso_from_ns(point.start_time_unix_nano) if point.start_time_unix_nano else None,
                    "attributes": attributes(point.attributes),
                    "value": value,
                }
            )
    elif isinstance(data, Histogram):
        temporality = _temporality(data.aggregation_temporality)
        rows.extend(
            {
                **common,
                "kind": "histogram",
                "temporality": temporality,
                "ts": iso_from_ns(hp.time_unix_nano),
                "start_ts": iso_from_ns(hp.start_time_unix_nano) if hp.start_time_unix_nano else None,
                "attributes": attributes(hp.attributes),
                "count": hp.count,
                "sum": finite(hp.sum),
                "min": finite(hp.min),
                "max": finite(hp.max),
                "bucket_bounds": list(hp.explicit_bounds),
                "bucket_counts": list(hp.bucket_counts),
            }
            for hp in data.data_points
        )
    elif isinstance(data, ExponentialHistogram):
        temporality = _temporality(data.aggregation_temporality)
        rows.extend(
            {
                **common,
                "kind": "exponential_histogram",
                "temporality": temporality,
                "ts": iso_from_ns(ep.time_unix_nano),
                "start_ts": iso_from_ns(ep.start_time_unix_nano) if ep.start_time_unix_nano else None,
                "attributes": attributes(ep.attributes),
                "count": ep.count,
                "sum": finite(ep.sum),
                "min": finite(ep.min),
                "max": finite(ep.max),
                "exponential": {
                    "scale": ep.scale,
                    "zero_count": ep.zero_count,
                    "positive": {"offset": ep.positive.offset, "bucket_counts": list(ep.positive.bucket_counts)},
                    "negative": {"offset": ep.negative.offset, "bucket_counts": list(ep.negative.bucket_counts)},
                },
            }
            for ep in data.data_points
        )
    return rows


# -- spans -----------------------------------------------------------------------------------------------------

_STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return finite(float(value))


def span_row(span: ReadableSpan) -> Row | None:
    """A finished span as a row, or None for a span with no context or no start (nothing to key it by).

    The sampler's ``sieve.sampling.*`` attributes move to their own columns; when only the probability is present
    the adjusted count is derived from it. A plan captured for a slow read (``sieve.db.plan``) moves to
    ``explain_plan``.
    """
    ctx = span.context
    if ctx is None or span.start_time is None:
        return None
    attrs = span.attributes or {}
    probability = _number(attrs.get(SPAN_PROBABILITY))
    adjusted = _number(attrs.get(SPAN_ADJUSTED_COUNT))
    if adjusted is None and probability:
        adjusted = 1.0 / probability
    reason = attrs.get(SPAN_REASON)
    end = span.end_time if span.end_time is not None else span.start_time
    return {
        "start_ts": iso_from_ns(span.start_time),
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "status_code": _STATUS.get(span.status.status_code, "unset"),
        "status_message": span.status.description,
        "duration_ms": max(0, end - span.start_time) / 1e6,
        "service": str(span.resource.attributes.get("service.name", "")),
        "attributes": attributes(attrs, drop=_MOVED_KEYS),
        "sampling_probability": probability,
        "adjusted_count": adjusted,
        "sampling_reason": str(reason) if reason is not None else None,
        "explain_plan": _plan(attrs.get(PLAN)),
    }


# -- events ----------------------------------------------------------------------------------------------------


def event_row(type_: str, data: Mapping[str, Any], time_ns: int, source: str = "") -> Row:
    """An application event; its id is drawn here, once, so a retried or replayed batch keeps it."""
    return {
        "id": str(uuid.uuid4()),
        "ts": iso_from_ns(time_ns),
        "type": type_,
        "data": dict(data),  # a shallow copy: the caller may go on mutating its dict
        "source": source,
    }
