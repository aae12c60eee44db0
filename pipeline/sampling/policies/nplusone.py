"""``n_plus_one``: keep a trace in which one statement shape ran ``min_count`` or more times in a row under one
parent span (a Sieve extension: in-process configuration only, never ``otel-config.yaml``).

A deterministic filter: its vote depends only on the trace's content, so its region is everything or nothing
and a trace it keeps has probability 1 (docs/sampling.md) - the budget's ``priority`` tier, like ``errors`` and
``slow-lookups``. Whichever policy keeps a trace, the detector's findings mark its spans
(:func:`pipeline.sampling.nplusone.span_marks`): the policy registers itself as a :class:`~.base.Marker`.

Configuration, in the Collector's shape::

    - name: n-plus-one
      type: n_plus_one
      n_plus_one: {min_count: 5, min_total_duration_ms: 0}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.util.types import AttributeValue

from pipeline.sampling.decision import Decision, deterministic
from pipeline.sampling.nplusone import DEFAULT_MIN_COUNT, DEFAULT_MIN_TOTAL_DURATION_MS, span_marks
from pipeline.sampling.trace import TraceView

from .base import BuildContext, Policy, PolicySpec

_EMPTY: Mapping[int, Mapping[str, AttributeValue]] = {}


@dataclass(frozen=True)
class NPlusOne(PolicySpec):
    """Sampled when the trace holds an N+1 loop; ``min_total_duration_ms`` asks for that much time in its
    repeated statements too (Sentry's ``duration_threshold``; 0: the count alone)."""

    TYPE = "n_plus_one"
    min_count: int = DEFAULT_MIN_COUNT
    min_total_duration_ms: float = DEFAULT_MIN_TOTAL_DURATION_MS
    _min_total_ns: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._require(self.min_count >= 2, "min_count", self.min_count, "an integer >= 2")
        self._require(
            self.min_total_duration_ms >= 0, "min_total_duration_ms", self.min_total_duration_ms, "a number >= 0"
        )
        object.__setattr__(self, "_min_total_ns", int(self.min_total_duration_ms * 1_000_000))

    @property
    def stateful(self) -> bool:
        return True  # the loop's other spans may still be coming: refused in span-ingest mode

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        return deterministic(bool(trace.n_plus_one(self.min_count, self._min_total_ns)), self.name)

    def marks(self, trace: TraceView) -> Mapping[int, Mapping[str, AttributeValue]]:
        found = trace.n_plus_one(self.min_count, self._min_total_ns)  # cached: the vote found them already
        return span_marks(found) if found else _EMPTY

    def build(self, ctx: BuildContext) -> Policy:
        ctx.markers.append(self)
        return self
