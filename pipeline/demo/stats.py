"""What the demo report says about spans: counts by name and status, storage timings split by phase.

A span observer (``pipeline.setup(span_observers=[stats.observe])``): it sees every span, before any sampling,
in slices on the tail sampler's worker thread, so the demo's own bookkeeping costs the event loop nothing. Kept
deliberately small: the report needs a few numbers, not a trace store.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from pipeline.names import storage as db

_RESERVOIR = 5000


def _seconds(attributes: Mapping[str, AttributeValue], key: str) -> float:
    """A duration the storage collector stamped on an operation's span (0 when absent)."""
    value = attributes.get(key, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


@dataclass
class _OpTimes:
    count: int = 0
    durations_s: list[float] = field(default_factory=list)
    pool_wait_s: float = 0.0
    connect_s: float = 0.0
    execute_s: float = 0.0


class SpanStats:
    """Counts every ended span by name and status, and sums storage operations' time per phase, for the report."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = rng or random.Random(0)
        self.by_name: Counter[str] = Counter()
        self.errors_by_name: Counter[str] = Counter()
        self.storage: dict[str, _OpTimes] = defaultdict(_OpTimes)
        self.total = 0

    def observe(self, spans: Sequence[ReadableSpan]) -> None:
        """Count a slice of ended spans (one lock for the slice)."""
        with self._lock:
            for span in spans:
                self._count(span)

    def _count(self, span: ReadableSpan) -> None:
        attrs = span.attributes or {}
        self.total += 1
        self.by_name[span.name] += 1
        if span.status.status_code is StatusCode.ERROR:
            self.errors_by_name[span.name] += 1
        op = attrs.get(db.DB_OPERATION)
        if op is not None and db.POOL_WAIT_S in attrs and span.end_time and span.start_time:
            t = self.storage[str(op)]
            t.count += 1
            duration = (span.end_time - span.start_time) / 1e9
            # A uniform reservoir keeps the percentiles honest without keeping every duration.
            if len(t.durations_s) < _RESERVOIR:
                t.durations_s.append(duration)
            else:
                j = self._rng.randrange(t.count)
                if j < _RESERVOIR:
                    t.durations_s[j] = duration
            t.pool_wait_s += _seconds(attrs, db.POOL_WAIT_S)
            t.connect_s += _seconds(attrs, db.CONNECT_S)
            t.execute_s += _seconds(attrs, db.EXECUTE_S)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            storage = {}
            for op, t in sorted(self.storage.items()):
                d = sorted(t.durations_s)
                phases = t.pool_wait_s + t.connect_s + t.execute_s or 1.0
                storage[op] = {
                    "count": t.count,
                    "p50_ms": _ms(_q(d, 0.5)),
                    "p95_ms": _ms(_q(d, 0.95)),
                    "max_ms": _ms(d[-1] if d else 0.0),
                    "share": {
                        "pool_wait": round(t.pool_wait_s / phases, 3),
                        "connect": round(t.connect_s / phases, 3),
                        "execute": round(t.execute_s / phases, 3),
                    },
                }
            return {
                "total": self.total,
                "by_name": dict(self.by_name.most_common()),
                "errors_by_name": dict(self.errors_by_name.most_common()),
                "storage": storage,
            }


def _q(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
