"""Stress relief with Refinery's shape: hysteresis between an activation and a deactivation level, a minimum
active duration, and while active a decision by trace id alone (no buffering, no policies), so the sampler's
memory and CPU stop growing when intake outruns it. Pure: fed the load level and the time.
"""

from __future__ import annotations

from pipeline.sampling.config import StressRelief

_RANDOM_MASK = (1 << 56) - 1


class StressMonitor:
    """Tracks whether stress relief is active. ``level`` is a percentage of the tightest bound in use."""

    def __init__(self, settings: StressRelief) -> None:
        self.settings = settings
        self.active = settings.mode == "always"
        self.activations = 0
        self._since: float | None = None
        # The specification's rejection threshold: keep iff randomness >= (1 - p) * 2^56.
        self._threshold = (1 << 56) - round(settings.sampling_percentage / 100 * (1 << 56))

    def update(self, level: float, now: float) -> bool:
        s = self.settings
        if s.mode != "monitor":
            return self.active
        if not self.active and level >= s.activation_level:
            self.active = True
            self.activations += 1
            self._since = now
        elif (
            self.active
            and level < s.deactivation_level
            and now - (now if self._since is None else self._since) >= s.minimum_activation_duration_s
        ):
            self.active = False
        return self.active

    @property
    def probability(self) -> float:
        return self.settings.sampling_percentage / 100

    def keep(self, trace_id: int) -> bool:
        """Deterministic by trace id: the W3C random low 56 bits at or above the threshold, as ``th`` means."""
        return (trace_id & _RANDOM_MASK) >= self._threshold
