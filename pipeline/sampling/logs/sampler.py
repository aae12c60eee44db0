"""The log sampler: category rates with the error boost, and logs that follow their trace's tail decision.

How a category record is decided (see :class:`~pipeline.sampling.logs.gate.CategoryGate`):

1. WARNING and above: kept (``severity``).
2. A random draw at the category's rate, multiplied while the error signal is up: kept on a win (``category``).
3. Lost the draw, outside a trace: dropped (``sampled_out``).
4. Lost the draw, inside a trace already decided: kept if the trace was (``trace``), else dropped.
5. Otherwise held (as the bridge's lightweight tuple) until the tail sampler decides the trace: all held records
   of a kept trace are emitted (``trace``), those of a dropped trace are dropped - so a dropped trace's records
   are kept at their category's rate. Held records are bounded in count and in time (``bound``, ``expired``).

The hot path only appends a held record to an intake deque (no lock). The decision side drains it into the
pure :class:`~pipeline.sampling.logs.pending.PendingLogs` under the lock: decisions arrive through
:meth:`LogSampler.on_decision` (register it with the tail sampler's ``add_decision_listener``, or pass the
processor as ``decisions``), called on the tail sampler's worker thread, so kept records are emitted there. A
record's wait starts when it is drained (at the next decision, i.e. within a tail-sampler tick).

``clock`` is the only time source, the same monotonic clock as the error signal's; pass a fake one in tests.
Nothing here raises into the application or the tail sampler.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypedDict

from pipeline.names import logs as n
from pipeline.sampling.logs.gate import CategoryGate, Stamp
from pipeline.sampling.logs.pending import LogDecisionCache, PendingLogs
from pipeline.sampling.logs.rates import ErrorLevel, combined_probability, rate_multiplier
from pipeline.sampling.logs.settings import LogSamplingSettings
from pipeline.sampling.logs.stats import Counts, snapshot

logger = logging.getLogger(__name__)

DecisionListener = Callable[[int, bool, float, str], None]
Emit = Callable[[Any, Stamp], None]
MAX_CATEGORIES = 256  # more distinct names than this share the OTHER gate (metric labels stay bounded)
OTHER = "other"
_Held = tuple[int, CategoryGate, int, Any]  # trace id, gate, level number, the bridge's entry (as queued)


class DecisionSource(Protocol):
    """The tail sampler's side: it calls ``callback(trace_id, keep, probability, reason)`` once per trace."""

    def add_decision_listener(self, callback: DecisionListener) -> None: ...


class CategoryRate(TypedDict):
    """One category's configured rate (``base``), its rate now under the error boost, and the boost's multiplier."""

    base: float
    effective: float
    multiplier: float


class LogSampler:
    """Satisfies ``collectors.logs.RecordSampler``; the composition root hands it to the ``LogBridge``."""

    def __init__(
        self,
        settings: LogSamplingSettings | None = None,
        *,
        error_signal: ErrorLevel | None = None,
        decisions: DecisionSource | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] | None = None,
        replay_kept: bool | Callable[[], bool] = True,
    ) -> None:
        self.settings = s = settings or LogSamplingSettings()
        # False when nothing would receive a replayed record (no log exporter, no other sink): records of kept
        # traces are then counted as kept but never rebuilt - a third of the worker's time otherwise.
        self.replay_kept = replay_kept
        self.random = rng or random.Random().random
        self.boost_rate_cap = s.boost_rate_cap
        # Without a decision source no decision would ever come: records in a trace are decided at once.
        self.follow_traces = s.follow_traces and decisions is not None
        self.decisions = LogDecisionCache(s.decision_cache_size)
        self._clock = clock
        self._signal = error_signal
        self._multiplier = 1.0
        self._refresh_at = float("-inf")
        self._intake: deque[_Held] = deque()
        self._pending: PendingLogs[_Held] = PendingLogs(s.max_pending_records, s.max_pending_per_trace, s.max_wait_s)
        self._next_sweep = float("-inf")
        self._lock = threading.Lock()
        self._emit: Emit | None = None
        self._gates: dict[str, CategoryGate] = {}
        self._counts = Counts()  # exact counts, written under the lock
        for name in s.categories:
            self.category(name)
        if decisions is not None:
            decisions.add_decision_listener(self.on_decision)

    # -- the bridge's side (collectors.logs.RecordSampler) ---------------------------------------------------

    def attach(self, emit: Emit | None) -> None:
        """Where held records of kept traces go: ``emit(entry, (probability, reason))``. None detaches."""
        self._emit = emit

    def category(self, name: str) -> CategoryGate:
        """The gate of ``name`` (created on first use; past MAX_CATEGORIES names share the ``other`` gate)."""
        gate = self._gates.get(name)
        if gate is None:
            with self._lock:
                gate = self._gates.get(name)
                if gate is None:
                    if len(self._gates) >= MAX_CATEGORIES and name not in self.settings.categories:
                        name = OTHER
                    s = self.settings
                    gate = self._gates.get(name) or CategoryGate(
                        self, name, s.rate(name), s.always_keep_level, self._intake, s.max_pending_records
                    )
                    self._gates[name] = gate
        return gate

    def observe(self, level_no: int) -> Stamp:
        """Count a record logged without a category (plain loguru or stdlib): always kept."""
        reason = n.REASON_SEVERITY if level_no >= self.settings.always_keep_level else n.REASON_UNSAMPLED
        with self._lock:
            self._counts.keep(n.NO_CATEGORY, level_no, reason, seen=True)
        return (1.0, reason)

    def keep_severity(self, category: str, level_no: int) -> Stamp:
        """Count a WARNING+ category record (always kept). Locked, so 'every error was kept' is exact."""
        with self._lock:
            self._counts.keep(category, level_no, n.REASON_SEVERITY, seen=True)
        return (1.0, n.REASON_SEVERITY)

    def multiplier(self) -> float:
        """The current error-boost multiplier of category rates (re-read every ``boost_refresh_s``)."""
        if self._signal is None:
            return 1.0
        now = self._clock()
        if now >= self._refresh_at:
            s = self.settings
            try:
                level = self._signal.level(now)
            except Exception:  # a broken signal must not break logging: no boost
                level = 1.0
            self._multiplier = rate_multiplier(level, s.boost_factor, s.boost_max_multiplier)
            self._refresh_at = now + s.boost_refresh_s
        return self._multiplier

    # -- the tail sampler's side ------------------------------------------------------------------------------

    def on_decision(self, trace_id: int, keep: bool, probability: float, reason: str) -> None:
        """The tail sampler decided ``trace_id``: emit its held records if kept, drop them otherwise."""
        self.on_decisions(((trace_id, keep, probability, reason),))

    def on_decisions(self, batch: Sequence[tuple[int, bool, float, str]]) -> None:
        """A tail-sampler cycle's decisions at once: one lock, one drain, one sweep for all of them."""
        try:
            now = self._clock()
            with self._lock:
                released = self._drain(now)
                decisions, pending = self.decisions, self._pending
                for trace_id, keep, probability, _reason in batch:
                    decisions.put(trace_id, keep, probability)
                    held = pending.resolve(trace_id)
                    if held:
                        self._count_outcome(held, keep)
                        if keep:
                            released.extend((entry, probability) for entry in held)
                self._sweep(now)
            self._release(released)
        except Exception:
            self._counts.internal_errors += 1
            logger.debug("log sampler: decisions for %d traces failed", len(batch), exc_info=True)

    def expire(self, now: float | None = None) -> int:
        """Drop records that waited longer than ``max_wait_s``; returns how many. Also done on decisions."""
        now = self._clock() if now is None else now
        with self._lock:
            released = self._drain(now)
            expired = self._expire(now)
        self._release(released)
        return expired

    def flush(self) -> int:
        """Drop every held record (at shutdown, after the tail sampler has flushed); returns how many."""
        now = self._clock()
        with self._lock:
            released = self._drain(now)
            held = self._pending.flush()
            for _trace_id, gate, _level_no, _entry in held:
                self._counts.drop(gate.name, n.DROP_SHUTDOWN)
        self._release(released)
        return len(held)

    # -- reading ----------------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records held waiting for a decision (including those not yet drained from the intake)."""
        return len(self._pending) + len(self._intake)

    def effective_rates(self) -> dict[str, CategoryRate]:
        """Per category: the configured rate and the rate now, under the error boost (e.g. 0.001 -> 0.01)."""
        multiplier = self.multiplier()
        with self._lock:
            gates = list(self._gates.values())
        return {
            g.name: {"base": g.base_rate, "effective": round(g.rate(), 6), "multiplier": round(multiplier, 3)}
            for g in sorted(gates, key=lambda g: g.name)
        }

    def stats(self) -> dict[str, Any]:
        """Seen / kept / dropped per category and level, and whether every ERROR+ record was kept."""
        with self._lock:
            gates = list(self._gates.values())
            out = snapshot(self._counts, gates, self.pending, self._pending.trace_count, self._multiplier)
        out["effective_rates"] = self.effective_rates()
        return out

    def counts(self) -> Counts:
        """Exact plus hot-path counts merged into one :class:`Counts` (for the metrics callbacks)."""
        with self._lock:
            return self._counts.merged(list(self._gates.values()))

    # -- internals (the caller holds the lock) ----------------------------------------------------------------

    def _drain(self, now: float) -> list[tuple[_Held, float]]:
        """Move the intake into the pending buffer; records whose trace is already decided are settled."""
        released: list[tuple[_Held, float]] = []
        intake, pending, decisions = self._intake, self._pending, self.decisions
        for _ in range(len(intake)):  # only what is there now: the hot path keeps appending
            held = intake.popleft()
            decided = decisions.get(held[0])
            if decided is not None:  # decided between the record's decide() and now
                self._count_outcome([held], decided[0])
                if decided[0]:
                    released.append((held, decided[1]))
            elif not pending.add(held[0], held, now):
                self._counts.drop(held[1].name, n.DROP_BOUND)
        return released

    def _count_outcome(self, held: list[_Held], keep: bool) -> None:
        counts = self._counts
        if keep:
            for _trace_id, gate, level_no, _entry in held:
                counts.keep(gate.name, level_no, n.REASON_TRACE)
        else:
            dropped = counts.dropped
            for _trace_id, gate, _level_no, _entry in held:
                key = (gate.name, n.DROP_TRACE_DROPPED)
                dropped[key] = dropped.get(key, 0) + 1

    def _sweep(self, now: float) -> None:
        if now >= self._next_sweep:
            self._next_sweep = now + self.settings.sweep_interval_s
            self._expire(now)

    def _expire(self, now: float) -> int:
        expired = self._pending.expire(now)
        for _trace_id, gate, _level_no, _entry in expired:
            self._counts.drop(gate.name, n.DROP_EXPIRED)
        return len(expired)

    def _release(self, released: list[tuple[_Held, float]]) -> None:
        """Emit kept records outside the lock (the emitter runs loguru and every sink)."""
        emit = self._emit
        replay = self.replay_kept
        if emit is None or not released or not (replay() if callable(replay) else replay):
            return
        for (_trace_id, gate, _level_no, entry), trace_probability in released:
            try:
                # The rate now, not at the draw: they differ only if the boost moved while the record waited.
                emit(entry, (combined_probability(gate.rate(), trace_probability), n.REASON_TRACE))
            except Exception:  # the emitter is the bridge: its failure must not reach the tail sampler
                self._counts.internal_errors += 1
                logger.debug("log sampler: emitting a held record failed", exc_info=True)
