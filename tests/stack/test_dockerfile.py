"""The Dockerfile and .dockerignore, checked without a Docker daemon: the wheel is built from everything it needs,
the image holds runtime dependencies only and installs nothing at start, it runs unprivileged, and its HEALTHCHECK
command (run here against a real endpoint) passes only when /readyz says ready."""

from __future__ import annotations

import posixpath
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from prometheus_client import CollectorRegistry

from pipeline.config import load_settings
from pipeline.health import ComponentState, Readiness
from pipeline.http import TelemetryServer
from tests.stack.compose import load_compose, mounts
from tests.stack.dockerfile import (
    REPO,
    Instruction,
    Stage,
    duration_s,
    healthcheck,
    ignore_rules,
    in_context,
    load_ignore_rules,
    load_stages,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
STAGES = load_stages()
BUILD, FINAL = STAGES[0], STAGES[-1]
DEMO = load_compose()["services"]["demo"]
DEFAULTS = load_settings(environ={})
# Never part of a build context: secrets, the virtualenv, the embedded Postgres' data, git, bytecode.
NEVER_SENT = [".env", ".env.local", ".venv/bin/python", ".sieve/pgdata/PG_VERSION", ".git/HEAD"]
NEVER_SENT += ["pipeline/__pycache__/config.cpython-311.pyc", "pipeline/demo/__pycache__/run.cpython-311.pyc"]


def _wheel_inputs() -> list[str]:
    """What hatchling reads to build the wheel, relative to the project root."""
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    return ["pyproject.toml", PYPROJECT["project"]["readme"], *wheel["packages"], *wheel["force-include"]]


def _with_workdir(stage: Stage) -> Iterator[tuple[str, Instruction]]:
    """Each instruction of ``stage`` with the working directory it runs in."""
    workdir = "/"
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = posixpath.join(workdir, instruction.args.strip())
        yield workdir, instruction


def _copied(stage: Stage) -> dict[str, str]:
    """Build-context path -> absolute path in the stage, for every COPY from the context (not ``--from``)."""
    found: dict[str, str] = {}
    for workdir, instruction in _with_workdir(stage):
        if instruction.keyword != "COPY" or "from" in instruction.flags():
            continue
        *sources, dest = instruction.operands()
        target = posixpath.join(workdir, dest)
        for source in sources:
            into_dir = len(sources) > 1 or dest.endswith("/")
            found[source] = posixpath.normpath(posixpath.join(target, source) if into_dir else target)
    return found


def _pip_installs(stage: Stage) -> list[tuple[str, list[str]]]:
    """(working directory, arguments after ``pip install``) of every pip install a RUN of ``stage`` performs."""
    found = []
    for workdir, instruction in _with_workdir(stage):
        if instruction.keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", instruction.args):
            words = shlex.split(command)
            for i, word in enumerate(words[:-1]):
                if posixpath.basename(word) in ("pip", "pip3") and words[i + 1] == "install":
                    found.append((workdir, words[i + 2 :]))
    return found


def _context_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(set(listed) | set(NEVER_SENT))


# -- base images and stages ------------------------------------------------------------------------------------------


def test_a_slim_python_base_that_the_package_supports_the_same_in_every_stage() -> None:
    assert len(STAGES) >= 2, "a build stage and a runtime stage"
    bases = {stage.base for stage in STAGES}
    # The runtime stage copies the build stage's virtualenv: its interpreter path must exist there unchanged.
    assert len(bases) == 1, f"one base image for every stage, not {sorted(bases)}"
    match = re.fullmatch(r"python:(3\.\d+)-slim(?:-\w+)?", FINAL.base)
    assert match, f"{FINAL.base}: a python:3.X-slim image"
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(match.group(1) + ".0")


def test_the_wheel_is_built_from_everything_pyproject_names() -> None:
    installs = _pip_installs(BUILD)
    assert len(installs) == 1, installs
    project_dir, arguments = installs[0]
    copied = _copied(BUILD)
    for path in _wheel_inputs():
        # hatchling resolves packages, readme and force-include sources against the project root.
        assert copied.get(path) == posixpath.join(project_dir, path), f"{path} is not copied to {project_dir}/{path}"
    assert "." in arguments


def test_the_image_installs_runtime_dependencies_only() -> None:
    (_, arguments), *_ = _pip_installs(BUILD)
    targets = [a for a in arguments if not a.startswith("-")]
    assert targets == ["."], f"install the project itself, without extras: {arguments}"
    for option in ("-e", "--editable", "-r", "--requirement"):
        assert option not in arguments, f"pip install {option}"
    text = " ".join(i.args for stage in STAGES for i in stage.instructions)
    assert "[dev]" not in text and "optional-dependencies" not in text


def test_nothing_is_installed_in_the_runtime_stage_or_at_container_start() -> None:
    assert _pip_installs(FINAL) == []
    assert not any("pip" in shlex.split(i.args) for i in FINAL.all("RUN"))
    copies = [i for i in FINAL.all("COPY") if i.flags().get("from") in (BUILD.name, "0")]
    assert copies, "the runtime stage copies the build stage's virtualenv"
    venv = copies[0].operands()[0]
    assert any(f"python -m venv {venv}" in i.args for i in BUILD.all("RUN"))
    assert f"{venv}/bin/pip install" in " ".join(i.args for i in BUILD.all("RUN"))
    path = next(i.args for i in FINAL.all("ENV") if i.args.startswith("PATH="))
    assert path.startswith(f"PATH={venv}/bin:"), path
    # The compose service runs the image's entrypoint with arguments: no shell, no pip.
    for key in ("command", "entrypoint"):
        value = DEMO.get(key) or []
        words = value if isinstance(value, list) else shlex.split(value)
        assert "pip" not in " ".join(words) and "sh" not in words, f"demo {key}: {value!r}"


# -- the build context ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "path", "sent"),
    [
        (["*", "!pipeline"], "pipeline/config.py", True),
        (["*", "!pipeline"], "tests/test_config.py", False),
        (["*", "!pipeline"], ".env", False),
        (["*", "!dashboards/grafana"], "dashboards/grafana/overview.json", True),
        (["*", "!dashboards/grafana"], "dashboards/alerts/sieve.rules.yml", False),
        (["*.md"], "README.md", False),
        (["*.md"], "docs/guide.md", True),  # `*` does not cross `/`
        (["**/__pycache__"], "__pycache__/x.pyc", False),
        (["**/__pycache__"], "pipeline/demo/__pycache__/run.pyc", False),
        (["**/*.py[co]"], "pipeline/x.pyc", False),
        (["**/*.py[co]"], "pipeline/x.py", True),
        (["pipeline", "!pipeline/http.py"], "pipeline/http.py", True),  # the last match wins
        (["!pipeline/http.py", "pipeline"], "pipeline/http.py", False),
    ],
)
def test_dockerignore_matching(rules: list[str], path: str, sent: bool) -> None:
    assert in_context(path, ignore_rules("\n".join(rules))) is sent


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    rules = load_ignore_rules()
    files = _context_files()
    sent = [f for f in files if in_context(f, rules)]
    sources = list(_copied(BUILD))
    for source in sources:
        under = [f for f in files if f == source or f.startswith(source + "/")]
        assert under, f"COPY {source}: nothing there"
        missing = [f for f in under if f not in sent and "__pycache__" not in f]
        assert not missing, f"COPY {source}, but .dockerignore leaves out {missing[:5]}"
    unused = [f for f in sent if not any(f == s or f.startswith(s + "/") for s in sources)]
    assert not unused, f"sent to the daemon but never copied: {unused[:10]}"
    for path in NEVER_SENT:
        assert not in_context(path, rules), f"{path} would be in the build context"


# -- the runtime stage ----------------------------------------------------------------------------------------------


def _position(keyword: str) -> int:
    last = FINAL.last(keyword)
    assert last is not None, f"no {keyword} in the runtime stage"
    return FINAL.instructions.index(last)


def test_runs_as_an_unprivileged_user_whose_home_is_the_working_directory() -> None:
    user = FINAL.last("USER")
    assert user is not None, "no USER: the container would run as root"
    name = user.args.split(":")[0].strip()
    assert name not in ("root", "0"), f"USER {user.args}"
    created = [shlex.split(i.args) for i in FINAL.all("RUN") if "useradd" in i.args]
    assert created, "the runtime stage creates its user"
    useradd = created[0][created[0].index("useradd") :]
    assert name in (useradd[-1], _option(useradd, "--uid")), f"USER {name} is not the user useradd creates"
    assert int(_option(useradd, "--uid") or 0) >= 1000
    workdir = FINAL.workdir()
    assert workdir and _option(useradd, "--home-dir") == workdir and "--create-home" in useradd
    # Set before what runs in the container, and nothing switches back to root afterwards.
    assert _position("USER") < min(_position(k) for k in ("HEALTHCHECK", "ENTRYPOINT", "CMD"))
    # The compose service keeps its state in a named volume on that directory (a fresh volume takes its owner).
    state = [m for m in mounts(DEMO) if m.target == workdir]
    assert state and not state[0].is_bind, "demo: a named volume on the image's working directory"


def _option(words: list[str], name: str) -> str | None:
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def test_entrypoint_is_the_sieve_command_and_the_default_is_the_compose_demo() -> None:
    entrypoint, cmd = FINAL.last("ENTRYPOINT"), FINAL.last("CMD")
    assert entrypoint and cmd
    assert entrypoint.exec_form() == ["sieve"] and "sieve" in PYPROJECT["project"]["scripts"]
    assert cmd.exec_form() == ["demo", "--serve"]
    assert "entrypoint" not in DEMO
    assert [*(entrypoint.exec_form() or []), *DEMO["command"]] == ["sieve", "demo", "--serve"]
    # docker stop's SIGTERM is handled by sieve demo itself (tests/demo/test_sigterm.py): no other stop signal.
    stop = FINAL.last("STOPSIGNAL")
    assert stop is None or stop.args.strip() == "SIGTERM"


def test_exposes_the_ports_the_demo_listens_on() -> None:
    exposed = {p.split("/")[0] for i in FINAL.all("EXPOSE") for p in i.args.split()}
    assert exposed == {str(DEFAULTS.service.port), str(DEFAULTS.prometheus.port)}
    assert {p.split(":")[-1] for p in DEMO["ports"]} <= exposed


# -- the healthcheck ------------------------------------------------------------------------------------------------


def _healthcheck() -> tuple[dict[str, str], list[str], str]:
    instruction = FINAL.last("HEALTHCHECK")
    assert instruction is not None, "no HEALTHCHECK"
    check = healthcheck(instruction)
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)/readyz", " ".join(check.command))
    assert len(urls) == 1, f"one request to /readyz on the loopback: {check.command}"
    return check.options, check.command, urls[0]


def test_healthcheck_asks_readyz_on_the_metrics_port_with_python_alone() -> None:
    options, command, port = _healthcheck()
    assert command[0] == "python" and command[1] == "-c", "python's urllib: the slim image has no curl"
    assert "urllib.request" in command[2]
    assert not {"curl", "wget", "sh", "/bin/sh"} & set(command)
    assert int(port) == DEFAULTS.prometheus.port
    assert environment_port(DEMO) in (None, int(port))
    # The request gives up before Docker kills the check, and the start period covers migrations and seeding.
    request_timeout = re.search(r"timeout=(\d+(?:\.\d+)?)", command[2])
    assert request_timeout and float(request_timeout.group(1)) < duration_s(options["timeout"])
    assert duration_s(options["start-period"]) >= 60 and duration_s(options["interval"]) <= 30


def environment_port(service: dict[str, Any]) -> int | None:
    env = service.get("environment") or {}
    value = env.get("SIEVE_PROMETHEUS__PORT") or env.get("OTEL_EXPORTER_PROMETHEUS_PORT")
    return int(value) if value else None


@contextmanager
def _endpoint(ready: bool) -> Iterator[int]:
    readiness = Readiness()
    readiness.register("component", lambda: ComponentState(ready))
    server = TelemetryServer("127.0.0.1", 0, CollectorRegistry(), readiness).start()
    try:
        yield server.port
    finally:
        server.stop()


def _run_healthcheck(port: int) -> int:
    _, command, image_port = _healthcheck()
    code = command[2].replace(f"127.0.0.1:{image_port}/", f"127.0.0.1:{port}/")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, check=False).returncode


def test_healthcheck_command_passes_when_ready_and_fails_otherwise() -> None:
    with _endpoint(ready=True) as port:
        assert _run_healthcheck(port) == 0
    with _endpoint(ready=False) as port:
        assert _run_healthcheck(port) != 0, "503 from /readyz must fail the check"
    # Nothing listening (the port the last server used, now closed).
    assert _run_healthcheck(port) != 0
