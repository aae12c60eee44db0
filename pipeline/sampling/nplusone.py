"""The in-process N+1 detector: one statement shape executed N or more times, one after another, under one parent.

Pure: spans and their attributes in, :class:`Repetition` values out; no I/O, no clock. It runs on the sampler's
worker thread for every decided trace when the ``n_plus_one`` policy is configured
(:mod:`pipeline.sampling.policies.nplusone`), so it is one pass over the trace's attributes (already read once
per trace by the attribute policies) and stops there when the trace has fewer than ``min_count`` database spans
and no operation that looped inside itself.

Two shapes of the same loop are counted, as ``monitoring.get_n_plus_one_groups`` (sql/functions/50_slow_lookups.sql)
counts them in stored spans:

* **siblings**: ``min_count`` or more spans carrying one ``sieve.db.fingerprint`` under one parent span - a loop of
  repository calls (operation spans) or of driver statement spans (``opentelemetry-instrument`` apps, or statement
  spans inside an operation);
* **inside one operation**: an operation span whose ``sieve.db.repeats`` (the most times one statement shape ran
  in it) is ``min_count`` or more - a loop inside one repository call, whose statements are no spans of their own.
  The operation is the loop's parent; its fingerprint is the one reported (the operation's slowest statement,
  which is the repeated one whenever the loop is most of what the operation ran). Skipped when the statements
  are spans of their own under it: the siblings rule counts them.

"One after another" is the SQL's test: the repeated spans' durations add up to no more than the time from the
first one's start to the last one's end, so they did not run concurrently (an ``asyncio.gather`` of lookups is
a fan-out, not an N+1). Statements inside one operation share one connection and are sequential by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.util.types import AttributeValue

from pipeline.names import storage as names
from pipeline.sampling.record import SpanData

# Sentry's N+1 DB span detector defaults (src/sentry/options/defaults.py): performance.issues.n_plus_one_db
# .count_threshold 5 and .duration_threshold 50 ms (100 ms in earlier releases). The count is the SQL report's
# default too (pipeline/slowlookups/query.py N_PLUS_ONE_MIN_COUNT). The time is not required by default, like the
# report: an N+1 costs round trips, ~0.5 ms each next to the database and 1-50 ms across a network, so the count
# is what survives moving the database; set ``min_total_duration_ms: 50`` for Sentry's behaviour.
DEFAULT_MIN_COUNT = 5
DEFAULT_MIN_TOTAL_DURATION_MS = 0.0
SENTRY_DURATION_THRESHOLD_MS = 50.0
EXPLAIN_SPAN = "EXPLAIN"  # plan captures (collectors/_explain.py) carry the fingerprint they explain: not executions


@dataclass(frozen=True, slots=True)
class Repetition:
    """One detected loop: ``count`` executions of ``fingerprint`` under the span ``parent_span_id``."""

    parent_span_id: int
    fingerprint: str
    count: int
    span_ids: tuple[int, ...]  # the repeated spans; inside one operation: that operation's span alone
    total_ns: int  # time in the repeated statements (inside one operation: its statements' time)
    inside_operation: bool = False


def detect(
    spans: Sequence[SpanData],
    attributes: Sequence[Mapping[str, AttributeValue]],
    *,
    min_count: int = DEFAULT_MIN_COUNT,
    min_total_ns: int = 0,
) -> tuple[Repetition, ...]:
    """The N+1 loops of one trace; ``attributes[i]`` are ``spans[i]``'s attributes (``TraceView.span_attributes``)."""
    fingerprint = names.FINGERPRINT
    db = [i for i, attrs in enumerate(attributes) if fingerprint in attrs]  # the one pass over the trace
    repeats_key = names.REPEATS  # set on an operation only when a shape ran more than once in it: rare
    inside = [i for i in db if repeats_key in attributes[i] and _int(attributes[i][repeats_key]) >= min_count]
    if len(db) < min_count and not inside:
        return ()
    groups: dict[tuple[int, str], list[int]] = {}
    if len(db) >= min_count:
        shapes = [attributes[i][fingerprint] for i in db]
        # Pigeonhole: a shape run min_count times leaves at most len - min_count + 1 distinct ones.
        if len(set(shapes)) <= len(shapes) - min_count + 1:
            by_shape: dict[AttributeValue, list[int]] = {}
            for i, fp in zip(db, shapes, strict=True):
                members = by_shape.get(fp)
                if members is None:
                    by_shape[fp] = [i]
                else:
                    members.append(i)
            for fp, members in by_shape.items():
                if len(members) >= min_count and isinstance(fp, str):
                    _by_parent(spans, fp, members, groups)
    found: list[Repetition] = []
    for (parent_id, fp), members in groups.items():
        if len(members) >= min_count:
            repetition = _siblings(spans, parent_id, fp, members, min_total_ns)
            if repetition is not None:
                found.append(repetition)
    for i in inside:
        repetition = _inside(spans[i], attributes[i], groups, min_total_ns)
        if repetition is not None:
            found.append(repetition)
    return tuple(found)


def _by_parent(
    spans: Sequence[SpanData], fp: str, members: list[int], groups: dict[tuple[int, str], list[int]]
) -> None:
    """Split one shape's spans by parent (plan captures and root spans left out)."""
    for i in members:
        span = spans[i]
        parent = span.parent
        if parent is None or span.name == EXPLAIN_SPAN:
            continue
        key = (parent.span_id, fp)
        group = groups.get(key)
        if group is None:
            groups[key] = [i]
        else:
            group.append(i)


def _int(value: object) -> int:
    return value if type(value) is int else 0


def _siblings(
    spans: Sequence[SpanData], parent_id: int, fp: str, members: list[int], min_total_ns: int
) -> Repetition | None:
    busy = 0
    first: int | None = None
    last: int | None = None
    ids: list[int] = []
    for i in members:
        span = spans[i]
        start, end, ctx = span.start_time, span.end_time, span.context
        if start is None or end is None or ctx is None:
            return None
        busy += end - start
        first = start if first is None or start < first else first
        last = end if last is None or end > last else last
        ids.append(ctx.span_id)
    if first is None or last is None or busy > last - first:  # they overlapped: concurrent, not one after another
        return None
    if busy < min_total_ns:
        return None
    return Repetition(parent_id, fp, len(members), tuple(ids), busy)


def _inside(
    span: SpanData,
    attrs: Mapping[str, AttributeValue],
    groups: Mapping[tuple[int, str], list[int]],
    min_total_ns: int,
) -> Repetition | None:
    ctx = span.context
    fp = attrs.get(names.FINGERPRINT)
    if ctx is None or not isinstance(fp, str) or span.name == EXPLAIN_SPAN:
        return None
    if (ctx.span_id, fp) in groups:  # the statements are spans of their own under it: counted as siblings
        return None
    execute_s = attrs.get(names.EXECUTE_S)
    if isinstance(execute_s, int | float) and not isinstance(execute_s, bool):
        total = int(execute_s * 1e9)
    else:
        total = (span.end_time or 0) - (span.start_time or 0)
    if total < min_total_ns:
        return None
    return Repetition(ctx.span_id, fp, _int(attrs.get(names.REPEATS)), (ctx.span_id,), total, inside_operation=True)


def span_marks(repetitions: Sequence[Repetition]) -> dict[int, dict[str, AttributeValue]]:
    """The attributes a kept trace's spans get, by span id.

    Every repeated span: ``sieve.db.n_plus_one = true`` and ``sieve.db.n_plus_one.count`` = the executions under
    its parent. The parent (when it is a span of the trace; for a loop inside one operation, that operation):
    ``sieve.db.n_plus_one.fingerprint``, the repeated shape - the one with the most executions when several loops
    ran under it. A span that is both one of a loop's siblings and itself a loop keeps the siblings' count; the
    report reads that inner loop's count from ``sieve.db.repeats``.
    """
    marks: dict[int, dict[str, AttributeValue]] = {}
    for r in repetitions:
        if not r.inside_operation:
            for span_id in r.span_ids:
                marks[span_id] = {names.N_PLUS_ONE: True, names.N_PLUS_ONE_COUNT: r.count}
    for r in repetitions:
        if r.inside_operation:
            mark = marks.setdefault(r.parent_span_id, {})
            mark.setdefault(names.N_PLUS_ONE, True)
            mark.setdefault(names.N_PLUS_ONE_COUNT, r.count)
    for r in sorted(repetitions, key=lambda r: -r.count):  # stable: the first-found loop wins a tie
        marks.setdefault(r.parent_span_id, {}).setdefault(names.N_PLUS_ONE_FINGERPRINT, r.fingerprint)
    return marks
