"""Settings of the log sampler, with the old daemon's categories as the documented example defaults.

The rates are per record and random (not every Nth, as the old ``SamplingLogger`` did: its first occurrence was
never logged, old-system.md section 2.5). Any category name is allowed; names not listed use ``default_rate``.

YAML (the composition root maps a ``logs.sampling`` section onto this class)::

    logs:
      sampling:
        categories: {SAFE_SEND: 0.01, MSG_LOOP: 0.001, SESSION: 0.05, CLEANUP: 0.0001}
        default_rate: 1.0
        always_keep_level: 30        # WARNING
        boost_factor: 10.0
        boost_max_multiplier: 100.0
        boost_rate_cap: 1.0
        boost_refresh_s: 0.25
        follow_traces: true
        max_wait_s: 15.0
        max_pending_records: 10000
        max_pending_per_trace: 256
        decision_cache_size: 20000
        sweep_interval_s: 1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# The old daemon's categories and their rates before 2025-11-01 (old-system.md section 2.5).
OLD_DAEMON_RATES: Mapping[str, float] = MappingProxyType(
    {"SAFE_SEND": 0.01, "MSG_LOOP": 0.001, "SESSION": 0.05, "CLEANUP": 0.0001}
)


def _check(name: str, value: float, ok: bool, accepted: str) -> None:
    if not ok:
        raise ValueError(f"logs.sampling.{name}: {value!r} is not accepted; expected {accepted}")


def _is_rate(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0


@dataclass(frozen=True)
class LogSamplingSettings:
    """How category log records are sampled and how long they wait for their trace.

    ``max_wait_s`` should exceed the tail sampler's ``decision_wait`` plus ``decision_wait_after_root_received``
    (10 s + 2 s by default): a record's trace is decided at most that long after its first span.
    """

    categories: Mapping[str, float] = field(default_factory=lambda: dict(OLD_DAEMON_RATES))
    default_rate: float = 1.0  # a category nobody configured keeps everything: nothing vanishes by surprise
    always_keep_level: int = 30  # WARNING (loguru and stdlib share the numbers)
    # While the error signal is above 1: multiplier = min(boost_max_multiplier, 1 + boost_factor * (level - 1)),
    # rate = max(base, min(boost_rate_cap, base * multiplier)). The signal decays, so the boost does too.
    boost_factor: float = 10.0
    boost_max_multiplier: float = 100.0
    boost_rate_cap: float = 1.0
    boost_refresh_s: float = 0.25  # how often the hot path re-reads the (locked) error signal
    follow_traces: bool = True  # hold records of a trace until the tail sampler decides it
    max_wait_s: float = 15.0
    max_pending_records: int = 10_000
    max_pending_per_trace: int = 256
    decision_cache_size: int = 20_000  # decided traces remembered for records logged after the decision
    sweep_interval_s: float = 1.0  # how often expired records are swept (on the next hold or decision)

    def __post_init__(self) -> None:
        for name, rate in self.categories.items():
            _check(f"categories.{name}", rate, isinstance(name, str) and bool(name) and _is_rate(rate), "0..1")
        _check("default_rate", self.default_rate, _is_rate(self.default_rate), "a rate in 0..1")
        _check("always_keep_level", self.always_keep_level, 0 < self.always_keep_level <= 50, "1..50")
        _check("boost_factor", self.boost_factor, self.boost_factor >= 0, "a number >= 0")
        _check("boost_max_multiplier", self.boost_max_multiplier, self.boost_max_multiplier >= 1, "a number >= 1")
        _check("boost_rate_cap", self.boost_rate_cap, 0 < self.boost_rate_cap <= 1, "a rate in (0, 1]")
        _check("boost_refresh_s", self.boost_refresh_s, self.boost_refresh_s >= 0, "seconds >= 0")
        ok_wait = self.max_wait_s > 0 and math.isfinite(self.max_wait_s)
        _check("max_wait_s", self.max_wait_s, ok_wait, "finite seconds > 0")
        _check("max_pending_records", self.max_pending_records, self.max_pending_records >= 0, "an integer >= 0")
        _check("max_pending_per_trace", self.max_pending_per_trace, self.max_pending_per_trace >= 0, "an int >= 0")
        _check("decision_cache_size", self.decision_cache_size, self.decision_cache_size >= 0, "an integer >= 0")
        _check("sweep_interval_s", self.sweep_interval_s, self.sweep_interval_s >= 0, "seconds >= 0")
        object.__setattr__(self, "categories", MappingProxyType(dict(self.categories)))

    def rate(self, category: str) -> float:
        """The base rate of ``category`` (``default_rate`` when it is not configured)."""
        return self.categories.get(category, self.default_rate)
