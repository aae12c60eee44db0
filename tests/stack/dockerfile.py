"""Reading the Dockerfile and .dockerignore as Docker does, for tests that cannot run a Docker daemon.

Enough of Docker's grammar for this repository's files: instructions with ``\\`` continuations and comment lines,
stages (``FROM image [AS name]``), exec-form (JSON) arguments, ``HEALTHCHECK [options] CMD ...``, and the
.dockerignore rules (Go ``filepath.Match`` patterns plus ``**``, ``!`` exceptions, the last match wins, a pattern
that matches a directory matches everything under it).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # everything after the keyword, continuation lines joined with one space
    line: int  # 1-based line of the keyword

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (``CMD ["a", "b"]``), None for the shell form."""
        return _json_array(self.args)

    def flags(self) -> dict[str, str]:
        """Leading ``--name=value`` options (``COPY --from=build``, ``HEALTHCHECK --interval=10s``)."""
        found = {}
        for token in self.args.split():
            if not token.startswith("--"):
                break
            name, _, value = token[2:].partition("=")
            found[name] = value
        return found

    def operands(self) -> list[str]:
        """The shell-form words after the options (``COPY src dest``, ``FROM image AS name``)."""
        words = shlex.split(self.args)
        while words and words[0].startswith("--"):
            words.pop(0)
        return words


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def workdir(self) -> str | None:
        last = self.last("WORKDIR")
        return last.args.strip() if last else None


def instructions(text: str) -> list[Instruction]:
    found: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):  # comments and blank lines, also inside a continuation
            continue
        if not parts:
            start = number
        continued = line.endswith("\\")
        parts.append(line[:-1].strip() if continued else line)
        if not continued:
            keyword, _, args = " ".join(parts).partition(" ")
            found.append(Instruction(keyword.upper(), args.strip(), start))
            parts = []
    assert not parts, "the Dockerfile ends inside a continuation"
    return found


def stages(text: str) -> list[Stage]:
    result: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.operands()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(base=words[0], name=name))
        else:
            assert result, f"line {instruction.line}: {instruction.keyword} before FROM"
            result[-1].instructions.append(instruction)
    return result


def load_stages() -> list[Stage]:
    return stages(DOCKERFILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Healthcheck:
    options: dict[str, str]
    command: list[str]  # exec form, as the container runs it


def healthcheck(instruction: Instruction) -> Healthcheck:
    options, rest = {}, instruction.args
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        options[name] = value
        rest = rest.lstrip()
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", f"HEALTHCHECK {keyword}: expected CMD"
    argv = _json_array(command)
    assert argv is not None, "HEALTHCHECK CMD in shell form needs /bin/sh; use the exec form"
    return Healthcheck(options, argv)


def duration_s(value: str) -> float:
    """A Docker duration (``1m30s``, ``10s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _json_array(text: str) -> list[str] | None:
    if not text.lstrip().startswith("["):
        return None
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
    return value


# -- .dockerignore -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    exception: bool  # a `!pattern` line: re-include
    regex: re.Pattern[str]


def ignore_rules(text: str) -> list[IgnoreRule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line[1:].strip() if exception else line
        pattern = pattern.lstrip("/").removeprefix("./").rstrip("/")
        rules.append(IgnoreRule(pattern, exception, re.compile(_translate(pattern))))
    return rules


def load_ignore_rules() -> list[IgnoreRule]:
    return ignore_rules(DOCKERIGNORE.read_text(encoding="utf-8"))


def in_context(path: str, rules: list[IgnoreRule]) -> bool:
    """Whether the file at ``path`` (relative, ``/``-separated) is sent to the daemon as part of the build context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for rule in rules:
        if any(rule.regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not rule.exception
    return not excluded


def _translate(pattern: str) -> str:
    """A Go filepath.Match pattern with Docker's ``**`` as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)
