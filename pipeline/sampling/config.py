"""The tail sampler's configuration: the Collector ``tail_sampling`` block, plus a few in-process settings.

Loads the block exactly as written for the Collector (``processors.tail_sampling`` in ``otel-config.yaml``) or as a
Python mapping; every bad value is a :class:`~pipeline.errors.ConfigError` naming the setting.

Defaults differ from the Collector's on purpose: a Python process cannot hold 50,000 traces for 30 s (each buffered
span retains ~2.8 KB and GC cost grows with the live window), so Sieve decides ``decision_wait_after_root_received``
(2 s when the key is absent; an explicit ``0s`` turns the root trigger off, as upstream) after the local root span
ends, waits at most ``decision_wait`` (10 s) for a trace whose root never ends, and holds ``num_traces`` (5,000)
traces. Decision caches are on by default so late spans follow their trace.

Everything the current Collector accepts is accepted (``docs/sampling.md`` lists what Sieve treats differently);
what Sieve accepts but ignores is reported in :attr:`TailSamplingConfig.warnings` and logged once at load:
``block_on_overflow: true``, ``num_shards``, ``tail_storage``, a composite's ``policy_order``, ...

In-process-only keys (a Collector would reject them, so keep them out of ``otel-config.yaml``):
``max_spans_per_trace``, ``max_buffered_spans``, ``max_queue_spans``, ``tick_interval``, ``stress_relief``,
``budget``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.durations import parse_duration
from pipeline.errors import ConfigError
from pipeline.sampling.budget import BudgetSettings
from pipeline.sampling.policies import PolicySpec
from pipeline.sampling.policy_config import parse_policies

log = logging.getLogger(__name__)

TRACE_COMPLETE = "trace-complete"
SPAN_INGEST = "span-ingest"
DEFAULT_ROOT_WAIT_S = 2.0


@dataclass(frozen=True)
class StressRelief:
    """Refinery-shaped overload shedding: above ``activation_level`` % of a bound, new traces are kept or dropped
    by trace id alone at ``sampling_percentage`` without buffering, until below ``deactivation_level`` for at least
    ``minimum_activation_duration_s``. ``mode``: ``monitor`` (default, automatic), ``never``, ``always``."""

    mode: str = "monitor"
    activation_level: float = 90.0
    deactivation_level: float = 75.0
    sampling_percentage: float = 1.0
    minimum_activation_duration_s: float = 10.0


@dataclass(frozen=True)
class TailSamplingConfig:
    """Everything the tail sampler needs. Build it with :func:`load_tail_sampling` or :func:`default_config`."""

    policies: tuple[PolicySpec, ...]
    decision_wait_s: float = 10.0
    decision_wait_after_root_received_s: float = 2.0
    num_traces: int = 5000
    expected_new_traces_per_sec: int = 0
    sampled_cache_size: int = 10_000
    non_sampled_cache_size: int = 100_000
    sample_on_first_match: bool = False
    drop_pending_traces_on_shutdown: bool = False
    max_spans_per_trace: int = 2000
    max_buffered_spans: int = 5_000
    max_queue_spans: int = 20_000
    tick_interval_s: float = 0.1
    stress_relief: StressRelief = field(default_factory=StressRelief)
    sampling_strategy: str = TRACE_COMPLETE
    maximum_trace_size_bytes: int = 0  # 0: no limit
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    warnings: tuple[str, ...] = field(default=(), compare=False)


_TOP_KEYS = {
    "policies",
    "decision_wait",
    "decision_wait_after_root_received",
    "num_traces",
    "expected_new_traces_per_sec",
    "decision_cache",
    "sample_on_first_match",
    "drop_pending_traces_on_shutdown",
    "block_on_overflow",
    "maximum_trace_size_bytes",
    "sampling_strategy",
    "num_shards",
    "tail_storage",
    "budget",
    "max_spans_per_trace",
    "max_buffered_spans",
    "max_queue_spans",
    "tick_interval",
    "stress_relief",
}


def _int(mapping: Mapping[str, Any], key: str, default: int, setting: str, minimum: int = 0) -> int:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(setting, value, f"an integer >= {minimum}")
    return value


def _bool(mapping: Mapping[str, Any], key: str, default: bool, setting: str) -> bool:
    value = mapping.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(setting, value, "true or false")
    return value


def _stress(raw: object) -> StressRelief:
    if raw is None:
        return StressRelief()
    if not isinstance(raw, Mapping):
        raise ConfigError("tail_sampling.stress_relief", raw, "a mapping")
    base = StressRelief()
    unknown = set(raw) - {"mode", "activation_level", "deactivation_level", "sampling_percentage",
                          "minimum_activation_duration"}  # fmt: skip
    if unknown:
        raise ConfigError(f"tail_sampling.stress_relief.{min(unknown)}", "?", "a known stress_relief key")
    mode = raw.get("mode", base.mode)
    if mode not in ("monitor", "never", "always"):
        raise ConfigError("tail_sampling.stress_relief.mode", mode, "one of monitor, never, always")
    levels = {}
    for key in ("activation_level", "deactivation_level", "sampling_percentage"):
        value = raw.get(key, getattr(base, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise ConfigError(f"tail_sampling.stress_relief.{key}", value, "a number in [0, 100]")
        levels[key] = float(value)
    if levels["deactivation_level"] > levels["activation_level"]:
        raise ConfigError(
            "tail_sampling.stress_relief.deactivation_level", levels["deactivation_level"], "<= activation_level"
        )
    minimum = raw.get("minimum_activation_duration")
    return StressRelief(
        mode=mode,
        minimum_activation_duration_s=(
            base.minimum_activation_duration_s
            if minimum is None
            else parse_duration("tail_sampling.stress_relief.minimum_activation_duration", minimum)
        ),
        **levels,
    )


def _budget(raw: object) -> BudgetSettings:
    base = BudgetSettings()
    if raw is None:
        return base
    if not isinstance(raw, Mapping) or set(raw) - {"traces_per_second", "half_life", "min_share"}:
        raise ConfigError("tail_sampling.budget", raw, "a mapping of traces_per_second, half_life, min_share")
    rate = raw.get("traces_per_second", base.traces_per_second)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
        raise ConfigError("tail_sampling.budget.traces_per_second", rate, "a number >= 0 (0: no budget)")
    share = raw.get("min_share", base.min_share)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1 / 3:
        raise ConfigError("tail_sampling.budget.min_share", share, "a number in (0, 1/3]")
    half_life = base.half_life_s
    if "half_life" in raw:
        half_life = parse_duration("tail_sampling.budget.half_life", raw["half_life"])
        if half_life <= 0:
            raise ConfigError("tail_sampling.budget.half_life", raw["half_life"], "a duration > 0")
    return BudgetSettings(traces_per_second=float(rate), half_life_s=half_life, min_share=float(share))


def load_tail_sampling(mapping: Mapping[str, Any]) -> TailSamplingConfig:
    """Parse a ``tail_sampling`` block (the mapping under ``processors.tail_sampling``)."""
    if not isinstance(mapping, Mapping):
        raise ConfigError("tail_sampling", mapping, "a mapping")
    unknown = sorted(set(mapping) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"tail_sampling.{unknown[0]}", mapping[unknown[0]], f"one of {sorted(_TOP_KEYS)}")
    warnings: list[str] = []
    if _bool(mapping, "block_on_overflow", False, "tail_sampling.block_on_overflow"):
        warnings.append(
            "tail_sampling.block_on_overflow: ignored; in-process sampling never blocks the application "
            "(the oldest trace is decided early instead, counted as decided_early{bound=num_traces})"
        )
    warnings.extend(
        f"tail_sampling.{key}: ignored in-process (one worker thread, spans held in memory)"
        for key in ("num_shards", "tail_storage")
        if key in mapping
    )
    strategy = mapping.get("sampling_strategy", TRACE_COMPLETE)
    if strategy not in (TRACE_COMPLETE, SPAN_INGEST):
        raise ConfigError("tail_sampling.sampling_strategy", strategy, f"{TRACE_COMPLETE} or {SPAN_INGEST}")
    d = TailSamplingConfig(policies=())
    cache = mapping.get("decision_cache") or {}
    if not isinstance(cache, Mapping) or set(cache) - {"sampled_cache_size", "non_sampled_cache_size"}:
        raise ConfigError(
            "tail_sampling.decision_cache", cache, "a mapping of sampled_cache_size, non_sampled_cache_size"
        )

    def duration(key: str, default: float) -> float:
        return default if key not in mapping else parse_duration(f"tail_sampling.{key}", mapping[key])

    policies = parse_policies(mapping.get("policies"), "tail_sampling.policies")
    for policy in policies:
        warnings.extend(policy.warnings())
    if strategy == SPAN_INGEST:
        stateful = next((p.name for p in policies if p.stateful), None)
        if stateful is not None:
            raise ConfigError(
                "tail_sampling.sampling_strategy",
                strategy,
                f"{TRACE_COMPLETE}: {SPAN_INGEST} requires stateless policies and {stateful!r} is stateful",
            )
    num_traces = _int(mapping, "num_traces", d.num_traces, "tail_sampling.num_traces", 0)
    if num_traces == 0:
        warnings.append("tail_sampling.num_traces: 0 holds no trace; Sieve holds 1")
        num_traces = 1
    config = TailSamplingConfig(
        policies=policies,
        decision_wait_s=duration("decision_wait", d.decision_wait_s),
        decision_wait_after_root_received_s=duration("decision_wait_after_root_received", DEFAULT_ROOT_WAIT_S),
        num_traces=num_traces,
        expected_new_traces_per_sec=_int(
            mapping, "expected_new_traces_per_sec", 0, "tail_sampling.expected_new_traces_per_sec"
        ),
        sampled_cache_size=_int(
            cache, "sampled_cache_size", d.sampled_cache_size, "tail_sampling.decision_cache.sampled_cache_size"
        ),
        non_sampled_cache_size=_int(
            cache,
            "non_sampled_cache_size",
            d.non_sampled_cache_size,
            "tail_sampling.decision_cache.non_sampled_cache_size",
        ),
        sample_on_first_match=_bool(mapping, "sample_on_first_match", False, "tail_sampling.sample_on_first_match"),
        drop_pending_traces_on_shutdown=_bool(
            mapping, "drop_pending_traces_on_shutdown", False, "tail_sampling.drop_pending_traces_on_shutdown"
        ),
        max_spans_per_trace=_int(
            mapping, "max_spans_per_trace", d.max_spans_per_trace, "tail_sampling.max_spans_per_trace", 1
        ),
        max_buffered_spans=_int(
            mapping, "max_buffered_spans", d.max_buffered_spans, "tail_sampling.max_buffered_spans", 1
        ),
        max_queue_spans=_int(mapping, "max_queue_spans", d.max_queue_spans, "tail_sampling.max_queue_spans", 1),
        tick_interval_s=duration("tick_interval", d.tick_interval_s),
        stress_relief=_stress(mapping.get("stress_relief")),
        sampling_strategy=strategy,
        maximum_trace_size_bytes=_int(mapping, "maximum_trace_size_bytes", 0, "tail_sampling.maximum_trace_size_bytes")
        if mapping.get("maximum_trace_size_bytes") is not None
        else 0,
        budget=_budget(mapping.get("budget")),
        warnings=tuple(warnings),
    )
    if config.tick_interval_s <= 0:
        raise ConfigError("tail_sampling.tick_interval", mapping.get("tick_interval"), "a duration > 0")
    for warning in warnings:
        log.warning("%s", warning)
    return config


def find_tail_sampling_block(document: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """``processors.tail_sampling``, else the first ``processors.tail_sampling/<name>``."""
    processors = document.get("processors") if isinstance(document, Mapping) else None
    if isinstance(processors, Mapping):
        if "tail_sampling" in processors:
            return processors["tail_sampling"] or {}
        for key, value in processors.items():
            if isinstance(key, str) and key.startswith("tail_sampling/"):
                return value or {}
    raise ConfigError("processors.tail_sampling", source, "a collector config with a tail_sampling processor")


def load_tail_sampling_file(path: str | Path) -> TailSamplingConfig:
    """Load the ``tail_sampling`` processor block of an OpenTelemetry Collector YAML file."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("tail_sampling file", str(path), f"a readable collector YAML file ({exc})") from exc
    return load_tail_sampling(find_tail_sampling_block(document, str(path)))
