"""Turns ``policies:`` entries (Collector shape: ``{name, type, <type>: {...}}``) into policy specifications.

Fields map one to one onto each specification's dataclass fields; a field ending in ``_s`` is a duration written
without the suffix (``half_life: 60s`` -> ``half_life_s``). Unknown types, unknown fields and wrong value types are
errors naming the setting. ``ottl_condition`` is accepted and never evaluated (a warning says so).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from pipeline.durations import parse_duration
from pipeline.errors import ConfigError
from pipeline.sampling.policies import ALL_TYPES, PolicySpec, RateAllocation

_ACCEPTED_TYPES = ", ".join(sorted(ALL_TYPES))
# Nested blocks whose name differs from the type's name, and sub-policy lists.
_POLICY_KEYS = {"name", "type", *ALL_TYPES}


def parse_policies(raw: object, setting: str) -> tuple[PolicySpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(setting, raw, "a non-empty list of policies")
    specs = tuple(parse_policy(item, f"{setting}[{i}]") for i, item in enumerate(raw))
    names = [s.name for s in specs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"{setting}.name", duplicate, "unique policy names")
    return specs


def parse_policy(raw: object, setting: str) -> PolicySpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(setting, raw, "a mapping with name and type")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{setting}.name", name, "a non-empty policy name")
    setting = f"policies.{name}"
    kind = raw.get("type")
    if kind not in ALL_TYPES:
        raise ConfigError(f"{setting}.type", kind, f"one of: {_ACCEPTED_TYPES}")
    unknown = sorted(set(raw) - _POLICY_KEYS)
    if unknown:
        raise ConfigError(f"{setting}.{unknown[0]}", raw[unknown[0]], f"name, type or a policy block ({kind})")
    block = raw.get(kind) or {}
    if not isinstance(block, Mapping):
        raise ConfigError(f"{setting}.{kind}", block, "a mapping")
    cls = ALL_TYPES[kind]
    return cls(name=name, **_fields(cls, block, f"{setting}.{kind}"))


def _fields(cls: type[PolicySpec], block: Mapping[str, Any], setting: str) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    by_key: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(cls):
        if f.init and f.name != "name":
            by_key[f.name.removesuffix("_s")] = f
    unknown = sorted(set(block) - set(by_key))
    if unknown:
        raise ConfigError(f"{setting}.{unknown[0]}", block[unknown[0]], f"one of {sorted(by_key)}")
    values: dict[str, Any] = {}
    for key, value in block.items():
        f = by_key[key]
        values[f.name] = _convert(hints[f.name], value, f"{setting}.{key}", duration=f.name.endswith("_s"))
    return values


def _convert(hint: Any, value: Any, setting: str, *, duration: bool = False) -> Any:
    if duration:
        return parse_duration(setting, value)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # X | None
        if value is None:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, setting)
    if origin is tuple:
        if value is None:
            return ()  # `values:` with nothing after it decodes to an empty list upstream too
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ConfigError(setting, value, "a list")
        return tuple(_convert(args[0], item, f"{setting}[{i}]") for i, item in enumerate(items))
    if hint is PolicySpec:
        return parse_policy(value, setting)
    if hint is RateAllocation:
        if not isinstance(value, Mapping) or set(value) - {"policy", "percent"}:
            raise ConfigError(setting, value, "a mapping {policy: <name>, percent: <int>}")
        return RateAllocation(
            policy=_convert(str, value.get("policy", ""), f"{setting}.policy"),
            percent=_convert(int, value.get("percent", 0), f"{setting}.percent"),
        )
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(setting, value, "true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(setting, value, "an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(setting, value, "a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(setting, value, "a string")
        return value
    raise ConfigError(setting, value, f"a value of type {hint}")  # pragma: no cover - a spec with a new field type
