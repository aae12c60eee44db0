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
from collections.abc import Iterable
from typing import NamedTuple

from pipeline.exemplars.sources import Labels

Bucket = int  # index of the histogram bucket (len(bounds) for +Inf); 0 for a counter
SeriesKey = tuple[str, Labels]  # (sample name, label values)

DEFAULT_MAX_SERIES = 2000


class Candidate(NamedTuple):  # a tuple: built for every kept span, so cheap to make
    """A kept span offered as an exemplar: its ids, value and end time, and whether it failed."""

    trace_id: int  # formatted (32 hex digits) only when exposed
    span_id: int
    value: float  # seconds for a duration, 1 for a counter increment
    timestamp_s: float  # the span's end, Unix seconds
    error: bool = False

    def better_than(self, other: Candidate) -> bool:
        return (self.error, self.value) > (other.error, other.value)


class _Slot:
    __slots__ = ("candidate", "generation")

    def __init__(self, candidate: Candidate, generation: int) -> None:
        self.candidate = candidate
        self.generation = generation


class ExemplarStore:
    """The best candidate per series and bucket until the next scrape, for a bounded number of series."""

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self._max_series = max(1, max_series)
        self._series: OrderedDict[SeriesKey, dict[Bucket, _Slot]] = OrderedDict()
        self._generation = 0
        self._lock = threading.Lock()
        self.offered = 0
        self.evicted = 0

    def offer(self, series: SeriesKey, bucket: Bucket, candidate: Candidate) -> None:
        self.offer_many(((series, bucket, candidate),))

    def offer_many(self, offers: Iterable[tuple[SeriesKey, Bucket, Candidate]]) -> None:
        """Offer several (one span's series) under one lock acquisition."""
        with self._lock:
            generation = self._generation
            for series, bucket, candidate in offers:
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
                if slot is None:
                    slots[bucket] = _Slot(candidate, generation)
                elif slot.generation < generation or candidate.better_than(slot.candidate):
                    slot.candidate, slot.generation = candidate, generation

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
