"""The sections of :class:`~pipeline.config.Settings` that configure the pipeline itself (not the demo).

Each section is a frozen pydantic model that forbids unknown keys, so a misspelled key is an error naming it.
Options owned by another module as a frozen dataclass (the sink's ``SinkSettings``, the log sampler's
``LogSamplingSettings``, the log bridge's ``LogBridgeSettings``) are validated here too, key by key, at load time:
a bad value never surfaces after start-up.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

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

from collectors.logs import LogBridgeSettings
from pipeline.errors import ConfigError
from pipeline.export.postgres.settings import SinkSettings
from pipeline.sampling.logs.settings import LogSamplingSettings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Section(BaseModel):
    """Base of every section: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# "logs.sampling.default_rate: 2 is not accepted; expected a rate in 0..1": the shape owned dataclasses raise.
_OWNED_ERROR = re.compile(r"^(?P<setting>[\w.]+): (?P<value>.*) is not accepted; expected (?P<accepted>.*)$", re.DOTALL)


def accepted_text(message: str) -> str:
    """pydantic's "Input should be a valid integer" as "a valid integer" (the caller says "expected ...")."""
    message = message.removeprefix("Value error, ")
    return message.removeprefix("Input should be ")


def dataclass_options(cls: Any, data: Any, prefix: str, extra_keys: tuple[str, ...] = ()) -> Any:
    """Build a settings dataclass owned by another module from a mapping, naming any bad key or value."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(prefix, data, f"a mapping of {', '.join(f.name for f in dataclasses.fields(cls))}")
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
        owned = _OWNED_ERROR.match(str(error)) if isinstance(error, ValueError) else None
        if owned:
            raise ConfigError(
                owned["setting"], data.get(owned["setting"].rsplit(".", 1)[-1]), owned["accepted"]
            ) from None
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{prefix}.{field}", first.get("input"), accepted_text(first["msg"])) from None


class DatabaseSettings(Section):
    """Where Postgres is. No DSN means the embedded server (``pgserver``) with data under ``data_dir``."""

    dsn: str | None = None
    data_dir: Path = Path(".sieve/pgdata")
    connect_timeout_s: float = Field(5.0, gt=0)


class PrometheusSettings(Section):
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


class OtlpSettings(Section):
    """OTLP export to a collector tier. Off unless an endpoint is set."""

    endpoint: str | None = None
    protocol: Literal["http/protobuf"] = "http/protobuf"
    timeout_s: float = Field(10.0, gt=0)
    compression: Literal["none", "gzip"] = "none"
    logs: bool = True  # kept log records go to the endpoint too (``/v1/logs``)

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL, e.g. http://localhost:4318")
        return value.rstrip("/") if value else value


class TracingSettings(Section):
    """Batching of kept spans towards the exporters (the SDK's BatchSpanProcessor), and the spans file."""

    max_queue_size: int = Field(8192, ge=1)
    schedule_delay_ms: int = Field(1000, ge=1)
    max_export_batch_size: int = Field(512, ge=1)
    spans_file: Path | None = None  # JSON lines of kept spans, for the demo and for people without a trace UI
    # The file rotates at this size, keeping this many older files (.1 ... .N): disk use stays bounded.
    spans_file_max_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    spans_file_backups: int = Field(3, ge=0, le=100)


class SamplingSettings(Section):
    """In-process tail sampling (``pipeline/sampling``). Off means every span is kept."""

    enabled: bool = True
    # A Collector YAML whose ``tail_sampling`` block replaces the default policies (e.g. the repo's otel-config.yaml).
    policies_file: Path | None = None
    # Sieve's own policies (error_boost, rare, n_plus_one, the client-input quota) on top of the Collector's.
    extensions: bool = True
    # The kept-volume budget in kept traces per second (0: none); unset: the policies' own (20/s by default).
    budget_traces_per_second: float | None = Field(None, ge=0)


class LogsSection(Section):
    """The log path: ``logs.sampling`` (``LogSamplingSettings``) and ``logs.bridge`` (``LogBridgeSettings``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    enabled: bool = True
    sampling: LogSamplingSettings = Field(default_factory=LogSamplingSettings)
    bridge: LogBridgeSettings = Field(default_factory=LogBridgeSettings)

    @field_validator("sampling", mode="before")
    @classmethod
    def _sampling(cls, data: Any) -> Any:
        return dataclass_options(LogSamplingSettings, data, "logs.sampling")

    @field_validator("bridge", mode="before")
    @classmethod
    def _bridge(cls, data: Any) -> Any:
        return dataclass_options(LogBridgeSettings, data, "logs.bridge")


class SinkSection(Section):
    """The Postgres metrics sink (``pipeline/export/postgres``). Its options are ``SinkSettings``' fields, flat:
    ``sink: {enabled: true, batch_size: 500, spool_dir: /var/lib/sieve/spool}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    enabled: bool = True
    # Telemetry may live in its own database; unset means the application's (``database.dsn`` / embedded).
    dsn: str | None = None
    options: SinkSettings = Field(default_factory=SinkSettings)

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        """``{enabled, dsn, <SinkSettings fields>}`` as this model's input."""
        if not isinstance(data, dict) or "options" in data:
            return data
        data = dict(data)
        enabled = data.pop("enabled", True)
        dsn = data.pop("dsn", None)
        return {
            "enabled": enabled,
            "dsn": dsn,
            "options": dataclass_options(SinkSettings, data, "sink", ("enabled", "dsn")),
        }


class ExplainSettings(Section):
    """Plans of slow reads (``EXPLAIN (FORMAT JSON)``), captured off the hot path on a connection of their own."""

    enabled: bool = True
    analyze: bool = False  # EXPLAIN ANALYZE runs the read again (read-only, rolled back): opt in
    max_per_minute: float = Field(6.0, gt=0)  # EXPLAINs actually run; cached plans cost nothing
    cache_ttl_s: float = Field(300.0, ge=0)  # one plan per statement shape for this long
    timeout_ms: int = Field(2000, ge=1)  # statement_timeout of the EXPLAIN


class StorageSettings(Section):
    """Storage telemetry (``collectors/storage.py``): the driver instrumentations and when an operation is slow."""

    # Turn on the contrib asyncpg and psycopg instrumentations (statement spans). Parameters stay off.
    instrument_drivers: bool = True
    capture_parameters: bool = False
    # Inside a repository operation its span is the database call's one span (fingerprint, statement, timings);
    # true keeps the drivers' per-statement spans under it as well (one more span per statement).
    statement_spans: bool = False
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
            raise ValueError(f"every threshold > 0 ms; got {bad}")
        return value


class WebSocketSettings(Section):
    """The WebSocket instrumentation (``collectors/websocket``): how much it reads of each message.

    ``envelope``: ``none`` (default) treats every message as opaque: one span per message named
    ``websocket.message``, never an error for its content. ``json`` reads an op name, request id and
    ``traceparent`` from a JSON object when the message is one; anything else is an ordinary message.
    ``json_strict`` declares the protocol JSON: a message that is not a JSON object with an op is malformed
    (``error.type`` says why: not_json, binary, too_large, missing_op, ...).
    """

    envelope: Literal["none", "json", "json_strict"] = "none"
    ops: tuple[str, ...] | None = None  # inbound op names kept as labels; None keeps the first max_ops seen
    send_ops: tuple[str, ...] | None = None
    max_ops: int = Field(64, ge=1, le=1000)
    max_message_bytes: int = Field(1 << 20, ge=1)
    op_field: str = Field("op", min_length=1)
    traceparent_field: str = Field("traceparent", min_length=1)
    allow_binary: bool = False  # json modes: decode binary frames as UTF-8 JSON instead of calling them malformed


class RuntimeSettings(Section):
    """Event-loop health (``collectors/runtime.py``) and the interpreter's garbage collector."""

    loop_monitor: bool = True
    loop_interval_s: float = Field(0.25, gt=0)
    # Spans held for a tail decision (and in the exporters' batches) live for seconds: with CPython's default
    # first-generation threshold (700) they are promoted through every young collection and set off full
    # collections of the whole heap several times a minute (50-80 ms each under the demo's load). The pipeline
    # raises the threshold to this while it runs (0 leaves the interpreter's setting alone).
    gc_threshold0: int = Field(7000, ge=0)


class GrafanaSettings(Section):
    """``sieve dashboards push``: the Grafana to push to and the data sources as *Grafana's server* reaches them.

    ``url``, ``token`` and ``timeout_s`` also read grafana-client's ``GRAFANA_URL``, ``GRAFANA_TOKEN`` and
    ``GRAFANA_TIMEOUT``. The Postgres password is a setting (``SIEVE_GRAFANA__PG_PASSWORD``), never a flag.
    """

    url: str | None = None
    token: str | None = None
    timeout_s: float = Field(5.0, gt=0)
    prometheus_url: str = "http://localhost:9090"
    scrape_interval: str = "15s"
    pg_host: str | None = None  # host:port; no Postgres data source when unset
    pg_database: str = "sieve"
    pg_user: str = "grafana"
    pg_password: str | None = None
    pg_sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = "disable"
    jaeger_url: str | None = None
