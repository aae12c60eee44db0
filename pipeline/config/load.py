"""Reading settings: defaults, then a YAML file, then the environment, then explicit overrides (CLI flags).

This is the only module of Sieve that reads ``os.environ`` (a lint rule keeps it so). Environment names:

- ``SIEVE_<SECTION>__<KEY>`` (``__`` between levels) for every setting, e.g. ``SIEVE_PROMETHEUS__PORT=9465``,
  ``SIEVE_STORAGE__EXPLAIN__ENABLED=false``; ``SIEVE_SERVICE_NAME`` for the one top-level scalar. A value that
  starts with ``{`` or ``[`` is read as YAML (``SIEVE_STORAGE__SLOW_THRESHOLDS_MS='{get_messages: 5}'``);
- the standard names where one exists (:data:`STANDARD_ENV`);
- ``SIEVE_CONFIG``: the path of a YAML file with the same structure as :class:`Settings`.

Other ``SIEVE_*`` names (``SIEVE_TEST_PG_DSN``, ``SIEVE_DEMO_TOKEN`` of the compose file, ...) are not settings
and are ignored. A ``SIEVE_<SECTION>__...`` name whose section or key does not exist is an error naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.config.sections import Section, accepted_text
from pipeline.config.settings import Settings
from pipeline.errors import ConfigError

# Standard environment names mapped onto settings paths. Kept in one table so the README can list them.
STANDARD_ENV: dict[str, tuple[str, ...]] = {
    "OTEL_SERVICE_NAME": ("service_name",),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otlp", "endpoint"),
    "OTEL_EXPORTER_OTLP_PROTOCOL": ("otlp", "protocol"),
    "OTEL_EXPORTER_PROMETHEUS_HOST": ("prometheus", "host"),
    "OTEL_EXPORTER_PROMETHEUS_PORT": ("prometheus", "port"),
    "SIEVE_PG_DSN": ("database", "dsn"),
    "GRAFANA_URL": ("grafana", "url"),
    "GRAFANA_TOKEN": ("grafana", "token"),
    "GRAFANA_TIMEOUT": ("grafana", "timeout_s"),
}
CONFIG_ENV = "SIEVE_CONFIG"
PREFIX = "SIEVE_"


def env_names(path: tuple[str | int, ...]) -> list[str]:
    """Every environment name that sets ``path``: Sieve's own, then the standard ones."""
    own = PREFIX + "__".join(str(p).upper() for p in path)
    return [own, *(name for name, target in STANDARD_ENV.items() if target == path)]


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
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
        raise ConfigError(CONFIG_ENV, str(path), f"a readable YAML file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(CONFIG_ENV, str(path), f"valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(CONFIG_ENV, str(path), "a YAML mapping at the top level")
    return data


def _env_value(name: str, value: str) -> Any:
    if value.lstrip()[:1] in ("{", "["):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(name, value, f"a YAML/JSON mapping or list ({str(exc).splitlines()[0]})") from None
    return value


def _sieve_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``SIEVE_SECTION__KEY=value`` -> ``{"section": {"key": value}}``; pydantic converts the strings."""
    sections = {name for name, f in Settings.model_fields.items() if _is_section(f.annotation)}
    scalars = set(Settings.model_fields) - sections
    nested: dict[str, Any] = {}
    for name, value in env.items():
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in STANDARD_ENV or upper == CONFIG_ENV:
            continue
        parts = tuple(part.lower() for part in upper[len(PREFIX) :].split("__"))
        if len(parts) == 1:
            if parts[0] in scalars:  # SIEVE_SERVICE_NAME
                nested[parts[0]] = value
            continue  # SIEVE_TEST_PG_DSN, SIEVE_DEMO_TOKEN, ...: not Sieve settings
        if parts[0] not in sections or not all(parts):
            raise ConfigError(name, value, f"a known section after {PREFIX}: {', '.join(sorted(sections))}")
        _set_path(nested, parts, _env_value(name, value))
    return nested


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Section)


def set_environment_default(name: str, value: str) -> None:
    """Set an environment variable for this process unless it is set (the OpenTelemetry distro's defaults)."""
    os.environ.setdefault(name, value)


def load_settings(
    config_file: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from defaults, the YAML file, the environment and explicit overrides.

    ``defaults`` replace Sieve's own defaults (a command's, e.g. the demo's spans file) and lose to the file and
    the environment; ``overrides`` (command-line flags) win over everything. Both are nested mappings keyed like
    the YAML file (``{"demo": {"duration_s": 5}}``).
    """
    env = os.environ if environ is None else environ
    if config_file is None and env.get(CONFIG_ENV):
        config_file = env[CONFIG_ENV]
    layered: dict[str, Any] = _deep_merge(dict(defaults or {}), _read_yaml(Path(config_file)) if config_file else {})
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
        raise as_config_error(exc) from None


def as_config_error(exc: ValidationError) -> ConfigError:
    """The first problem of a validation error, as one line naming the setting and its environment names."""
    first = exc.errors()[0]
    raised = first.get("ctx", {}).get("error")
    if isinstance(raised, ConfigError):  # a validator that already named the setting precisely
        return raised
    loc = tuple(p for p in first["loc"] if p != "__root__")
    dotted = ".".join(str(p) for p in loc) or "settings"
    where = f"{dotted} (env {' or '.join(env_names(loc))})"
    accepted = accepted_text(first["msg"])
    if first["type"] == "extra_forbidden":
        parent = Settings.model_fields if len(loc) == 1 else None
        known = sorted(parent) if parent is not None else _known_keys(loc[:-1])
        accepted = f"a known setting{': one of ' + ', '.join(known) if known else ''}"
    value = first.get("input")
    if isinstance(value, dict) and loc:  # model-level check: report the offending field's value
        value = value.get(loc[-1], value)
    more = len(exc.errors()) - 1
    if more:
        accepted += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(where, value, accepted)


def _known_keys(path: tuple[str | int, ...]) -> list[str]:
    model: Any = Settings
    for part in path:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}))
