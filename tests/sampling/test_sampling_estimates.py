"""Counts rebuilt from kept traces alone are unbiased: 120,000 simulated traces through the default policies with
Sieve's extensions (error boost, rare operations, client-input quota) and the kept-volume budget - first windows,
rare keys, boosted keys, combined votes and budget thinning included.

Horvitz-Thompson: each kept trace counts 1 / (its stamped probability); the standard error at the stamped
probabilities is sqrt(sum over all traces of (1 - p) / p). The workload (pipeline/sampling/simulation.py): 100
traces/s for 20 minutes, six operations (one rare, one malformed client input), 0.5 % errors, 2 % slow traces, and
from minute 10 a one-minute burst of 25 % errors on the busiest operation that pushes the kept volume against the
20 traces/s budget. Pure logic, fake clock, fixed seed (other seeds: |z| < 3 too).
"""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.sampling.budget import BudgetSettings
from pipeline.sampling.config import TailSamplingConfig
from pipeline.sampling.defaults import default_config
from pipeline.sampling.simulation import Result, Workload, run

BUDGET = 20.0


@pytest.fixture(scope="module")
def result() -> Result:
    return run(default_config(with_extensions=True), Workload())


@pytest.fixture(scope="module")
def unbudgeted() -> Result:
    config = dataclasses.replace(default_config(with_extensions=True), budget=BudgetSettings(0))
    return run(config, Workload(traces=40_000, seed=11))


def test_every_class_within_three_standard_errors(result: Result) -> None:
    assert len(result.truth) >= 9  # ok and error classes of six operations, client input, a rare operation
    worst = max(abs(result.z(k)) for k in result.truth)
    assert worst < 3.0, {k: round(result.z(k), 2) for k in result.truth}


def test_large_classes_within_five_percent(result: Result) -> None:
    large = [k for k, n in result.truth.items() if n >= 10_000]
    assert {("call_tool", "OK"), ("ping", "OK"), ("list_tools", "OK")} <= set(large)
    for key in large:
        assert abs(result.relative_error(key)) < 0.05, (key, result.relative_error(key))


def test_errors_and_rare_keys_are_estimated_too(result: Result) -> None:
    for key in (("call_tool", "ERROR"), ("sync_settings", "OK"), ("invalid", "ERROR")):
        assert result.truth[key] > 0
        assert abs(result.z(key)) < 3.0, (key, result.z(key))


def test_every_window_within_three_standard_errors(result: Result) -> None:
    """Any one-minute window - the first one and the burst's included - per operation and status."""
    zs = []
    for truth, estimate, variance in result.windows.values():
        if variance > 0:
            zs.append((estimate - truth) / variance**0.5)
        else:
            assert estimate == truth  # everything kept at probability 1
    assert len(zs) > 100
    assert max(abs(z) for z in zs) < 3.5  # 120+ windows x classes: 3.5 sd leaves room for the multiplicity
    first_minute = [k for (w, k) in result.windows if w == 0]
    assert ("sync_settings", "OK") in first_minute


BURST = range(605, 660)  # the burst's seconds, after the 2 s half-life of the demand estimate


def test_budget_holds_through_the_burst(result: Result) -> None:
    kept = [result.kept_per_second[s] for s in BURST]
    assert sum(kept) / len(kept) <= BUDGET * 1.1
    steady = [result.kept_per_second[s] for s in range(30, 590)]
    assert sum(steady) / len(steady) < BUDGET  # outside the burst the budget does not bind


def test_burst_keeps_errors_first_and_ordinary_traces_within_what_is_left(result: Result) -> None:
    kept = sum(result.kept_per_second[s] for s in BURST)
    kept_ok = sum(result.kept_ok_per_second[s] for s in BURST)
    ok = sum(result.ok_per_second[s] for s in BURST)
    errors = sum(result.seen_per_second[s] - result.ok_per_second[s] for s in BURST)
    errors_kept = kept - kept_ok
    # Errors come first: they get what the budget has left after the two other tiers' 10 % floors.
    room = BUDGET * (1 - 2 * 0.1) * len(BURST)
    assert errors_kept >= 0.9 * min(errors, room)
    assert kept_ok <= BUDGET * len(BURST) * 1.1 - errors_kept  # ordinary traces: what errors leave
    assert kept_ok / ok < 0.1  # not the 66 % a x10 boost kept before the budget


def test_without_budget_estimates_stay_exact(unbudgeted: Result) -> None:
    assert max(abs(unbudgeted.z(k)) for k in unbudgeted.truth) < 3.0
    assert unbudgeted.estimate[("call_tool", "ERROR")] == unbudgeted.truth[("call_tool", "ERROR")]


def test_probabilistic_alone_matches_its_rate_exactly() -> None:
    from pipeline.sampling.policies import Probabilistic

    config = TailSamplingConfig(policies=(Probabilistic(name="p", sampling_percentage=5),), budget=BudgetSettings(0))
    r = run(config, Workload(traces=20_000, seed=3))
    total = sum(r.truth.values())
    assert sum(r.estimate.values()) == pytest.approx(total, rel=0.1)
