"""Sieve's default tail sampling configuration, equal to the ``tail_sampling`` block of ``otel-config.yaml``.

Kept in Python (not read from the file at run time) so an installed package needs no repository checkout; a test
keeps the two equal. ``with_extensions=True`` adds Sieve's own policies that the Collector cannot run: the N+1
detector (``n_plus_one``, a deterministic filter, listed with the other filters before the random ``baseline``, so
the reason stamped on a trace it keeps - the first policy that kept it, in listing order - is ``n-plus-one``
rather than the 10 % draw that would also have kept it) and, after the baseline, the error boost, a rare-operation
floor and the client-input quota. Without the extensions the list is the Collector tier's, in its order.

Client input is not an incident: a malformed or unknown message fails its span (``error.type`` from
``collectors/websocket.py`` and the demo service), but a client sending garbage must not fill the trace store.
The ``errors`` policy keeps every error trace *except* those marked with a client-input ``error.type``
(a ``string_attribute`` with ``invert_match``, a plain vote since Collector v0.144); in-process, the
``client-input`` extension keeps a few of those per key and window with a true probability, and the error boost
ignores them. On the Collector tier they fall to the 10 % baseline.
"""

from __future__ import annotations

from pipeline.names.storage import N_PLUS_ONE_POLICY
from pipeline.names.websocket import ERROR_TYPE
from pipeline.sampling.config import TailSamplingConfig
from pipeline.sampling.policies import (
    And,
    BooleanAttribute,
    Drop,
    ErrorBoost,
    Latency,
    NPlusOne,
    PolicySpec,
    Probabilistic,
    Rare,
    StatusCodeFilter,
    StringAttribute,
)

BASELINE_PERCENTAGE = 10.0
SLOW_TRACE_MS = 500
ERROR_BOOST_MAX = 3.0  # 10 % -> 30 % for the keys that err, within the kept-volume budget
ROOT_WAIT_S = 2.0

# error.type values that mean "the client sent something we refuse", not "the service failed".
CLIENT_INPUT_ERROR_TYPES: tuple[str, ...] = (
    # the envelope (collectors/_envelope.py, collectors/websocket.py)
    "not_json",
    "not_object",
    "binary",
    "too_large",
    "invalid_utf8",
    "missing_op",
    # the demo service's refusals (pipeline/demo/service.py)
    "unknown_op",
    "invalid_request",
    "bad_message",
    "duplicate_request",
    "not_found",
    "already_hello",
    "invalid_first_message",
    "not_hello",
)

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
    And(
        name="errors",
        and_sub_policy=(
            StatusCodeFilter(name="error-spans", status_codes=("ERROR",)),
            StringAttribute(
                name="not-client-input", key=ERROR_TYPE, values=CLIENT_INPUT_ERROR_TYPES, invert_match=True
            ),
        ),
    ),
    Latency(name="slow-traces", threshold_ms=SLOW_TRACE_MS),
    BooleanAttribute(name="force-sample", key="sieve.force_sample", value=True),
    # A storage operation over its slow threshold (collectors/storage.py) keeps its trace even when the whole
    # turn stays under SLOW_TRACE_MS: slow lookups are what `sieve slow-lookups` diagnoses from kept spans.
    BooleanAttribute(name="slow-lookups", key="sieve.db.slow", value=True),
    Probabilistic(name="baseline", sampling_percentage=BASELINE_PERCENTAGE),
)

# Deterministic extensions: listed with the filters, before `baseline`.
FILTER_EXTENSIONS: tuple[PolicySpec, ...] = (
    # One statement shape 5+ times in a row under one parent span (pipeline/sampling/nplusone.py; Sentry's count).
    # Its findings also mark the kept trace's spans (sieve.db.n_plus_one), which `sieve slow-lookups` reads.
    NPlusOne(name=N_PLUS_ONE_POLICY),
)

EXTENSION_POLICIES: tuple[PolicySpec, ...] = (
    # Same base rate and hash salt as `baseline`, so its keeps nest inside the boosted ones.
    ErrorBoost(
        name="error-boost",
        base_percentage=BASELINE_PERCENTAGE,
        max_boost=ERROR_BOOST_MAX,
        half_life_s=60.0,
        ignore_error_types=CLIENT_INPUT_ERROR_TYPES,
    ),
    Rare(name="rare-operations", traces_per_window=1, window_s=60.0),
    And(
        name="client-input",
        and_sub_policy=(
            StatusCodeFilter(name="client-error-spans", status_codes=("ERROR",)),
            StringAttribute(name="client-input-types", key=ERROR_TYPE, values=CLIENT_INPUT_ERROR_TYPES),
            Rare(name="client-input-quota", traces_per_window=3, window_s=60.0),
        ),
    ),
)


def default_config(*, with_extensions: bool = False) -> TailSamplingConfig:
    """The default configuration; with Sieve's extension policies when ``with_extensions``."""
    policies = extended_policies() if with_extensions else DEFAULT_POLICIES
    return TailSamplingConfig(
        policies=policies,
        decision_wait_s=10.0,
        decision_wait_after_root_received_s=ROOT_WAIT_S,
        num_traces=5000,
        expected_new_traces_per_sec=500,
        sampled_cache_size=10_000,
        non_sampled_cache_size=100_000,
    )


def extended_policies() -> tuple[PolicySpec, ...]:
    """The in-process set: the filters, the deterministic extensions, the baseline, the random extensions."""
    baseline = next(i for i, p in enumerate(DEFAULT_POLICIES) if isinstance(p, Probabilistic))
    return DEFAULT_POLICIES[:baseline] + FILTER_EXTENSIONS + DEFAULT_POLICIES[baseline:] + EXTENSION_POLICIES
