"""Trace-id randomness shared with the OpenTelemetry Collector, and the ``probabilistic`` policy.

``internal/sampling/probabilistic.go``: FNV-1a 64 over ``salt`` bytes then the 16 trace-id bytes (big-endian),
sampled when the hash is <= ``MaxUint64 * ratio`` computed in Go's ``big.Float`` (64-bit mantissa, round to
nearest even, then truncated to an integer). The empty salt means ``"default-hash-seed"``. Reproducing both steps
exactly makes a trace get the same decision here, in another process, and on the Collector tier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from pipeline.sampling.decision import Decision, Vote
from pipeline.sampling.fnv import _MASK, DEFAULT_HASH_SALT, MAX_UINT64, fnv1a64
from pipeline.sampling.region import below
from pipeline.sampling.trace import TraceView

from .base import PolicySpec

__all__ = ["DEFAULT_HASH_SALT", "MAX_UINT64", "Probabilistic", "collector_threshold", "fnv1a64", "uniform"]


def uniform(salt: str, trace_id: int) -> float:
    """The trace's randomness in [0, 1) for ``salt``: all Sieve's random policies draw from this."""
    return fnv1a64(salt, trace_id) / 18446744073709551616.0


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a strong 64-bit mixer (FNV-1a alone is a weak one)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def independent_uniform(tag: int, trace_id: int) -> float:
    """A second uniform of the trace, independent of :func:`uniform` (for the kept-volume budget's thinning)."""
    x = _mix64((trace_id & _MASK) ^ _mix64(((trace_id >> 64) & _MASK) ^ tag))
    return x / 18446744073709551616.0


def collector_threshold(ratio: float) -> int:
    """``MaxUint64 * ratio`` as Go's ``big.Float`` computes it (64-bit precision, nearest-even, truncate)."""
    if ratio <= 0:
        return 0
    exact = Fraction(MAX_UINT64) * Fraction(ratio)
    if exact >= MAX_UINT64:
        return MAX_UINT64
    # Round the exact product to a 64-bit mantissa, then drop the fraction like big.Float.Uint64().
    exponent = exact.numerator.bit_length() - exact.denominator.bit_length()
    if Fraction(2) ** exponent > exact:
        exponent -= 1
    scale = Fraction(2) ** (63 - exponent)
    mantissa = round(exact * scale)  # Python rounds half to even
    return int(mantissa / scale)


def salt_or_default(salt: str) -> str:
    return salt or DEFAULT_HASH_SALT


@dataclass(frozen=True)
class Probabilistic(PolicySpec):
    """Keeps ``sampling_percentage`` % of traces, consistently by trace id (the Collector's hash)."""

    TYPE = "probabilistic"
    sampling_percentage: float = 0.0
    hash_salt: str = ""
    _threshold: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Like upstream: <= 0 never samples, >= 100 samples everything; nothing is refused.
        object.__setattr__(self, "_threshold", collector_threshold(self.sampling_percentage / 100))

    @property
    def probability(self) -> float:
        return min(1.0, max(0.0, self.sampling_percentage / 100))

    @property
    def randomness(self) -> str:
        return "fnv:" + salt_or_default(self.hash_salt)

    def evaluate(self, trace: TraceView, now: float) -> Decision:
        keep = trace.hash64(salt_or_default(self.hash_salt)) <= self._threshold
        vote = Vote.SAMPLED if keep else Vote.NOT_SAMPLED
        return Decision(vote, self.name, below(self.probability), self.randomness)
