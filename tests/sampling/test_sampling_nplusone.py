"""The in-process N+1 detector (pipeline/sampling/nplusone.py), the ``n_plus_one`` policy and the marks it puts on
a kept trace's spans. Pure: spans built by hand, a fake clock, a recording downstream."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from pipeline.errors import ConfigError
from pipeline.names import sampling as sampling_names
from pipeline.names import storage as n
from pipeline.sampling import TailSamplingProcessor, default_config, load_tail_sampling
from pipeline.sampling.decision import Tier, Vote
from pipeline.sampling.engine import DecisionEngine
from pipeline.sampling.nplusone import Repetition, detect, span_marks
from pipeline.sampling.policies import BuildContext, NPlusOne, Probabilistic
from pipeline.sampling.region import EMPTY, FULL
from pipeline.sampling.testing import FakeClock, RecordingProcessor, make_span
from pipeline.sampling.trace import TraceView

TRACE = 0xABC
ROOT, OTHER_PARENT, OP = 10**12, 10**12 + 1, 10**12 + 2  # far above the ids make_span hands out
A, B = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
MS = 1_000_000


@dataclass(frozen=True)
class Db:
    """One database span under ``parent``: starts at ``at_ms`` (from the trace's start), lasts ``ms``."""

    fp: str = A
    at_ms: float = 0.0
    ms: float = 1.0
    parent: int | None = ROOT
    name: str = "get_file"
    attributes: dict[str, Any] = field(default_factory=dict)
    span_id: int | None = None


def _loop(count: int, fp: str = A, *, gap_ms: float = 0.2, ms: float = 1.0, parent: int | None = ROOT,
          start: float = 0.0, **kw: Any) -> list[Db]:  # fmt: skip
    return [Db(fp, start + i * (ms + gap_ms), ms, parent, **kw) for i in range(count)]


def _trace(dbs: Sequence[Db], *, trace_id: int = TRACE, error: bool = False) -> list[ReadableSpan]:
    """A local root (``call_tool``) and a second parent (``history``) under it, then the database spans."""
    t0 = 1_000_000_000
    spans = [
        make_span(trace_id, d.name, parent=d.parent, start_ns=t0 + int(d.at_ms * MS), duration_ms=d.ms,
                  attributes={n.FINGERPRINT: d.fp, **d.attributes}, span_id=d.span_id)
        for d in dbs
    ]  # fmt: skip
    spans.append(make_span(trace_id, "history", parent=ROOT, span_id=OTHER_PARENT, start_ns=t0, duration_ms=100))
    status = StatusCode.ERROR if error else StatusCode.UNSET
    spans.append(make_span(trace_id, "call_tool", span_id=ROOT, start_ns=t0, duration_ms=100, status=status))
    return spans


def _found(dbs: Sequence[Db], **kw: Any) -> list[tuple[int, str, int, bool]]:
    view = TraceView(TRACE, _trace(dbs))
    return sorted((r.parent_span_id, r.fingerprint, r.count, r.inside_operation) for r in detect(
        view.spans, view.span_attributes, **kw))  # fmt: skip


OP_LOOP = {n.REPEATS: 6, n.STATEMENTS: 6, n.EXECUTE_S: 0.003}
# (case, database spans, (parent, fingerprint, executions, inside one operation) found), min_count 5
CASES: list[tuple[str, list[Db], list[tuple[int, str, int, bool]]]] = [
    ("a loop of N", _loop(5), [(ROOT, A, 5, False)]),
    ("a loop of N - 1", _loop(4), []),
    ("a long loop", _loop(40), [(ROOT, A, 40, False)]),
    ("back to back, no gap", _loop(5, gap_ms=0.0), [(ROOT, A, 5, False)]),
    ("gaps between them (other work)", _loop(5, gap_ms=30.0), [(ROOT, A, 5, False)]),
    (
        "interleaved shapes, N of each: two loops",
        [Db(A if i % 2 == 0 else B, i * 1.2) for i in range(10)],
        [(ROOT, A, 5, False), (ROOT, B, 5, False)],
    ),
    ("interleaved shapes, fewer than N of each", [Db(A if i % 2 == 0 else B, i * 1.2) for i in range(8)], []),
    ("parallel, not sequential (gather)", [Db(A, 0.0, 5.0) for _ in range(6)], []),
    ("back to back, one pair overlapping", [*_loop(4, gap_ms=0.0), Db(A, 3.5, 1.0)], []),
    # The SQL's test, kept here so both find the same loops: an overlap smaller than the gaps passes.
    ("an overlap hidden by gaps", [*_loop(4), Db(A, 4.5, 1.0)], [(ROOT, A, 5, False)]),
    ("different parents, N - 1 and 1", [*_loop(4), Db(A, 10, parent=OTHER_PARENT)], []),
    (
        "different parents, N under each",
        [*_loop(5), *_loop(5, parent=OTHER_PARENT, start=20)],
        [(ROOT, A, 5, False), (OTHER_PARENT, A, 5, False)],
    ),
    (
        "a loop inside one operation (repeats)",
        [Db(A, name="list_files", attributes=OP_LOOP, span_id=OP)],
        [(OP, A, 6, True)],
    ),
    ("inside one operation, N - 1", [Db(A, name="list_files", attributes={n.REPEATS: 4})], []),
    ("plan captures are not executions", [*_loop(4), Db(A, 6, name="EXPLAIN")], []),
    ("root spans: no parent to loop under", _loop(5, parent=None), []),
]


@pytest.mark.parametrize(("dbs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_detects_one_shape_run_n_times_in_a_row_under_one_parent(dbs: list[Db], expected: list[Any]) -> None:
    assert _found(dbs) == expected


def test_thresholds_are_configurable_count_and_sentry_total_duration() -> None:
    assert _found(_loop(3), min_count=3) == [(ROOT, A, 3, False)]
    assert _found(_loop(5, ms=1.0), min_total_ns=50 * MS) == []  # Sentry's 50 ms: 5 x 1 ms is not enough
    assert _found(_loop(5, ms=10.0), min_total_ns=50 * MS) == [(ROOT, A, 5, False)]
    op = Db(A, name="list_files", attributes=OP_LOOP)  # 3 ms of statements
    assert _found([op], min_total_ns=50 * MS) == []


def test_an_operation_whose_statements_are_spans_is_counted_once_as_their_parent() -> None:
    """Statement spans on (``storage.statement_spans``): the repeats and the driver spans are the same loop."""
    dbs = [Db(A, 0, 10, name="list_files", attributes={n.REPEATS: 6}), *_loop(6, parent=OP, name="SELECT")]
    spans = _trace(dbs)
    spans[0] = make_span(TRACE, "list_files", parent=ROOT, span_id=OP, start_ns=spans[0].start_time or 0,
                         duration_ms=10, attributes={n.FINGERPRINT: A, n.REPEATS: 6})  # fmt: skip
    view = TraceView(TRACE, spans)
    (loop,) = detect(view.spans, view.span_attributes)
    assert (loop.parent_span_id, loop.count, loop.inside_operation, len(loop.span_ids)) == (OP, 6, False, 6)


def test_few_database_spans_stop_at_the_first_pass() -> None:
    view = TraceView(TRACE, _trace(_loop(4)))
    assert detect(view.spans, view.span_attributes) == ()
    assert view.n_plus_one(5) is view.n_plus_one(5)  # found once per trace and thresholds
    assert view.n_plus_one(4) != ()


def test_marks_name_the_repeated_spans_the_count_and_the_parent_fingerprint() -> None:
    sibling = Repetition(ROOT, A, 5, (11, 12, 13, 14, 15), 5 * MS)
    other = Repetition(ROOT, B, 7, (21, 22, 23, 24, 25, 26, 27), 7 * MS)
    inside = Repetition(11, B, 6, (11,), 3 * MS, inside_operation=True)
    marks = span_marks([sibling, other, inside])
    assert marks[12] == {n.N_PLUS_ONE: True, n.N_PLUS_ONE_COUNT: 5}
    assert marks[21] == {n.N_PLUS_ONE: True, n.N_PLUS_ONE_COUNT: 7}
    assert marks[ROOT] == {n.N_PLUS_ONE_FINGERPRINT: B}  # two loops under it: the one with more executions
    # One of a loop's siblings that loops inside itself too keeps the siblings' count (the report reads the inner
    # loop's from sieve.db.repeats) and names its inner shape.
    assert marks[11] == {n.N_PLUS_ONE: True, n.N_PLUS_ONE_COUNT: 5, n.N_PLUS_ONE_FINGERPRINT: B}
    assert span_marks([Repetition(40, A, 9, (40,), MS, inside_operation=True)]) == {
        40: {n.N_PLUS_ONE: True, n.N_PLUS_ONE_COUNT: 9, n.N_PLUS_ONE_FINGERPRINT: A}
    }


def test_without_a_quota_the_policy_is_deterministic_its_region_all_or_nothing() -> None:
    policy = NPlusOne(name="n-plus-one", traces_per_window=0).build(BuildContext())
    hit = policy.evaluate(TraceView(TRACE, _trace(_loop(5))), 0.0)
    miss = policy.evaluate(TraceView(TRACE, _trace(_loop(4))), 0.0)
    assert (hit.vote, hit.region, hit.source, hit.probability) == (Vote.SAMPLED, FULL, None, 1.0)
    assert (miss.vote, miss.region, miss.source, miss.probability) == (Vote.NOT_SAMPLED, EMPTY, None, 0.0)
    three = NPlusOne(name="n", min_count=3, traces_per_window=0).build(BuildContext())
    assert three.evaluate(TraceView(TRACE, _trace(_loop(3))), 0.0).vote is Vote.SAMPLED


def test_a_pattern_is_kept_a_few_times_a_window_with_a_true_probability() -> None:
    """Once a code path has an N+1 every turn has it: keep evidence, not every turn (counts stay unbiased)."""
    policy = NPlusOne(name="n-plus-one", traces_per_window=5, window_s=60).build(BuildContext())
    rng = random.Random(5)
    kept_by_minute = [0, 0, 0]
    estimate, first = 0.0, None
    for i in range(9000):  # 50 N+1 traces a second for three minutes
        trace_id = rng.getrandbits(128)
        d = policy.evaluate(TraceView(trace_id, _trace(_loop(6), trace_id=trace_id)), i * 0.02)
        first = first if first is not None else d.probability
        if d.vote is Vote.SAMPLED:
            kept_by_minute[i // 3000] += 1
            estimate += 1 / d.probability
    assert first == 1.0  # a new pattern's first trace is always kept
    # The first window keeps about 5 x ln(traces) (the quota is spread over a count still growing), later ones
    # about 5 each: a handful, not 3,000 a minute.
    assert kept_by_minute[0] <= 60 and 2 <= kept_by_minute[1] + kept_by_minute[2] <= 40
    assert estimate == pytest.approx(9000, rel=0.5)  # Horvitz-Thompson: unbiased, wide with so few kept


def test_configuration_in_the_collector_shape_and_bad_values() -> None:
    raw = {"name": "loops", "type": "n_plus_one", "n_plus_one": {"min_count": 3, "min_total_duration_ms": 50}}
    (policy,) = load_tail_sampling({"policies": [raw]}).policies
    assert policy == NPlusOne(name="loops", min_count=3, min_total_duration_ms=50.0)
    quota = {**raw, "n_plus_one": {"traces_per_window": 2, "window": "30s"}}
    assert load_tail_sampling({"policies": [quota]}).policies == (
        NPlusOne(name="loops", traces_per_window=2, window_s=30.0),
    )
    assert load_tail_sampling({"policies": [{"name": "d", "type": "n_plus_one"}]}).policies == (NPlusOne(name="d"),)
    with pytest.raises(ConfigError, match=r"policies\.loops\.n_plus_one\.min_count"):
        NPlusOne(name="loops", min_count=1)
    with pytest.raises(ConfigError, match="min_total_duration_ms"):
        load_tail_sampling({"policies": [{**raw, "n_plus_one": {"min_total_duration_ms": -1}}]})
    with pytest.raises(ConfigError, match="stateful"):  # the loop's other spans may still be coming
        load_tail_sampling({"sampling_strategy": "span-ingest", "policies": [raw]})


def test_default_set_keeps_a_new_n_plus_one_pattern_at_once_and_marks_it() -> None:
    engine = DecisionEngine(default_config(with_extensions=True).policies)
    verdict = engine.decide(TraceView(TRACE, _trace(_loop(6))), 0.0)
    assert (verdict.keep, verdict.reason, verdict.probability) == (True, "n-plus-one", 1.0)
    assert verdict.tier is not Tier.PRIORITY  # a quota keep: it must not crowd errors out of the budget
    assert verdict.marks is not None and len(verdict.marks) == 7  # six repeated spans and their parent
    plain = engine.decide(TraceView(7, _trace(_loop(4), trace_id=7)), 0.0)
    assert plain.reason != "n-plus-one" and plain.marks is None


def test_a_trace_kept_for_another_reason_is_marked_too() -> None:
    engine = DecisionEngine(default_config(with_extensions=True).policies)
    verdict = engine.decide(TraceView(TRACE, _trace(_loop(5), error=True)), 0.0)
    assert verdict.reason == "errors"
    assert verdict.marks is not None and {m.get(n.N_PLUS_ONE) for m in verdict.marks.values()} >= {True}


def test_without_the_policy_nothing_is_marked_and_a_failing_marker_is_counted() -> None:
    always = Probabilistic(name="all", sampling_percentage=100)
    assert DecisionEngine([always]).decide(TraceView(TRACE, _trace(_loop(5))), 0.0).marks is None

    class Broken(NPlusOne):
        def marks(self, trace: TraceView) -> Any:
            raise RuntimeError("boom")

    engine = DecisionEngine([always, Broken(name="n1")])
    verdict = engine.decide(TraceView(TRACE, _trace(_loop(5))), 0.0)
    assert verdict.keep and verdict.marks is None and engine.policy_errors["marks"] == 1


def test_the_processor_stamps_the_marks_on_the_kept_copies_only() -> None:
    clock = FakeClock()
    downstream = RecordingProcessor()
    processor = TailSamplingProcessor(downstream, default_config(with_extensions=True), clock=clock)
    try:
        looped, fixed = _trace(_loop(6), trace_id=101), _trace(_loop(1), trace_id=102)
        for span in [*looped, *fixed]:
            processor.on_end(span)
        clock.advance(5.0)
        processor.force_flush()
    finally:
        processor.shutdown()
    kept = {s.context.span_id: s for s in downstream.spans if s.context is not None and s.context.trace_id == 101}
    assert len(kept) == len(looped)
    repeated = [s for s in kept.values() if s.name == "get_file"]
    assert len(repeated) == 6
    for span in repeated:
        attrs = span.attributes or {}
        assert (attrs[n.N_PLUS_ONE], attrs[n.N_PLUS_ONE_COUNT], attrs[n.FINGERPRINT]) == (True, 6, A)
        assert attrs[sampling_names.SPAN_REASON] == "n-plus-one"
    assert (kept[ROOT].attributes or {})[n.N_PLUS_ONE_FINGERPRINT] == A
    assert n.N_PLUS_ONE not in (kept[ROOT].attributes or {}) and n.N_PLUS_ONE not in (
        kept[OTHER_PARENT].attributes or {}
    )
    for span in looped:  # the buffered originals are not changed: the marks are on the copies
        assert n.N_PLUS_ONE not in (span.attributes or {})
    for span in downstream.spans:
        if span.context is not None and span.context.trace_id == 102:
            assert n.N_PLUS_ONE not in (span.attributes or {})
