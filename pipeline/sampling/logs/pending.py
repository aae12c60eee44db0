"""The pure core of trace-following: records waiting for their trace's decision, and recent decisions.

Nothing here reads a clock or takes a lock: callers pass ``now`` and serialise access (the
:class:`~pipeline.sampling.logs.sampler.LogSampler` shell holds a lock). Items are opaque to this module.

Bounds, so a trace that never finishes cannot hold memory: at most ``max_records`` items in all, at most
``max_per_trace`` per trace (an item over either bound is refused, and the caller counts it), and no trace waits
longer than ``max_wait_s`` after its first item (``expire(now)`` hands those back).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class _Waiting(Generic[T]):
    __slots__ = ("items", "since")

    def __init__(self, since: float) -> None:
        self.since = since
        self.items: list[T] = []


class PendingLogs(Generic[T]):
    """Items grouped by trace id, in the order their traces started waiting."""

    def __init__(self, max_records: int, max_per_trace: int, max_wait_s: float) -> None:
        if max_records < 0 or max_per_trace < 0 or max_wait_s <= 0:
            raise ValueError("max_records and max_per_trace must be >= 0 and max_wait_s > 0")
        self.max_records = max_records
        self.max_per_trace = max_per_trace
        self.max_wait_s = max_wait_s
        self._traces: OrderedDict[int, _Waiting[T]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        """Items held."""
        return self._count

    @property
    def trace_count(self) -> int:
        return len(self._traces)

    def add(self, trace_id: int, item: T, now: float) -> bool:
        """Hold ``item`` until ``trace_id`` is decided. False when a bound refuses it (the caller drops it)."""
        if self._count >= self.max_records:
            return False
        waiting = self._traces.get(trace_id)
        if waiting is None:
            if self.max_per_trace == 0:
                return False
            waiting = _Waiting(now)
            self._traces[trace_id] = waiting
        elif len(waiting.items) >= self.max_per_trace:
            return False
        waiting.items.append(item)
        self._count += 1
        return True

    def resolve(self, trace_id: int) -> list[T]:
        """The items held for ``trace_id`` (now decided), in the order they were added; empty if none."""
        waiting = self._traces.pop(trace_id, None)
        if waiting is None:
            return []
        self._count -= len(waiting.items)
        return waiting.items

    def expire(self, now: float) -> list[T]:
        """The items of every trace that has waited ``max_wait_s`` or longer; they are no longer held."""
        expired: list[T] = []
        traces = self._traces
        limit = now - self.max_wait_s
        # Traces are in the order they started waiting, so the expired ones are a prefix.
        while traces:
            trace_id, waiting = next(iter(traces.items()))
            if waiting.since > limit:
                break
            del traces[trace_id]
            expired.extend(waiting.items)
        self._count -= len(expired)
        return expired

    def flush(self) -> list[T]:
        """Every item held; the buffer is empty afterwards."""
        items = [item for waiting in self._traces.values() for item in waiting.items]
        self._traces.clear()
        self._count = 0
        return items


class LogDecisionCache:
    """The most recent ``max_size`` trace decisions, for records logged after their trace was decided.

    ``get`` is safe to call without the writer's lock (a single dict lookup under the GIL).
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._decisions: OrderedDict[int, tuple[bool, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._decisions)

    def put(self, trace_id: int, keep: bool, probability: float) -> None:
        if self.max_size == 0:
            return
        decisions = self._decisions
        decisions[trace_id] = (keep, probability)
        while len(decisions) > self.max_size:
            decisions.popitem(last=False)

    def get(self, trace_id: int) -> tuple[bool, float] | None:
        return self._decisions.get(trace_id)
