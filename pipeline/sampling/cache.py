"""Recently decided trace ids, so a late span follows its trace's decision (the Collector's ``decision_cache``).

Both sides are least-recently-used caches, as upstream's (``internal/cache/lru_cache.go`` on hashicorp's LRU: a
lookup refreshes an entry). Kept ids remember their probability and reason (late spans are stamped like the rest of
the trace); dropped ids remember membership only, keyed by the trace id's low 64 bits (where W3C puts the
randomness). A size of 0 disables a side - but, as upstream, a decided trace is still remembered while it would
still occupy one of the ``num_traces`` slots (upstream leaves it in its trace map until evicted), so a late span
keeps its decision even with both caches at 0: that is the ``recent`` FIFO of ``recent_size`` entries.
"""

from __future__ import annotations

from collections import OrderedDict

_LOW64 = (1 << 64) - 1
Kept = tuple[float, str]


class TailDecisionCache:
    """Two bounded LRU caches of decided trace ids plus the FIFO of recent decisions for disabled sides."""

    def __init__(self, sampled_size: int, non_sampled_size: int, *, recent_size: int = 0) -> None:
        self._sampled_size = sampled_size
        self._sampled: OrderedDict[int, Kept] = OrderedDict()
        self._dropped_size = non_sampled_size
        self._dropped: OrderedDict[int, None] = OrderedDict()
        self._recent_size = recent_size
        self._recent: OrderedDict[int, Kept | None] = OrderedDict()  # None: not sampled

    def __len__(self) -> int:
        return len(self._sampled) + len(self._dropped) + len(self._recent)

    def _remember(self, trace_id: int, value: Kept | None) -> None:
        if self._recent_size:
            self._recent[trace_id] = value
            if len(self._recent) > self._recent_size:
                self._recent.popitem(last=False)

    def put_sampled(self, trace_id: int, probability: float, reason: str) -> None:
        if not self._sampled_size:
            self._remember(trace_id, (probability, reason))
            return
        self._sampled[trace_id] = (probability, reason)
        self._sampled.move_to_end(trace_id)
        if len(self._sampled) > self._sampled_size:
            self._sampled.popitem(last=False)

    def put_dropped(self, trace_id: int) -> None:
        if not self._dropped_size:
            self._remember(trace_id, None)
            return
        key = trace_id & _LOW64
        self._dropped[key] = None
        self._dropped.move_to_end(key)
        if len(self._dropped) > self._dropped_size:
            self._dropped.popitem(last=False)

    def sampled(self, trace_id: int) -> Kept | None:
        """The kept decision ``(probability, reason)``, or None. A hit makes the entry most recently used."""
        kept = self._sampled.get(trace_id)
        if kept is not None:
            self._sampled.move_to_end(trace_id)
            return kept
        return self._recent.get(trace_id)

    def dropped(self, trace_id: int) -> bool:
        key = trace_id & _LOW64
        if key in self._dropped:
            self._dropped.move_to_end(key)
            return True
        return trace_id in self._recent and self._recent[trace_id] is None
