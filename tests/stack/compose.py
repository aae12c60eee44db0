"""Reading docker-compose.yml the way `docker compose` interpolates it, for tests that cannot run Docker."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message} (compose's interpolation forms).
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def variables(text: str) -> dict[str, str | None]:
    """Every variable referenced in ``text`` -> its operator (``:-``, ``:?``, ...) or None."""
    return {m.group("name"): m.group("op") for m in VARIABLE.finditer(text)}


def strings(node: Any) -> list[str]:
    """Every string value (and mapping key) of a parsed YAML document: what compose interpolates, no comments."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def compose_variables() -> dict[str, str | None]:
    """Variables docker-compose.yml references (comments excluded)."""
    found: dict[str, str | None] = {}
    for value in strings(load_compose()):
        found.update(variables(value))
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    """Substitute variables as compose does: the environment first, then a ``-`` default; ``?`` must be set."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op and op.endswith("-"):
            return arg
        if op and op.endswith("?"):
            raise KeyError(f"{name} is required: {arg}")
        return ""

    return VARIABLE.sub(replace, value)


def env_example() -> dict[str, str]:
    """``NAME=value`` lines of .env.example (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example: not NAME=value: {line!r}"
        values[name.strip()] = value.strip()
    return values


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a mapping (both the mapping and the list form)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/"))

    def host_path(self) -> Path:
        return (REPO / self.source).resolve()


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1]
            found.append(Mount(source, target, len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            found.append(Mount(str(volume["source"]), str(volume["target"]), bool(volume.get("read_only"))))
    return found


def container_to_host(service: dict[str, Any], container_path: str) -> Path | None:
    """The host path a container path of ``service`` maps to through its bind mounts (longest target wins)."""
    path = PurePosixPath(container_path)
    best: Mount | None = None
    for mount in mounts(service):
        target = PurePosixPath(mount.target)
        covers = mount.is_bind and (path == target or target in path.parents)
        if covers and (best is None or len(target.parts) > len(PurePosixPath(best.target).parts)):
            best = mount
    if best is None:
        return None
    return best.host_path() / path.relative_to(best.target)


def command_flag(service: dict[str, Any], flag: str) -> str | None:
    """The value of ``--flag=value`` in a service's command list."""
    for arg in service.get("command") or []:
        if isinstance(arg, str) and arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None
