"""Reading the alert rule file and the runbooks for the tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.alerts.tools import RULES_FILE, RUNBOOKS_FILE


@dataclass(frozen=True)
class Rule:
    group: str
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw.get("alert") or self.raw["record"])

    @property
    def is_alert(self) -> bool:
        return "alert" in self.raw

    @property
    def expr(self) -> str:
        return str(self.raw["expr"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.raw.get("labels") or {})

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.raw.get("annotations") or {})


def load_rules(path: Path = RULES_FILE) -> list[Rule]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Rule(group["name"], rule) for group in document["groups"] for rule in group["rules"]]


def github_anchor(heading: str) -> str:
    """The fragment GitHub (and most Markdown renderers) give a heading: lower case, spaces to dashes,
    punctuation other than ``-`` and ``_`` removed."""
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


@dataclass
class Runbook:
    title: str
    body: str
    anchor: str = field(init=False)

    def __post_init__(self) -> None:
        self.anchor = github_anchor(self.title)


def load_runbooks(path: Path = RUNBOOKS_FILE) -> list[Runbook]:
    """Second-level sections of the runbook file (``## Name`` up to the next ``## ``)."""
    text = path.read_text(encoding="utf-8")
    sections = re.split(r"(?m)^## ", text)[1:]
    books = []
    for section in sections:
        title, _, body = section.partition("\n")
        books.append(Runbook(title, body))
    return books


# Dashboard references in a runbook's "Panel." paragraph: *Dashboard title*, then "Panel title", "Panel title" ...
_PANEL_PARAGRAPH = re.compile(r"(?s)\*\*Panel\.\*\*(.*?)(?:\n\n|\Z)")
_DASHBOARD = re.compile(r"\*(Sieve / [^*]+)\*")
_QUOTED = re.compile(r'"([^"]+)"')


def panel_references(body: str) -> list[tuple[str, str]]:
    """``(dashboard title, panel title)`` pairs named in a runbook's Panel paragraph."""
    match = _PANEL_PARAGRAPH.search(body)
    if not match:
        return []
    refs: list[tuple[str, str]] = []
    paragraph = match.group(1)
    pieces = _DASHBOARD.split(paragraph)  # [before, title1, after1, title2, after2, ...]
    for title, after in zip(pieces[1::2], pieces[2::2], strict=True):
        refs.extend((title, panel) for panel in _QUOTED.findall(after))
    return refs
