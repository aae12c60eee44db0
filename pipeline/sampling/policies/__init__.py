"""Sampling policies: the Collector's ``tail_sampling`` types and Sieve's extensions.

``ottl_condition`` is accepted (so the Collector tier's file loads unchanged) but never evaluated.

Each type is a frozen, validated specification (:class:`PolicySpec`); ``build()`` gives the evaluator a processor
runs. ``UPSTREAM_TYPES`` and ``EXTENSION_TYPES`` map the configuration's ``type:`` to the specification class.
"""

from __future__ import annotations

from .base import BuildContext, Marker, Observer, Policy, PolicySpec
from .combinators import And, Composite, Drop, Not, RateAllocation
from .filters import (
    AlwaysSample,
    BooleanAttribute,
    Latency,
    NumericAttribute,
    OttlCondition,
    SpanCount,
    StatusCodeFilter,
    StringAttribute,
    TraceFlags,
    TraceStateFilter,
)
from .hashing import DEFAULT_HASH_SALT, Probabilistic, fnv1a64
from .limiting import BytesLimiting, RateLimiting
from .nplusone import NPlusOne
from .sieve import Dynamic, ErrorBoost, Rare

UPSTREAM_TYPES: dict[str, type[PolicySpec]] = {
    cls.TYPE: cls
    for cls in (
        AlwaysSample,
        Latency,
        StatusCodeFilter,
        Probabilistic,
        RateLimiting,
        BytesLimiting,
        SpanCount,
        TraceStateFilter,
        TraceFlags,
        StringAttribute,
        NumericAttribute,
        BooleanAttribute,
        And,
        Not,
        Composite,
        Drop,
        OttlCondition,
    )
}
EXTENSION_TYPES: dict[str, type[PolicySpec]] = {cls.TYPE: cls for cls in (ErrorBoost, Rare, Dynamic, NPlusOne)}
ALL_TYPES: dict[str, type[PolicySpec]] = {**UPSTREAM_TYPES, **EXTENSION_TYPES}

__all__ = [
    "ALL_TYPES",
    "DEFAULT_HASH_SALT",
    "EXTENSION_TYPES",
    "UPSTREAM_TYPES",
    "AlwaysSample",
    "And",
    "BooleanAttribute",
    "BuildContext",
    "BytesLimiting",
    "Composite",
    "Drop",
    "Dynamic",
    "ErrorBoost",
    "Latency",
    "Marker",
    "NPlusOne",
    "Not",
    "NumericAttribute",
    "Observer",
    "OttlCondition",
    "Policy",
    "PolicySpec",
    "Probabilistic",
    "Rare",
    "RateAllocation",
    "RateLimiting",
    "SpanCount",
    "StatusCodeFilter",
    "StringAttribute",
    "TraceFlags",
    "TraceStateFilter",
    "fnv1a64",
]
