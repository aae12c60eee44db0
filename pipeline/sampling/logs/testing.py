"""Fakes for the log path's tests (shipped, like the SDK's in-memory exporters): a decision source you drive."""

from __future__ import annotations

from pipeline.sampling.logs.sampler import DecisionListener


class FakeDecisionSource:
    """Stands in for ``TailSamplingProcessor.add_decision_listener``: ``decide(...)`` calls every listener."""

    def __init__(self) -> None:
        self.listeners: list[DecisionListener] = []

    def add_decision_listener(self, callback: DecisionListener) -> None:
        self.listeners.append(callback)

    def decide(self, trace_id: int, keep: bool, probability: float = 1.0, reason: str = "test") -> None:
        for listener in self.listeners:
            listener(trace_id, keep, probability, reason)
