"""Exponential backoff with jitter, as a pure schedule: attempt number and a random draw in, seconds out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``attempt`` (1 = the wait after the first failure).

    The ceiling grows as ``base_s * multiplier**(attempt-1)`` up to ``max_s``; the delay is drawn from the upper
    half of it ("equal jitter"). Full jitter could draw ~0 and hammer a recovering database; no jitter would
    make every process that lost the database at the same moment retry at the same moments.
    """

    base_s: float
    max_s: float
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.base_s <= self.max_s) or self.multiplier < 1:
            raise ValueError(f"invalid backoff: base_s={self.base_s}, max_s={self.max_s}, multiplier={self.multiplier}")

    def ceiling_s(self, attempt: int) -> float:
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt}")
        # Cap the exponent before computing the power so a long outage cannot overflow a float.
        exponent = min(attempt - 1, 64)
        return min(self.max_s, self.base_s * self.multiplier**exponent)

    def delay_s(self, attempt: int, draw: float) -> float:
        """``draw`` is uniform in [0, 1) (``random.random()``); injected so tests need no randomness."""
        if not 0.0 <= draw <= 1.0:
            raise ValueError(f"draw must be in [0, 1], got {draw}")
        ceiling = self.ceiling_s(attempt)
        return ceiling / 2 + draw * ceiling / 2
