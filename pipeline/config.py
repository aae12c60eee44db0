"""Settings: the one module that reads the environment and config files.

Precedence, highest first: explicit overrides (CLI flags) > environment > YAML file > defaults.

Environment variables:

- ``SIEVE_<SECTION>__<KEY>`` for every setting, e.g. ``SIEVE_PROMETHEUS__PORT=9465``;
- the standard names where one exists: ``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
  ``OTEL_EXPORTER_OTLP_PROTOCOL``, ``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``_PORT``, and ``SIEVE_PG_DSN``;
- ``SIEVE_CONFIG``: path of a YAML file with the same structure as :class:`Settings`.

A bad value raises :class:`pipeline.errors.ConfigError` naming the setting, the value and what is accepted.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError
from pipeline.export.postgres.settings import SinkSettings
from pipeline.sampling.logs.settings import LogSamplingSettings

# Standard environment names mapped onto settings paths. Kept in one table so the README can list them.
STANDARD_ENV: dict[str, tuple[str, ...]] = {
    "OTEL_SERVICE_NAME": ("service_name",),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otlp", "endpoint"),
    "OTEL_EXPORTER_OTLP_PROTOCOL": ("otlp", "protocol"),
    "OTEL_EXPORTER_PROMETHEUS_HOST": ("prometheus", "host"),
    "OTEL_EXPORTER_PROMETHEUS_PORT": ("prometheus", "port"),
    "SIEVE_PG_DSN": ("database", "dsn"),
}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    """Where Postgres is. No DSN means the embedded server (``pgserver``) with data under ``data_dir``."""

    dsn: str | None = None
    data_dir: Path = Path(".sieve/pgdata")
    connect_timeout_s: float = Field(5.0, gt=0)


class PrometheusSettings(_Section):
    """HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``. Loopback unless ``allow_remote`` is set."""

    enabled: bool = True
    allow_remote: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)  # 0 picks a free port (tests)

    @field_validator("host")
    @classmethod
    def _loopback_unless_allowed(cls, host: str, info: ValidationInfo) -> str:
        if not info.data.get("allow_remote") and not _is_loopback(host):
            raise ValueError(
                "a loopback address (127.0.0.1, ::1, localhost); set prometheus.allow_remote=true "
                "(SIEVE_PROMETHEUS__ALLOW_REMOTE=true) to expose metrics beyond this machine"
            )
        return host


class OtlpSettings(_Section):
    """OTLP export to a collector tier. Off unless an endpoint is set."""

    endpoint: str | None = None
    protocol: Literal["http/protobuf"] = "http/protobuf"
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:4318")
        return value.rstrip("/") if value else value


class TracingSettings(_Section):
    """Batching of kept spans towards the exporters (the SDK's BatchSpanProcessor)."""

    max_queue_size: int = Field(8192, ge=1)
    schedule_delay_ms: int = Field(1000, ge=1)
    max_export_batch_size: int = Field(512, ge=1)
    spans_file: Path | None = None  # JSON lines of kept spans, for the demo and for people without a trace UI


class SamplingSettings(_Section):
    """In-process tail sampling (``pipeline/sampling``). Off means every span is kept."""

    enabled: bool = True
    # A Collector YAML whose ``tail_sampling`` block replaces the default policies (e.g. the repo's otel-config.yaml).
    policies_file: Path | None = None
    # Sieve's own policies (error_boost, rare) on top of the Collector-compatible ones.
    extensions: bool = True


def _dataclass_options(cls: Any, data: dict[str, Any], prefix: str, extra_keys: tuple[str, ...] = ()) -> Any:
    """Build a settings dataclass owned by another module from a flat mapping, naming any bad key or value."""
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{prefix}.{key}", value, f"one of {', '.join([*extra_keys, *sorted(known)])}")
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        error = first.get("ctx", {}).get("error")
        if isinstance(error, ConfigError):
            raise error from None
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{prefix}.{field}", first.get("input"), first["msg"]) from None


class LogsSection(_Section):
    """The log path: ``logs.sampling`` (``LogSamplingSettings``) and ``logs.bridge`` (``LogBridgeSettings``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    enabled: bool = True
    sampling: LogSamplingSettings = Field(default_factory=LogSamplingSettings)
    bridge: dict[str, Any] = Field(default_factory=dict)  # checked by collectors.logs.LogBridgeSettings

    @field_validator("sampling", mode="before")
    @classmethod
    def _sampling(cls, data: Any) -> Any:
        return _dataclass_options(LogSamplingSettings, data, "logs.sampling") if isinstance(data, dict) else data


class SinkSection(_Section):
    """The Postgres metrics sink (``pipeline/export/postgres``). Its options are ``SinkSettings``' fields, flat:
    ``sink: {enabled: true, batch_size: 500, spool_dir: /var/lib/sieve/spool}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    enabled: bool = True
    # Telemetry may live in its own database; unset means the application's (``database.dsn`` / embedded).
    dsn: str | None = None
    options: SinkSettings = Field(default_factory=SinkSettings)

    @model_validator(mode="before")
    @classmethod
    def _options(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "options" in data:
            return data
        data = dict(data)
        enabled = data.pop("enabled", True)
        dsn = data.pop("dsn", None)
        options = _dataclass_options(SinkSettings, data, "sink", ("enabled", "dsn"))
        return {"enabled": enabled, "dsn": dsn, "options": options}


class ExplainSettings(_Section):
    """Plans of slow reads (``EXPLAIN (FORMAT JSON)``), captured off the hot path on a connection of their own."""

    enabled: bool = True
    analyze: bool = False  # EXPLAIN ANALYZE runs the read again (read-only, rolled back): opt in
    max_per_minute: float = Field(6.0, gt=0)  # EXPLAINs actually run; cached plans cost nothing
    cache_ttl_s: float = Field(300.0, ge=0)  # one plan per statement shape for this long
    timeout_ms: int = Field(2000, ge=1)  # statement_timeout of the EXPLAIN


class StorageSettings(_Section):
    """Slow lookups (``collectors/storage.py``): when a repository operation counts as slow, and its plan."""

    # An operation at least this slow is marked sieve.db.slow (its trace is kept, `sieve slow-lookups` lists
    # it); a read statement at least this slow on its own gets a plan. Interactive lookups should take a few ms.
    slow_threshold_ms: float = Field(20.0, gt=0)
    slow_thresholds_ms: dict[str, float] = Field(default_factory=dict)  # per operation name, overrides the above
    explain: ExplainSettings = Field(default_factory=ExplainSettings)

    @field_validator("slow_thresholds_ms")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v > 0}
        if bad:
            raise ValueError(f"every threshold must be > 0 ms; got {bad}")
        return value


class ServiceSettings(_Section):
    """The demo WebSocket service, shaped like the daemon Sieve replaces (old-system.md section 3)."""

    host: str = "127.0.0.1"
    port: int = Field(8079, ge=0, le=65535)
    token: str = "sieve-demo-token"
    hello_timeout_s: float = Field(15.0, gt=0)
    max_message_bytes: int = Field(1 << 20, ge=1024)
    history_page_size: int = Field(5, ge=1, le=1000)
    progress_interval_s: float = Field(5.0, gt=0)
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(8, ge=1)
    # asyncpg closes connections idle this long; the next lookup then pays connection set-up. Short by default
    # so the demo reproduces the old system's story (old-system.md section 5.2); 0 keeps connections forever.
    pool_idle_lifetime_s: float = Field(3.0, ge=0)
    # Simulated extra connection set-up time, as to a managed Postgres across a network (TLS and authentication
    # round trips: the old system paid ~0.35 s, old-system.md section 5.2). The embedded server answers over a
    # Unix socket in ~2 ms, which would hide the story; 0 shows the local truth.
    db_connect_delay_s: float = Field(0.25, ge=0)


class ProviderSettings(_Section):
    """The simulated upstream model provider: a log-normal latency, streamed chunks and a failure rate."""

    latency_median_s: float = Field(0.08, ge=0)
    latency_sigma: float = Field(0.5, ge=0)
    chunks: int = Field(4, ge=1)
    failure_rate: float = Field(0.01, ge=0, le=1)


class DemoSettings(_Section):
    """The load generator that `sieve demo` runs against the service."""

    duration_s: float = Field(30.0, gt=0)
    clients: int = Field(6, ge=1, le=500)
    think_time_s: float = Field(0.05, ge=0)
    slow_lookup_share: float = Field(0.1, ge=0, le=1)
    error_burst_failure_rate: float = Field(0.6, ge=0, le=1)
    error_burst_share: float = Field(0.15, ge=0, le=0.9)  # of the run, centred in the middle
    traceparent_share: float = Field(0.2, ge=0, le=1)  # clients that send a W3C traceparent
    seed_conversations: int = Field(200, ge=1)
    heavy_conversations: int = Field(4, ge=0)
    heavy_messages: int = Field(40_000, ge=0)
    # The index that serves the history read; off by default, as in the old schema (`sieve demo --with-index`).
    with_index: bool = False
    report_path: Path = Path(".sieve/demo-report.json")


class Settings(_Section):
    """Every setting Sieve reads, with its default."""

    service_name: str = Field("sieve-demo", min_length=1)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    otlp: OtlpSettings = Field(default_factory=OtlpSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    sink: SinkSection = Field(default_factory=SinkSection)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    logs: LogsSection = Field(default_factory=LogsSection)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    provider: ProviderSettings = Field(default_factory=ProviderSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_path(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError("SIEVE_CONFIG", str(path), f"a readable YAML file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError("SIEVE_CONFIG", str(path), f"valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError("SIEVE_CONFIG", str(path), "a YAML mapping at the top level")
    return data


def _env_for(path: tuple[str | int, ...]) -> str:
    return "SIEVE_" + "__".join(str(p).upper() for p in path)


def load_settings(
    config_file: Path | str | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from defaults, the YAML file, the environment and explicit overrides.

    ``overrides`` are nested mappings keyed like the YAML file (``{"demo": {"duration_s": 5}}``).
    """
    env = dict(os.environ if environ is None else environ)
    if config_file is None and env.get("SIEVE_CONFIG"):
        config_file = env["SIEVE_CONFIG"]
    layered: dict[str, Any] = _read_yaml(Path(config_file)) if config_file else {}
    standard: dict[str, Any] = {}
    for name, path in STANDARD_ENV.items():
        if env.get(name):
            _set_path(standard, path, env[name])
    layered = _deep_merge(layered, standard)
    layered = _deep_merge(layered, _sieve_env(env))
    layered = _deep_merge(layered, overrides)
    try:
        return Settings(**layered)
    except ValidationError as exc:
        raise _as_config_error(exc) from None


def _sieve_env(env: dict[str, str]) -> dict[str, Any]:
    """``SIEVE_SECTION__KEY=value`` -> ``{"section": {"key": "value"}}``; pydantic converts the strings."""
    nested: dict[str, Any] = {}
    for name, value in env.items():
        upper = name.upper()
        if not upper.startswith("SIEVE_") or upper in ("SIEVE_CONFIG", "SIEVE_PG_DSN"):
            continue
        path = tuple(part.lower() for part in upper[len("SIEVE_") :].split("__"))
        _set_path(nested, path, value)
    return nested


def _as_config_error(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    raised = first.get("ctx", {}).get("error")
    if isinstance(raised, ConfigError):  # a validator that already named the setting precisely
        return raised
    loc = tuple(p for p in first["loc"] if p != "__root__")
    dotted = ".".join(str(p) for p in loc) or "settings"
    standard = [name for name, path in STANDARD_ENV.items() if path == loc]
    names = " or ".join([_env_for(loc), *standard])
    where = f"{dotted} (env {names})"
    accepted = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        accepted = "a known setting; see the README's configuration table"
    if first["type"] == "literal_error":
        accepted = first["msg"].replace("Input should be ", "")
    value = first.get("input")
    if isinstance(value, dict):  # model-level check: report the offending field's value
        value = value.get(loc[-1], value) if loc else value
    more = len(exc.errors()) - 1
    if more:
        accepted += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(where, value, accepted)
