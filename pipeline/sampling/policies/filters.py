"""The Collector's deterministic filter policies.

Semantics follow ``processor/tailsamplingprocessor`` (README and ``internal/sampling/*.go``): a filter votes
sampled when *any* span (or resource) matches. ``invert_match`` votes a plain sampled when *no* resource or span
carries a matching value, else not sampled (``util.go`` ``invertHasResourceOrSpanWithCondition`` with the
``disableinvertdecisions`` gate on, the default since v0.144 and the only behaviour since the gate's removal).

Configurations the Collector accepts are accepted here even when they can never match (an empty ``values`` list,
an empty key, an upper latency bound below the lower one): such a policy simply votes not sampled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry.trace import StatusCode

from pipeline.sampling.decision import Decision, deterministic
from pipeline.sampling.trace import TraceView

from .base import PolicySpec

_STATUS_NAMES = {"OK": StatusCode.OK, "ERROR": StatusCode.ERROR, "UNSET": StatusCode.UNSET}
_DEFAULT_REGEX_CACHE = 128  # the Collector's default cache_max_size
_TRACESTATE_ENTRY_LIMIT = 256


@dataclass(frozen=True)
class AlwaysSample(PolicySpec):
    """Samples every trace."""

    TYPE = "always_sample"

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        return deterministic(True, self.name)


@dataclass(frozen=True)
class Latency(PolicySpec):
    """Trace duration (latest end - earliest start) in (threshold, upper]; ``upper_threshold_ms: 0`` = no upper
    bound. The lower bound is exclusive with or without an upper bound (contrib PR #49595, v0.157)."""

    TYPE = "latency"
    threshold_ms: int = 0
    upper_threshold_ms: int = 0

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        duration_ms = trace.duration_ns // 1_000_000  # Go's Duration.Milliseconds() truncates
        if self.upper_threshold_ms == 0:
            return deterministic(duration_ms > self.threshold_ms, self.name)
        return deterministic(self.threshold_ms < duration_ms <= self.upper_threshold_ms, self.name)

    @property
    def stateful(self) -> bool:
        # A trace can still grow past the upper bound: span-ingest mode refuses it (contrib PR #47476).
        return self.upper_threshold_ms > 0


@dataclass(frozen=True)
class StatusCodeFilter(PolicySpec):
    """Samples a trace that has a span with one of ``status_codes`` (OK, ERROR, UNSET)."""

    TYPE = "status_code"
    status_codes: tuple[str, ...] = ()
    _codes: tuple[StatusCode, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        accepted = "a non-empty list of OK, ERROR, UNSET"
        self._require(bool(self.status_codes), "status_codes", list(self.status_codes), accepted)
        for code in self.status_codes:
            self._require(code in _STATUS_NAMES, "status_codes", code, accepted)
        # A tuple: `in` compares enum members by identity first, a set would hash them in Python.
        object.__setattr__(self, "_codes", tuple(_STATUS_NAMES[c] for c in self.status_codes))

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        codes = self._codes
        present = trace.status_codes
        if len(codes) == 1:
            return deterministic(codes[0] in present, self.name)
        return deterministic(any(code in present for code in codes), self.name)


@dataclass(frozen=True)
class SpanCount(PolicySpec):
    """Span count within [min_spans, max_spans], inclusive; ``max_spans: 0`` means no upper bound."""

    TYPE = "span_count"
    min_spans: int = 0
    max_spans: int = 0

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        n = trace.span_count
        return deterministic(n >= self.min_spans and (self.max_spans == 0 or n <= self.max_spans), self.name)

    @property
    def stateful(self) -> bool:
        return self.max_spans > 0  # more spans may still arrive (contrib PR #47476)


@dataclass(frozen=True)
class TraceStateFilter(PolicySpec):
    """Any span whose W3C tracestate has ``key`` equal to one of ``values``."""

    TYPE = "trace_state"
    key: str = ""
    values: tuple[str, ...] = ()

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        # Like the Collector, a key=value pair that could not fit in a tracestate entry never matches.
        wanted = {v for v in self.values if v and len(self.key) + len(v) < _TRACESTATE_ENTRY_LIMIT}
        for span in trace.spans:
            ctx = span.context
            if ctx is not None and ctx.trace_state.get(self.key) in wanted:
                return deterministic(True, self.name)
        return deterministic(False, self.name)


@dataclass(frozen=True)
class TraceFlags(PolicySpec):
    """Any span already carrying the W3C sampled flag (e.g. head-sampled upstream)."""

    TYPE = "trace_flags"

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        matched = any(s.context is not None and s.context.trace_flags.sampled for s in trace.spans)
        return deterministic(matched, self.name)


def _attribute_decision(
    trace: TraceView, key: str, match: Callable[[object], bool], invert: bool, name: str
) -> Decision:
    """Any resource or span whose ``key`` matches; with ``invert``, sampled when none does."""
    values = trace.values_of(key)
    hit = bool(values) and any(match(v) for v in values)
    return deterministic(hit is not invert, name)


@dataclass(frozen=True)
class StringAttribute(PolicySpec):
    """Exact values, or regular expressions (searched, like Go's ``MatchString``) with a bounded result cache."""

    TYPE = "string_attribute"
    key: str = ""
    values: tuple[str, ...] = ()
    enabled_regex_matching: bool = False
    cache_max_size: int = 0
    invert_match: bool = False
    _patterns: tuple[re.Pattern[str], ...] = field(init=False, compare=False, repr=False)
    _cache: dict[str, bool] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        patterns: list[re.Pattern[str]] = []
        if self.enabled_regex_matching:
            for value in self.values:
                try:
                    patterns.append(re.compile(value))
                except re.error as exc:
                    self._require(False, "values", value, f"a valid regular expression ({exc})")
        object.__setattr__(self, "_patterns", tuple(patterns))
        object.__setattr__(self, "_cache", {})

    def _matches(self, value: object) -> bool:
        if not isinstance(value, str) or value == "":
            return False
        if not self.enabled_regex_matching:
            return value in self.values
        cache = self._cache
        hit = cache.get(value)
        if hit is None:
            hit = any(p.search(value) for p in self._patterns)
            if len(cache) >= (self.cache_max_size if self.cache_max_size > 0 else _DEFAULT_REGEX_CACHE):
                cache.pop(next(iter(cache)))
            cache[value] = hit
        return hit

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        return _attribute_decision(trace, self.key, self._matches, self.invert_match, self.name)


@dataclass(frozen=True)
class NumericAttribute(PolicySpec):
    """Integer (or float) attribute within [min_value, max_value]. A bound that is absent *or 0* is open: the
    Collector reads both as Go ``int64`` and passes only non-zero ones on (``getSharedPolicyEvaluator``)."""

    TYPE = "numeric_attribute"
    key: str = ""
    min_value: int | None = None
    max_value: int | None = None
    invert_match: bool = False

    def __post_init__(self) -> None:
        self._require(
            bool(self.min_value) or bool(self.max_value),
            "min_value",
            self.min_value,
            "a non-zero min_value or max_value (0 means no bound; the Collector fails on a policy with neither)",
        )

    def _matches(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        lo, hi = self.min_value or None, self.max_value or None
        return (lo is None or value >= lo) and (hi is None or value <= hi)

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        return _attribute_decision(trace, self.key, self._matches, self.invert_match, self.name)


@dataclass(frozen=True)
class BooleanAttribute(PolicySpec):
    """Samples a trace whose resource or a span has the boolean attribute ``key`` equal to ``value`` (``invert_match``:
    when none has)."""

    TYPE = "boolean_attribute"
    key: str = ""
    value: bool = False
    invert_match: bool = False

    def _matches(self, value: object) -> bool:
        return isinstance(value, bool) and value is self.value

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        return _attribute_decision(trace, self.key, self._matches, self.invert_match, self.name)


@dataclass(frozen=True)
class OttlCondition(PolicySpec):
    """Accepted so one file serves both tiers, never evaluated: Sieve has no OTTL interpreter. The policy votes
    not sampled (inside a ``drop`` it never drops, inside an ``and`` it never matches); loading warns."""

    TYPE = "ottl_condition"
    error_mode: str = ""
    span: tuple[str, ...] = ()
    spanevent: tuple[str, ...] = ()

    def warnings(self) -> list[str]:
        return [
            (
                f"policies.{self.name}: ottl_condition is not evaluated in-process (no OTTL interpreter); "
                "it votes not sampled here and runs only on a Collector tier"
            )
        ]

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        return deterministic(False, self.name)
