"""The whole settings tree: one section per part of Sieve, every setting with its default."""

from __future__ import annotations

from pydantic import Field

from pipeline.config.demo import DemoSettings, ProviderSettings, ServiceSettings
from pipeline.config.sections import (
    DatabaseSettings,
    GrafanaSettings,
    LogsSection,
    OtlpSettings,
    PrometheusSettings,
    RuntimeSettings,
    SamplingSettings,
    Section,
    SinkSection,
    StorageSettings,
    TracingSettings,
    WebSocketSettings,
)


class Settings(Section):
    """Every setting Sieve reads, with its default. Build it with :func:`pipeline.config.load_settings`."""

    # OpenTelemetry's own default; `sieve demo` defaults to "sieve-demo".
    service_name: str = Field("unknown_service", min_length=1)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    otlp: OtlpSettings = Field(default_factory=OtlpSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    sink: SinkSection = Field(default_factory=SinkSection)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    websocket: WebSocketSettings = Field(default_factory=WebSocketSettings)
    logs: LogsSection = Field(default_factory=LogsSection)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    provider: ProviderSettings = Field(default_factory=ProviderSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
