"""Evaluates a trace against the configured policies and applies the combining rules.

``drop`` policies are evaluated first (any match ends evaluation, like upstream); with ``sample_on_first_match``
evaluation stops at the first ``Sampled`` vote. A policy that raises counts as no vote (the Collector's
``sampling_policy_evaluation_error``) and never stops the decision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pipeline.sampling.boost import ErrorSignal
from pipeline.sampling.combine import combine
from pipeline.sampling.decision import Decision, Verdict, Vote
from pipeline.sampling.policies import BuildContext, Drop, PolicySpec
from pipeline.sampling.trace import TraceView


class DecisionEngine:
    """Built policy evaluators plus the error signals they share with the rest of the pipeline."""

    def __init__(self, policies: Sequence[PolicySpec], *, sample_on_first_match: bool = False) -> None:
        ctx = BuildContext()
        drops = [p for p in policies if isinstance(p, Drop)]
        others = [p for p in policies if not isinstance(p, Drop)]
        self._policies = [p.build(ctx) for p in (*drops, *others)]
        self._observers = list(ctx.observers)
        self._first_match = sample_on_first_match
        if ctx.signals:
            self.error_signal = ctx.signals[0]
            self._own_signal = False
        else:
            # No error_boost policy: the processor still keeps the signal current for reports and the log sampler.
            self.error_signal = ErrorSignal()
            self._own_signal = True
        self.policy_errors: Counter[str] = Counter()

    def decide(self, trace: TraceView, now: float) -> Verdict:
        if self._own_signal:
            self.error_signal.observe((trace.service, trace.root_name), trace.has_error, now)
        for observer in self._observers:
            try:
                observer.observe(trace, now)
            except Exception:
                self.policy_errors["observe"] += 1
        decisions: list[Decision] = []
        for policy in self._policies:
            try:
                decision = policy.evaluate(trace, now)
            except Exception:
                self.policy_errors[policy.name] += 1
                continue
            decisions.append(decision)
            if decision.vote is Vote.DROPPED:
                break
            if self._first_match and decision.vote is Vote.SAMPLED:
                break
        return combine(decisions)
