"""The pure core of the tail sampler: buffers spans per trace, decides when a trace is ready, returns releases.

Fed spans and "now" (seconds on any monotonic clock); never sleeps, locks or reads time, so it is tested with a
fake clock. A trace is decided:

* ``decision_wait_after_root_received`` after its first local root span (no parent, or a remote parent) ended,
  leaving a grace for children that end after their parent (``0`` turns this trigger off, as upstream);
* or ``decision_wait`` after its first span, if no local root ended in time;
* or early, when a bound is hit: ``num_traces`` (the oldest trace), ``max_buffered_spans`` (the oldest trace) or
  ``max_spans_per_trace`` (that trace) - each counted by bound;
* or, not sampled, as soon as it grows past ``maximum_trace_size_bytes`` (upstream's ``traces_dropped_too_large``);
* or at ``flush`` (force_flush / shutdown).

With ``sampling_strategy: span-ingest`` each span is evaluated as it arrives (the SDK hands spans over one at a
time, so a span is upstream's "incoming batch"): a terminal verdict releases the trace at once, and a trace still
pending at ``decision_wait`` is not sampled without another evaluation.

Late spans of a decided trace follow the decision cache (or, for a disabled side, the recent decisions a
Collector would still hold among its ``num_traces``); without either they start a new trace, as in the Collector.
Under stress relief, spans of traces not already buffered are kept or dropped by trace id alone.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan

from pipeline.names.sampling import Outcome, Reason, ShedReason, Trigger
from pipeline.sampling.cache import TailDecisionCache
from pipeline.sampling.config import SPAN_INGEST, TailSamplingConfig
from pipeline.sampling.decision import Verdict
from pipeline.sampling.engine import DecisionEngine
from pipeline.sampling.record import BufferedSpan, SpanData
from pipeline.sampling.stress import StressMonitor
from pipeline.sampling.trace import TraceView, is_local_root, span_size


@dataclass(slots=True)
class Release:
    """Spans whose fate is known: forward them (``verdict.keep``) or let them go."""

    trace_id: int
    spans: list[SpanData]
    verdict: Verdict
    trigger: Trigger
    age_s: float = 0.0  # first span to decision
    late: bool = False


@dataclass
class BufferStats:
    """Plain counters, read by the processor's ``stats()`` and self-metrics."""

    traces_received: int = 0
    spans_received: int = 0
    traces_decided: Counter[tuple[Outcome, str]] = field(default_factory=Counter)
    spans_decided: Counter[tuple[Outcome, str]] = field(default_factory=Counter)
    early: Counter[Trigger] = field(default_factory=Counter)  # by bound
    late: Counter[Outcome] = field(default_factory=Counter)
    shed: Counter[ShedReason] = field(default_factory=Counter)
    triggers: Counter[Trigger] = field(default_factory=Counter)


class _Pending:
    __slots__ = ("first_seen", "ready_at", "root", "size", "spans")

    def __init__(self, now: float) -> None:
        self.spans: list[SpanData] = []
        self.first_seen = now
        self.ready_at: float | None = None
        self.root: SpanData | None = None  # the first local root to end, once seen
        self.size = 0


class TraceBuffer:
    """Per-trace buffer with bounded memory. Not thread-safe: the processor's worker owns it."""

    def __init__(self, config: TailSamplingConfig, engine: DecisionEngine | None = None) -> None:
        self.config = config
        self.engine = engine or DecisionEngine(
            config.policies, sample_on_first_match=config.sample_on_first_match, budget=config.budget
        )
        self.cache = TailDecisionCache(
            config.sampled_cache_size, config.non_sampled_cache_size, recent_size=config.num_traces
        )
        self._root_wait = config.decision_wait_after_root_received_s
        self._max_size = config.maximum_trace_size_bytes
        self._span_ingest = config.sampling_strategy == SPAN_INGEST
        self.stress = StressMonitor(config.stress_relief)
        self.stats = BufferStats()
        self._traces: OrderedDict[int, _Pending] = OrderedDict()  # insertion order = age; O(1) oldest
        self._ready: deque[tuple[float, int]] = deque()  # (ready_at, trace id), non-decreasing ready_at
        self._span_total = 0

    @property
    def trace_count(self) -> int:
        return len(self._traces)

    @property
    def span_count(self) -> int:
        return self._span_total

    def load_level(self) -> float:
        """How full the buffer is, in percent of its tightest bound."""
        c = self.config
        return 100.0 * max(len(self._traces) / c.num_traces, self._span_total / c.max_buffered_spans)

    def update_stress(self, now: float, intake_level: float = 0.0) -> bool:
        return self.stress.update(max(self.load_level(), intake_level), now)

    def add(self, span: ReadableSpan, now: float) -> list[Release]:
        """Buffer one ended span; returns whatever this caused to be decided."""
        ctx = span.context
        if ctx is None:
            return []
        trace_id = ctx.trace_id
        self.stats.spans_received += 1
        pending = self._traces.get(trace_id)
        releases: list[Release] = []
        if pending is None:
            late = self._late(trace_id, span)
            if late is not None:
                return [late]
            if self.stress.active:
                return [self._stress_release(trace_id, span)]
            if len(self._traces) >= self.config.num_traces:
                releases.append(self._decide_oldest(now, Trigger.NUM_TRACES))
            pending = _Pending(now)
            self._traces[trace_id] = pending
            self.stats.traces_received += 1
        record = BufferedSpan(span)  # the SDK span object is freed: see pipeline/sampling/record.py
        pending.spans.append(record)
        self._span_total += 1
        if self._max_size:
            pending.size += span_size(record)
            if pending.size > self._max_size:
                releases.append(self._release_too_large(trace_id, now))
                return releases
        if self._span_ingest:
            verdict = self.engine.decide_on_ingest(TraceView(trace_id, [record]), now)
            if verdict is not None:
                releases.append(self._settle(trace_id, verdict, now, Trigger.INGEST))
                return releases
        elif pending.root is None and is_local_root(record):
            pending.root = record
            if self._root_wait > 0:
                pending.ready_at = now + self._root_wait
                self._ready.append((pending.ready_at, trace_id))
        if len(pending.spans) >= self.config.max_spans_per_trace:
            releases.append(self._decide(trace_id, now, Trigger.SPAN_LIMIT, early=True))
        while self._span_total > self.config.max_buffered_spans and self._traces:
            releases.append(self._decide_oldest(now, Trigger.MAX_BUFFERED_SPANS))
        return releases

    def expire(self, now: float) -> list[Release]:
        """Decide every trace that is ready at ``now``."""
        releases: list[Release] = []
        ready = self._ready
        while ready and ready[0][0] <= now:
            ready_at, trace_id = ready.popleft()
            pending = self._traces.get(trace_id)
            if pending is not None and pending.ready_at == ready_at:
                releases.append(self._decide(trace_id, now, Trigger.ROOT))
        deadline = now - self.config.decision_wait_s
        traces = self._traces
        while traces:
            trace_id = next(iter(traces))
            if traces[trace_id].first_seen > deadline:
                break
            if self._span_ingest:  # pending cleanup: not sampled, without another evaluation
                verdict = Verdict(Outcome.NOT_SAMPLED, 0.0, Reason.NONE)
                releases.append(self._settle(trace_id, verdict, now, Trigger.DECISION_WAIT))
            else:
                releases.append(self._decide(trace_id, now, Trigger.DECISION_WAIT))
        return releases

    def flush(self, now: float, *, drop: bool = False) -> list[Release]:
        """Decide (or, with ``drop``, release undecided) every buffered trace."""
        releases = []
        while self._traces:
            trace_id = next(iter(self._traces))
            if drop:
                releases.append(self._drop_pending(trace_id, now))
            else:
                releases.append(self._decide(trace_id, now, Trigger.FLUSH))
        self._ready.clear()
        return releases

    def _late(self, trace_id: int, span: ReadableSpan) -> Release | None:
        kept = self.cache.sampled(trace_id)
        if kept is not None:
            verdict = Verdict(Outcome.SAMPLED, kept[0], kept[1])
        elif self.cache.dropped(trace_id):
            verdict = Verdict(Outcome.NOT_SAMPLED, 0.0, Reason.NONE)
        else:
            return None
        self.stats.late[verdict.outcome] += 1
        self.stats.spans_decided[(verdict.outcome, verdict.reason)] += 1
        return Release(trace_id, [span], verdict, Trigger.LATE, late=True)

    def _stress_release(self, trace_id: int, span: ReadableSpan) -> Release:
        keep = self.stress.keep(trace_id)
        verdict = (
            Verdict(Outcome.SAMPLED, self.stress.probability, Reason.STRESS_RELIEF)
            if keep
            else Verdict(Outcome.NOT_SAMPLED, 0.0, Reason.STRESS_RELIEF)
        )
        self.stats.shed[ShedReason.STRESS_RELIEF] += 1
        self.stats.spans_decided[(verdict.outcome, verdict.reason)] += 1
        return Release(trace_id, [span], verdict, Trigger.STRESS_RELIEF)

    def _decide_oldest(self, now: float, bound: Trigger) -> Release:
        return self._decide(next(iter(self._traces)), now, bound, early=True)

    def _decide(self, trace_id: int, now: float, trigger: Trigger, *, early: bool = False) -> Release:
        pending = self._traces[trace_id]
        verdict = self.engine.decide(TraceView(trace_id, pending.spans, pending.root), now)
        return self._settle(trace_id, verdict, now, trigger, early=early)

    def _settle(self, trace_id: int, verdict: Verdict, now: float, trigger: Trigger, *, early: bool = False) -> Release:
        pending = self._traces.pop(trace_id)
        self._span_total -= len(pending.spans)
        if verdict.keep:
            self.cache.put_sampled(trace_id, verdict.probability, verdict.reason)
        else:
            self.cache.put_dropped(trace_id)
        return self._record(trace_id, pending, verdict, trigger, now, early)

    def _release_too_large(self, trace_id: int, now: float) -> Release:
        verdict = Verdict(Outcome.NOT_SAMPLED, 0.0, Reason.TOO_LARGE)
        return self._settle(trace_id, verdict, now, Trigger.TOO_LARGE, early=True)

    def _drop_pending(self, trace_id: int, now: float) -> Release:
        pending = self._traces.pop(trace_id)
        self._span_total -= len(pending.spans)
        verdict = Verdict(Outcome.NOT_SAMPLED, 0.0, Reason.SHUTDOWN)
        return self._record(trace_id, pending, verdict, Trigger.SHUTDOWN, now, early=True)

    def _record(
        self, trace_id: int, pending: _Pending, verdict: Verdict, trigger: Trigger, now: float, early: bool
    ) -> Release:
        stats = self.stats
        stats.traces_decided[(verdict.outcome, verdict.reason)] += 1
        stats.spans_decided[(verdict.outcome, verdict.reason)] += len(pending.spans)
        stats.triggers[trigger] += 1
        if early:
            stats.early[trigger] += 1
        return Release(trace_id, pending.spans, verdict, trigger, age_s=max(0.0, now - pending.first_seen))
