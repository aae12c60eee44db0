"""A token bucket with the clock passed in: the sampler's rate-limiting policies and the storage collector's plan
capture both ration work with it (pure, so it is tested without sleeps)."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Tokens refill continuously at ``rate`` per second up to ``capacity``; the clock is passed in."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last: float | None = None

    def refill(self, now: float) -> None:
        if self.last is not None and now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        if self.last is None or now > self.last:
            self.last = now

    def take(self, amount: float, now: float, *, allow_debt: bool) -> bool:
        """Take ``amount`` tokens. With ``allow_debt`` a full bucket admits anything and goes negative."""
        self.refill(now)
        needed = min(amount, self.capacity) if allow_debt else amount
        if self.tokens >= needed and (allow_debt or amount <= self.capacity):
            self.tokens -= amount
            return True
        return False
