"""Counts of log records seen, kept and dropped, and the plain snapshot the demo report shows.

The true volume stays visible when 99.9% of a category is dropped: every record that passed the level check is
counted as seen, whatever happens to it next.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

ERROR_LEVEL = 40  # loguru's and stdlib's ERROR
_LEVEL_NAMES = {5: "TRACE", 10: "DEBUG", 20: "INFO", 25: "SUCCESS", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def level_name(level_no: int) -> str:
    """The loguru name of a level number (``LEVEL_<n>`` for custom levels)."""
    return _LEVEL_NAMES.get(level_no) or f"LEVEL_{level_no}"


class _GateCounts(Protocol):
    name: str
    seen: dict[int, int]
    kept: dict[tuple[int, str], int]
    dropped: dict[str, int]


def _add(target: dict[Any, int], key: Any, count: int = 1) -> None:
    target[key] = target.get(key, 0) + count


@dataclass
class Counts:
    """seen[(category, level)], kept[(category, level, reason)], dropped[(category, reason)]."""

    seen: dict[tuple[str, int], int] = field(default_factory=dict)
    kept: dict[tuple[str, int, str], int] = field(default_factory=dict)
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)
    internal_errors: int = 0

    def keep(self, category: str, level_no: int, reason: str, *, seen: bool = False) -> None:
        if seen:
            _add(self.seen, (category, level_no))
        _add(self.kept, (category, level_no, reason))

    def drop(self, category: str, reason: str) -> None:
        _add(self.dropped, (category, reason))

    def merged(self, gates: Iterable[_GateCounts]) -> Counts:
        """A copy with each gate's lock-free hot-path counts added."""
        out = Counts(dict(self.seen), dict(self.kept), dict(self.dropped), self.internal_errors)
        for gate in gates:
            # Copies first: the hot path may insert a key while we iterate.
            for level_no, count in dict(gate.seen).items():
                _add(out.seen, (gate.name, level_no), count)
            for (level_no, reason), count in dict(gate.kept).items():
                _add(out.kept, (gate.name, level_no, reason), count)
            for reason, count in dict(gate.dropped).items():
                _add(out.dropped, (gate.name, reason), count)
        return out


def snapshot(
    counts: Counts, gates: Iterable[_GateCounts], pending: int, pending_traces: int, multiplier: float
) -> dict[str, Any]:
    """Nested plain dicts: per category and level, per reason, totals, and ``all_errors_kept``."""
    c = counts.merged(gates)
    seen: dict[str, dict[str, int]] = {}
    kept: dict[str, dict[str, int]] = {}
    kept_by_reason: dict[str, int] = {}
    dropped: dict[str, dict[str, int]] = {}
    dropped_by_reason: dict[str, int] = {}
    errors_seen = errors_kept = 0
    for (category, level_no), count in sorted(c.seen.items()):
        _add(seen.setdefault(category, {}), level_name(level_no), count)
        errors_seen += count if level_no >= ERROR_LEVEL else 0
    for (category, level_no, reason), count in sorted(c.kept.items()):
        _add(kept.setdefault(category, {}), level_name(level_no), count)
        _add(kept_by_reason, reason, count)
        errors_kept += count if level_no >= ERROR_LEVEL else 0
    for (category, reason), count in sorted(c.dropped.items()):
        _add(dropped.setdefault(category, {}), reason, count)
        _add(dropped_by_reason, reason, count)
    return {
        "seen": sum(c.seen.values()),
        "kept": sum(c.kept.values()),
        "dropped": sum(c.dropped.values()),
        "pending": pending,
        "pending_traces": pending_traces,
        "seen_by_category": seen,
        "kept_by_category": kept,
        "kept_by_reason": dict(sorted(kept_by_reason.items())),
        "dropped_by_category": dropped,
        "dropped_by_reason": dict(sorted(dropped_by_reason.items())),
        "errors_seen": errors_seen,
        "errors_kept": errors_kept,
        "all_errors_kept": errors_kept >= errors_seen,
        "rate_multiplier": round(multiplier, 3),
        "internal_errors": c.internal_errors,
    }
