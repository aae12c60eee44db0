"""The sampler's vocabulary: its label values are enums whose members are today's strings, and the dashboards and
alert rules (and their tests) use no value the sampler does not emit."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest

from pipeline.names import sampling as n
from pipeline.names.sampling import ErrorSite, Outcome, Reason, ShedReason, Trigger

ROOT = Path(__file__).resolve().parents[2]
LABELS: dict[str, type[StrEnum]] = {
    n.DECISION: Outcome,
    n.SHED_REASON: ShedReason,
    n.BOUND: Trigger,
    n.ERROR_SITE: ErrorSite,
}


def test_label_values_are_the_strings_dashboards_and_alerts_know() -> None:
    # Exported as label values and stamped on spans: renaming a member's value breaks queries downstream.
    assert [o.value for o in Outcome] == ["sampled", "not_sampled", "dropped"]
    assert [r.value for r in ShedReason] == ["queue_full", "stress_relief"]
    assert [r.value for r in Reason] == ["none", "budget", "stress_relief", "maximum_trace_size_bytes", "shutdown"]
    assert {t.value for t in Trigger} >= {"num_traces", "max_buffered_spans", "span_limit", "maximum_trace_size_bytes"}
    assert [s.value for s in ErrorSite] == ["worker", "intake", "downstream", "listener", "observer"]


def test_a_member_is_its_string() -> None:
    assert Reason.NONE == "none" and f"{Outcome.NOT_SAMPLED}" == "not_sampled"
    assert {(Outcome.SAMPLED, "none"): 1}[("sampled", Reason.NONE)] == 1  # hashes as the string


@pytest.mark.parametrize(("key", "enum"), LABELS.items(), ids=list(LABELS))
def test_dashboards_and_alerts_use_only_values_the_sampler_emits(key: str, enum: type[StrEnum]) -> None:
    label = re.sub(r"[^a-zA-Z0-9_]", "_", key)
    # label="value", label=~"a|b", label: value (a promtool test's expected labels)
    pattern = re.compile(rf"{label}\s*(?:=~?|!=|:)\s*\\?[\"']?([a-z_|]+)")
    values = set()
    for path in (ROOT / "dashboards").rglob("*"):
        if path.suffix in {".json", ".yml", ".yaml", ".py", ".md"}:
            for match in pattern.finditer(path.read_text(encoding="utf-8")):
                values.update(v for v in match.group(1).split("|") if v)
    assert values <= {m.value for m in enum}, f"{key}: {sorted(values - {m.value for m in enum})}"
