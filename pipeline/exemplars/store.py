"""The exemplars waiting for the next scrape: per series, one per histogram bucket (one per counter), bounded.

Pure apart from a lock (the picker offers from the sampler's thread, the HTTP thread reads): no clock, no I/O.
Within one scrape interval (a ``generation``, advanced by each collection) a bucket keeps its best candidate:
an error over a success, then the slower. A candidate offered after the bucket's exemplar was exposed replaces it
outright, so each scrape shows the freshest kept example while a quiet bucket keeps showing its last one.
Series are kept most recently used first, at most ``max_series``; the oldest is forgotten beyond that.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from pipeline.exemplars.sources import Labels

Bucket = int  # index of the histogram bucket (len(bounds) for +Inf); 0 for a counter
SeriesKey = tuple[str, Labels]  # (sample name, label values)

DEFAULT_MAX_SERIES = 2000


@dataclass(frozen=True)
class Candidate:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    value: float  # seconds for a duration, 1 for a counter increment
    timestamp_s: float  # the span's end, Unix seconds
    error: bool = False

    def better_than(self, other: Candidate) -> bool:
        return (self.error, self.value) > (other.error, other.value)


@dataclass
class _Slot:
    candidate: Candidate
    generation: int


class ExemplarStore:
    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self._max_series = max(1, max_series)
        self._series: OrderedDict[SeriesKey, dict[Bucket, _Slot]] = OrderedDict()
        self._generation = 0
        self._lock = threading.Lock()
        self.offered = 0
        self.evicted = 0

    def offer(self, series: SeriesKey, bucket: Bucket, candidate: Candidate) -> None:
        with self._lock:
            self.offered += 1
            slots = self._series.get(series)
            if slots is None:
                slots = self._series[series] = {}
                if len(self._series) > self._max_series:
                    self._series.popitem(last=False)
                    self.evicted += 1
            else:
                self._series.move_to_end(series)
            slot = slots.get(bucket)
            if slot is None or slot.generation < self._generation or candidate.better_than(slot.candidate):
                slots[bucket] = _Slot(candidate, self._generation)

    def next_generation(self) -> None:
        """A scrape is about to read: what is offered from now on belongs to the next interval."""
        with self._lock:
            self._generation += 1

    def get(self, series: SeriesKey, bucket: Bucket) -> Candidate | None:
        with self._lock:
            slots = self._series.get(series)
            slot = slots.get(bucket) if slots else None
            return slot.candidate if slot else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._series)
