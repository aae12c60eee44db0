"""Durations as the OpenTelemetry Collector's configuration writes them (Go's ``time.ParseDuration``), plus the
days and weeks a look-back window needs. Shared by the sampler's configuration and the slow-lookups command.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pipeline.errors import ConfigError

_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(setting: str, value: object) -> float:
    """A Go duration (``"2s"``, ``"100ms"``, ``"1m30s"``, ``"0"``) in seconds. An integer means nanoseconds,
    as the Collector's config decoder treats it. Negative durations are refused."""
    if isinstance(value, bool):
        raise ConfigError(setting, value, 'a duration such as "2s" or "100ms"')
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(setting, value, "a duration >= 0")
        return value / 1e9
    if not isinstance(value, str):
        raise ConfigError(setting, value, 'a duration such as "2s" or "100ms"')
    text = value.strip()
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise ConfigError(setting, value, 'a duration such as "2s", "100ms" or "1m30s" (units ns us ms s m h)')
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        position = match.end()
    if position == 0:
        raise ConfigError(setting, value, 'a duration such as "2s"')
    return total


# Go durations (30m, 1h30m, 90s) as the Collector config has them, plus days and weeks for looking back.
_LONG = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(d|w)\s*$")
_LONG_S = {"d": 86400, "w": 604800}


def parse_window(setting: str, text: str) -> timedelta:
    """``90s``, ``30m``, ``1h30m``, ``2d``, ``1w`` as a positive timedelta; else a ConfigError naming ``setting``."""
    accepted = "a positive duration: 90s, 30m, 1h30m (Go units ns us ms s m h), or days and weeks: 2d, 1w"
    m = _LONG.match(text)
    try:
        seconds = float(m.group(1)) * _LONG_S[m.group(2)] if m else parse_duration(setting, text)
    except ConfigError:
        raise ConfigError(setting, text, accepted) from None
    if seconds <= 0:
        raise ConfigError(setting, text, accepted)
    return timedelta(seconds=seconds)
