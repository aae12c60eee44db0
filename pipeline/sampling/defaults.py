"""Sieve's default tail sampling configuration, equal to the ``tail_sampling`` block of ``otel-config.yaml``.

Kept in Python (not read from the file at run time) so an installed package needs no repository checkout; a test
keeps the two equal. ``with_extensions=True`` appends Sieve's own policies (error boost and a rare-operation
floor) that the Collector cannot run.
"""

from __future__ import annotations

from pipeline.sampling.config import TailSamplingConfig
from pipeline.sampling.policies import (
    BooleanAttribute,
    Drop,
    ErrorBoost,
    Latency,
    PolicySpec,
    Probabilistic,
    Rare,
    StatusCodeFilter,
    StringAttribute,
)

BASELINE_PERCENTAGE = 10.0
SLOW_TRACE_MS = 500

DEFAULT_POLICIES: tuple[PolicySpec, ...] = (
    Drop(
        name="drop-health-checks",
        drop_sub_policy=(
            StringAttribute(
                name="health-routes",
                key="url.path",
                values=("^/(healthz|readyz|livez|metrics)$",),
                enabled_regex_matching=True,
            ),
        ),
    ),
    StatusCodeFilter(name="errors", status_codes=("ERROR",)),
    Latency(name="slow-traces", threshold_ms=SLOW_TRACE_MS),
    BooleanAttribute(name="force-sample", key="sieve.force_sample", value=True),
    # A storage operation over its slow threshold (collectors/storage.py) keeps its trace even when the whole
    # turn stays under SLOW_TRACE_MS: slow lookups are what `sieve slow-lookups` diagnoses from kept spans.
    BooleanAttribute(name="slow-lookups", key="sieve.db.slow", value=True),
    Probabilistic(name="baseline", sampling_percentage=BASELINE_PERCENTAGE),
)

EXTENSION_POLICIES: tuple[PolicySpec, ...] = (
    # Same base rate and hash salt as `baseline`, so its keeps nest inside the boosted ones.
    ErrorBoost(name="error-boost", base_percentage=BASELINE_PERCENTAGE, max_boost=10.0, half_life_s=60.0),
    Rare(name="rare-operations", traces_per_window=1, window_s=60.0),
)


def default_config(*, with_extensions: bool = False) -> TailSamplingConfig:
    """The default configuration; with Sieve's extension policies appended when ``with_extensions``."""
    policies = DEFAULT_POLICIES + (EXTENSION_POLICIES if with_extensions else ())
    return TailSamplingConfig(
        policies=policies,
        decision_wait_s=10.0,
        num_traces=5000,
        expected_new_traces_per_sec=500,
        sampled_cache_size=10_000,
        non_sampled_cache_size=100_000,
    )
