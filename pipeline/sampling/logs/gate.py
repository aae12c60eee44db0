"""One category's hot-path decision: level, random draw at the (boosted) rate, then the trace.

:meth:`CategoryGate.decide` runs on every category log call that passed the level check, *before* loguru
builds a record, so it does only dict increments, at most one clock read and one random draw; a record that
waits for its trace is appended to the sampler's intake queue, with no lock.

Counts kept here are written without a lock: two application threads incrementing the same counter at the same
instant can lose one increment (the GIL makes each dict operation atomic, not the read-add-write). What must be
exact (severity records, held records' outcomes) is counted by the :class:`LogSampler` under its lock.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from pipeline.names import logs as n
from pipeline.sampling.logs.rates import boosted_rate, combined_probability

Stamp = tuple[float, str]  # (probability, reason) of a kept record


class Decisions(Protocol):
    """The traces decided so far, as a gate reads them without the sampler's lock."""

    def get(self, trace_id: int) -> tuple[bool, float] | None: ...


class GateOwner(Protocol):
    """What a gate needs of the sampler that owns it (:class:`~pipeline.sampling.logs.sampler.LogSampler`): the
    boost, the shared random source, whether records follow their traces and the traces decided so far, and the
    locked count of an always-kept severity record."""

    boost_rate_cap: float
    follow_traces: bool

    @property
    def decisions(self) -> Decisions: ...

    def multiplier(self) -> float: ...

    def random(self) -> float: ...

    def keep_severity(self, category: str, level_no: int) -> Stamp: ...


class CategoryGate:
    """The decision for one category; made by :meth:`LogSampler.category`, shared by its loggers."""

    __slots__ = ("_intake", "_keep_level", "_max_intake", "_sampler", "base_rate", "dropped", "kept", "name", "seen")

    def __init__(
        self, sampler: GateOwner, name: str, base_rate: float, keep_level: int, intake: deque[Any], max_intake: int
    ) -> None:
        self._sampler = sampler
        self._keep_level = keep_level
        self._intake = intake
        self._max_intake = max_intake
        self.name = name
        self.base_rate = base_rate
        # Lock-free hot-path counters; the sampler's locked counters are added to these in snapshots.
        self.seen: dict[int, int] = {}
        self.kept: dict[tuple[int, str], int] = {}
        self.dropped: dict[str, int] = {}

    def rate(self) -> float:
        """The current rate: the base rate under the current error boost."""
        s = self._sampler
        return boosted_rate(self.base_rate, s.multiplier(), s.boost_rate_cap)

    def decide(self, level_no: int, trace_id: int) -> Stamp | None:
        """Keep now (a ``(probability, reason)`` stamp), drop (None), or wait for the trace (:data:`HOLD`).

        ``trace_id`` is 0 outside a trace, or inside one the tail sampler will not see (not sampled at the head):
        no decision will ever come for it, so the record is decided at once.
        """
        if level_no >= self._keep_level:
            return self._sampler.keep_severity(self.name, level_no)
        seen = self.seen
        seen[level_no] = seen.get(level_no, 0) + 1
        s = self._sampler
        multiplier = s.multiplier()
        rate = self.base_rate if multiplier == 1.0 else boosted_rate(self.base_rate, multiplier, s.boost_rate_cap)
        if rate > 0.0 and s.random() < rate:
            key = (level_no, n.REASON_CATEGORY)
            self.kept[key] = self.kept.get(key, 0) + 1
            return (rate, n.REASON_CATEGORY)
        if trace_id and s.follow_traces:
            decided = s.decisions.get(trace_id)
            if decided is None:
                return n.HOLD
            keep, probability = decided
            if keep:
                key = (level_no, n.REASON_TRACE)
                self.kept[key] = self.kept.get(key, 0) + 1
                return (combined_probability(rate, probability), n.REASON_TRACE)
            dropped = self.dropped
            dropped[n.DROP_TRACE_DROPPED] = dropped.get(n.DROP_TRACE_DROPPED, 0) + 1
            return None
        dropped = self.dropped
        dropped[n.DROP_SAMPLED_OUT] = dropped.get(n.DROP_SAMPLED_OUT, 0) + 1
        return None

    def hold(self, trace_id: int, level_no: int, entry: Any) -> None:
        """Hold ``entry`` (opaque: the bridge's lightweight tuple) until ``trace_id`` is decided.

        Call only after :meth:`decide` answered :data:`HOLD`. Lock-free: the entry goes onto the sampler's intake
        queue (or is dropped as ``bound`` when that is full); the entry comes back through the emitter given to
        :meth:`LogSampler.attach` if the trace is kept.
        """
        intake = self._intake
        # The pending buffer's own bound applies when the sampler drains this queue; this one caps the queue.
        if len(intake) < self._max_intake:
            intake.append((trace_id, self, level_no, entry))
        else:
            dropped = self.dropped
            dropped[n.DROP_BOUND] = dropped.get(n.DROP_BOUND, 0) + 1
