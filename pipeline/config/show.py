"""``sieve config``: the effective settings as plain data, with every secret masked.

Secrets are listed once, in :data:`SECRETS`; a test fails when a field whose name says it holds a secret (dsn,
token, password) is missing from the table. A DSN keeps its host, port, database and user (what one needs to
check where Sieve connects) and loses its password.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel

from pipeline.config.settings import Settings

MASK = "****"


def mask_all(value: str) -> str:
    return MASK if value else value


def mask_url(value: str) -> str:
    """``scheme://user:secret@host/db?password=secret`` -> ``scheme://user:****@host/db?password=****``."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return mask_dsn_keywords(value)
    netloc = parts.netloc
    if parts.password is not None:
        user_info, host = netloc.rsplit("@", 1)
        netloc = f"{user_info.split(':', 1)[0]}:{MASK}@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", rf"\g<1>{MASK}", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_dsn_keywords(value: str) -> str:
    """libpq's ``key=value`` form: ``host=db password=secret`` -> ``host=db password=****``."""
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", rf"\g<1>{MASK}", value)


SECRETS: dict[tuple[str, ...], Callable[[str], str]] = {
    ("database", "dsn"): mask_url,
    ("sink", "dsn"): mask_url,
    ("service", "token"): mask_all,
    ("grafana", "url"): mask_url,
    ("grafana", "token"): mask_all,
    ("grafana", "pg_password"): mask_all,
}


def _plain(value: Any) -> Any:
    """Settings values as JSON/YAML-safe data (paths as strings, mappings as dicts, dataclasses as dicts)."""
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _flatten_sink(data: dict[str, Any]) -> None:
    # The sink's options are written flat in files and the environment; show them the same way.
    sink = data.get("sink")
    if isinstance(sink, dict) and isinstance(sink.get("options"), dict):
        sink.update(sink.pop("options"))


def effective(settings: Settings) -> dict[str, Any]:
    """The settings as nested plain data, secrets masked."""
    data: dict[str, Any] = _plain(settings)
    _flatten_sink(data)
    for path, mask in SECRETS.items():
        node: Any = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(path[-1]), str):
            node[path[-1]] = mask(node[path[-1]])
    return data


def render(settings: Settings, *, as_json: bool = False) -> str:
    """The effective settings as YAML (the config file's own shape) or JSON."""
    data = effective(settings)
    if as_json:
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip("\n")
