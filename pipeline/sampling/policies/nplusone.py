"""``n_plus_one``: keep traces in which one statement shape ran ``min_count`` or more times in a row under one
parent span (a Sieve extension: in-process configuration only, never ``otel-config.yaml``).

An N+1 is a property of a code path: once a turn has one, every turn down that path has it. So the policy keeps
about ``traces_per_window`` traces per pattern (service, root operation, repeated statement) per window, each with
a known probability (the ``rare`` policy's quota), not every one: enough evidence for ``sieve slow-lookups`` and
a dashboard link, without turning every turn into a priority keep that crowds errors out of the budget.
``traces_per_window: 0`` keeps every N+1 trace (a deterministic filter, probability 1).

Whichever policy keeps a trace, the detector's findings mark its spans
(:func:`pipeline.sampling.nplusone.span_marks`): the policy registers itself as a :class:`~.base.Marker`.

Configuration, in the Collector's shape::

    - name: n-plus-one
      type: n_plus_one
      n_plus_one: {min_count: 5, min_total_duration_ms: 0, traces_per_window: 5, window: 60s}
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.util.types import AttributeValue

from pipeline.sampling.decision import Decision, deterministic, threshold
from pipeline.sampling.nplusone import DEFAULT_MIN_COUNT, DEFAULT_MIN_TOTAL_DURATION_MS, span_marks
from pipeline.sampling.rates import DecayedRate
from pipeline.sampling.trace import TraceView

from .base import BuildContext, Policy, PolicySpec
from .hashing import salt_or_default

_LN2 = math.log(2.0)
_MAX_PATTERNS = 1000

_EMPTY: Mapping[int, Mapping[str, AttributeValue]] = {}


@dataclass(frozen=True)
class NPlusOne(PolicySpec):
    """Sampled when the trace holds an N+1 loop; ``min_total_duration_ms`` asks for that much time in its
    repeated statements too (Sentry's ``duration_threshold``; 0: the count alone)."""

    TYPE = "n_plus_one"
    min_count: int = DEFAULT_MIN_COUNT
    min_total_duration_ms: float = DEFAULT_MIN_TOTAL_DURATION_MS
    traces_per_window: int = 5  # per pattern; 0 keeps every N+1 trace
    window_s: float = 60.0
    hash_salt: str = ""
    _min_total_ns: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._require(self.min_count >= 2, "min_count", self.min_count, "an integer >= 2")
        self._require(
            self.min_total_duration_ms >= 0, "min_total_duration_ms", self.min_total_duration_ms, "a number >= 0"
        )
        self._require(self.traces_per_window >= 0, "traces_per_window", self.traces_per_window, "an integer >= 0")
        self._require(self.window_s > 0, "window", self.window_s, "a duration > 0")
        object.__setattr__(self, "_min_total_ns", int(self.min_total_duration_ms * 1_000_000))

    @property
    def stateful(self) -> bool:
        return True  # the loop's other spans may still be coming: refused in span-ingest mode

    def marks(self, trace: TraceView) -> Mapping[int, Mapping[str, AttributeValue]]:
        found = trace.n_plus_one(self.min_count, self._min_total_ns)  # cached: the vote found them already
        return span_marks(found) if found else _EMPTY

    def build(self, ctx: BuildContext) -> Policy:
        ctx.markers.append(self)
        return _NPlusOneEvaluator(self)


class _NPlusOneEvaluator:
    """The vote: no loop, not sampled; a loop, kept with the pattern's quota probability (or always)."""

    def __init__(self, spec: NPlusOne) -> None:
        self.name = spec.name
        self.spec = spec
        self._salt = salt_or_default(spec.hash_salt)
        self._patterns: OrderedDict[tuple[str, str, str], DecayedRate] = OrderedDict()

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        spec = self.spec
        found = trace.n_plus_one(spec.min_count, spec._min_total_ns)
        if not found or spec.traces_per_window == 0:
            return deterministic(bool(found), self.name)
        largest = max(found, key=lambda r: r.count)
        key = (trace.service, trace.root_name, largest.fingerprint)
        seen = self._patterns.get(key)
        if seen is None:
            # Time constant = the window: the decayed count is the pattern's traces "over about the last window".
            seen = self._patterns[key] = DecayedRate(spec.window_s * _LN2)
            if len(self._patterns) > _MAX_PATTERNS:
                self._patterns.popitem(last=False)
        else:
            self._patterns.move_to_end(key)
        seen.add(1.0, now)
        p = min(1.0, spec.traces_per_window / max(1.0, seen.total(now)))
        return threshold(trace.uniform(self._salt), p, self.name, "fnv:" + self._salt)
