"""render.py: the text a person reads and the versioned JSON shape tools rely on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.slowlookups.diagnose import diagnose_all
from pipeline.slowlookups.model import Report
from pipeline.slowlookups.render import JSON_VERSION, render_json, render_text, to_dict

from . import plans
from .test_slowlookups_diagnose import DEMO_INDEX, group

UNTIL = datetime(2025, 11, 1, 11, 0, tzinfo=UTC)
SINCE = UNTIL - timedelta(hours=1)
TRACES = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7a3ce929d0e0e4736")


def report() -> Report:
    return diagnose_all(
        [
            group(execute_ms=4000, pool_wait_ms=300, plan=plans.INDEX_SCAN_SORT_ANALYZED, plan_analyzed=True,
                  example_trace_ids=TRACES),
            group(operation="get_conversation_by_continuation_id", fingerprint="0f0f0f0f0f0f0f0f",
                  statement="SELECT id FROM public.conversations WHERE continuation_id = $1",
                  connect_ms=12_600, execute_ms=600, connects=40, idle_connects=36, plan=plans.UNIQUE_LOOKUP),
            group(pool_wait_ms=720, connect_ms=30, execute_ms=250, pool="psycopg", pool_max_size=None),
        ],
        SINCE,
        UNTIL,
    )  # fmt: skip


GROUP_TYPES: dict[str, Any] = {
    "fingerprint": str,
    "operation": str,
    "statement": str,
    "calls": int,
    "latency_ms": dict,
    "time_ms": dict,
    "time_share": dict,
    "connects": int,
    "idle_connects": int,
    "pool": dict,
    "example_trace_ids": list,
    "plan": (dict, type(None)),
    "findings": list,
}
FINDING_TYPES: dict[str, Any] = {
    "kind": str,
    "summary": str,
    "detail": str,
    "table": (str, type(None)),
    "columns": list,
    "create_index": (str, type(None)),
    "evidence": dict,
}
KEY_NODE_TYPES: dict[str, Any] = {
    "node_type": str,
    "depth": int,
    "relation": (str, type(None)),
    "schema": (str, type(None)),
    "alias": (str, type(None)),
    "index_name": (str, type(None)),
    "filter": (str, type(None)),
    "index_cond": (str, type(None)),
    "sort_key": list,
    "presorted_key": list,
    "sort_method": (str, type(None)),
    "parallel": bool,
    "plan_rows": float,
    "actual_rows": (float, type(None)),
    "rows_removed_by_filter": (float, type(None)),
    "total_cost": float,
    "actual_total_ms": (float, type(None)),
}


def check(obj: dict[str, Any], types: dict[str, Any]) -> None:
    assert set(obj) == set(types), set(obj) ^ set(types)
    for key, expected in types.items():
        assert isinstance(obj[key], expected), (key, obj[key])


def test_json_shape_version_1() -> None:
    doc = json.loads(render_json(report()))  # through text: only JSON types survive
    assert set(doc) == {"version", "window", "groups"} and doc["version"] == JSON_VERSION == 1
    assert doc["window"] == {"since": "2025-11-01T10:00:00+00:00", "until": "2025-11-01T11:00:00+00:00"}
    assert len(doc["groups"]) == 3
    for g in doc["groups"]:
        check(g, GROUP_TYPES)
        assert set(g["latency_ms"]) == {"p50", "p95", "max"} and all(
            isinstance(v, float) for v in g["latency_ms"].values()
        )
        for part in ("time_ms", "time_share"):
            assert set(g[part]) == {"pool_wait", "connect", "execute"}
            assert all(isinstance(v, float) for v in g[part].values())
        assert abs(sum(g["time_share"].values()) - 1.0) < 1e-3
        assert set(g["pool"]) == {"name", "max_size"}
        if g["plan"] is not None:
            assert set(g["plan"]) == {"analyzed", "key_nodes"} and isinstance(g["plan"]["analyzed"], bool)
            for node in g["plan"]["key_nodes"]:
                check(node, KEY_NODE_TYPES)
        for f in g["findings"]:
            check(f, FINDING_TYPES)
            assert all(isinstance(c, str) for c in f["columns"])


def test_json_content() -> None:
    doc = to_dict(report())
    first, second, third = doc["groups"]
    assert first["example_trace_ids"] == list(TRACES) and first["plan"]["analyzed"] is True
    assert [n["node_type"] for n in first["plan"]["key_nodes"]] == ["Limit", "Sort", "Bitmap Heap Scan"]
    (f,) = first["findings"]
    assert (f["kind"], f["table"], f["columns"], f["create_index"]) == (
        "missing_index",
        "public.messages",
        ["conversation_id", "created_at DESC"],
        DEMO_INDEX,
    )
    assert f["evidence"]["pattern"] == "index_scan_sort"
    assert [f["kind"] for f in second["findings"]] == ["connect_after_idle"]
    assert third["pool"] == {"name": "psycopg", "max_size": None} and third["plan"] is None
    assert [f["kind"] for f in third["findings"]] == ["pool_saturation"]


def test_text_for_people() -> None:
    text = render_text(report())
    assert text.startswith("Slow lookups 2025-11-01T10:00:00+00:00 .. 2025-11-01T11:00:00+00:00: 3 statement shapes")
    assert "get_conversation_messages  fingerprint a1b2c3d4e5f60718" in text
    assert "40 slow calls  p50 50 ms  p95 90 ms  max 544 ms" in text
    assert "time: pool wait 7%  connect 0%  execute 93%" in text
    assert "time: pool wait 0%  connect 95%  execute 5%  (40 new connections, 36 after idle)" in text
    assert f"traces: {TRACES[0]}, {TRACES[1]}" in text
    assert "plan (analyzed): [Limit rows 10] -> [Sort by created_at DESC rows 10 top-N heapsort]" in text
    assert "plan: none captured" in text
    assert "[missing_index] missing index on public.messages (conversation_id, created_at DESC)" in text
    # The fix is on a line of its own, whole, so it can be copied.
    assert any(line.strip() == DEMO_INDEX for line in text.splitlines())
    assert "[connect_after_idle]" in text and "[pool_saturation] pool 'psycopg' saturated: 72%" in text
    prose = [line for line in text.splitlines() if line.startswith("     ") and "CREATE INDEX" not in line]
    assert prose and max(len(line) for line in prose) <= 110  # details are wrapped for a terminal


def test_text_for_an_empty_window() -> None:
    assert (
        render_text(Report(SINCE, UNTIL))
        == "Slow lookups 2025-11-01T10:00:00+00:00 .. 2025-11-01T11:00:00+00:00: none.\n"
    )
    assert to_dict(Report(SINCE, UNTIL))["groups"] == []


def test_long_values_are_cut_in_text_only() -> None:
    long_stmt = "SELECT * FROM t WHERE a = $1 AND " + " AND ".join(f"c{i} = ${i + 2}" for i in range(80))
    r = diagnose_all([group(statement=long_stmt, execute_ms=10)], SINCE, UNTIL)
    assert "…" in render_text(r)
    assert to_dict(r)["groups"][0]["statement"] == long_stmt
