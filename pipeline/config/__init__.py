"""Settings: the one package that reads the environment and config files.

Precedence, highest first: explicit overrides (CLI flags) > environment > YAML file > defaults. Environment
names and their rules are in :mod:`pipeline.config.load`; the sections in :mod:`pipeline.config.sections` and
:mod:`pipeline.config.demo`. A bad value raises :class:`pipeline.errors.ConfigError` naming the setting, the value
and what is accepted.
"""

from __future__ import annotations

from pipeline.config.demo import DemoSettings, ProviderSettings, ServiceSettings
from pipeline.config.load import STANDARD_ENV, env_names, load_settings, set_environment_default
from pipeline.config.sections import (
    DatabaseSettings,
    ExplainSettings,
    GrafanaSettings,
    LogsSection,
    OtlpSettings,
    PrometheusSettings,
    RuntimeSettings,
    SamplingSettings,
    SinkSection,
    StorageSettings,
    TracingSettings,
    WebSocketSettings,
)
from pipeline.config.settings import Settings

__all__ = [
    "STANDARD_ENV",
    "DatabaseSettings",
    "DemoSettings",
    "ExplainSettings",
    "GrafanaSettings",
    "LogsSection",
    "OtlpSettings",
    "PrometheusSettings",
    "ProviderSettings",
    "RuntimeSettings",
    "SamplingSettings",
    "ServiceSettings",
    "Settings",
    "SinkSection",
    "StorageSettings",
    "TracingSettings",
    "WebSocketSettings",
    "env_names",
    "load_settings",
    "set_environment_default",
]
