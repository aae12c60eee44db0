"""render.py: the text a person reads and the versioned JSON shape tools rely on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.slowlookups.diagnose import diagnose_all
from pipeline.slowlookups.model import NPlusOne, PlanChange, Report
from pipeline.slowlookups.query import batched_statement
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
    "plan_hash": (str, type(None)),
    "plan_captured_at": (str, type(None)),
    "first_seen": (str, type(None)),
    "last_seen": (str, type(None)),
    "plan_change": (dict, type(None)),
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


def test_json_shape_version_2() -> None:
    doc = json.loads(render_json(report()))  # through text: only JSON types survive
    assert set(doc) == {"version", "window", "groups", "plan_changes", "n_plus_one"}
    assert doc["version"] == JSON_VERSION == 2
    assert doc["plan_changes"] == [] and doc["n_plus_one"] == {"source": "off", "since": None, "groups": []}
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
    assert text.startswith(
        "Slow lookups 2025-11-01T10:00:00+00:00 .. 2025-11-01T11:00:00+00:00: 3 groups (statement shape and plan)"
    )
    assert "get_conversation_messages  fingerprint a1b2c3d4e5f60718  plan unknown" in text
    assert "40 slow calls  p50 50 ms  p95 90 ms  max 544 ms" in text
    assert "time: pool wait 7%  connect 0%  execute 93%" in text
    assert "time: pool wait 0%  connect 95%  execute 5%  (40 new connections, 36 after idle)" in text
    assert f"traces: {TRACES[0]}, {TRACES[1]}" in text
    assert f"open one: sieve trace {TRACES[0]}" in text
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


BEFORE, AFTER = "f3f7bd370ee12a51", "c36fcf6a1acbe091"
CHANGED = UNTIL - timedelta(minutes=20)


def _change(**kw: Any) -> PlanChange:
    base: dict[str, Any] = {
        "fingerprint": "a1b2c3d4e5f60718", "operation": "get_conversation_messages", "from_plan_hash": BEFORE,
        "to_plan_hash": AFTER, "changed_at": CHANGED, "before_calls": 1855, "before_estimated_calls": 17587.0,
        "before_p50_ms": 5.8, "before_p95_ms": 41.0, "after_calls": 1960, "after_estimated_calls": 19348.0,
        "after_p50_ms": 2.2, "after_p95_ms": 2.5,
    }  # fmt: skip
    base.update(kw)
    return PlanChange(**base)


def _before_after() -> Report:
    diagnosed = diagnose_all(
        [
            group(execute_ms=4000, plan=plans.SEQ_SCAN_SORT, plan_hash=BEFORE, example_trace_ids=TRACES),
            group(connect_ms=2500, execute_ms=30, calls=10, plan=plans.INDEX_IN_ORDER, plan_hash=AFTER),
        ],
        SINCE,
        UNTIL,
    )
    return Report(SINCE, UNTIL, diagnosed.groups, plan_changes=(_change(),))


def test_before_and_after_an_index_are_two_groups_and_the_change_says_so_once() -> None:
    text = render_text(_before_after())
    assert f"fingerprint a1b2c3d4e5f60718  plan {BEFORE} (replaced at 2025-11-01T10:40:00+00:00)" in text
    assert f"fingerprint a1b2c3d4e5f60718  plan {AFTER} (since 2025-11-01T10:40:00+00:00)" in text
    assert text.count("plan changed at 2025-11-01T10:40:00+00:00") == 1
    flat = " ".join(text.split())  # prose is wrapped for a terminal
    assert "p95 41 ms -> 2.5 ms, p50 5.8 ms -> 2.2 ms over all kept calls (1,855 before, 1,960 after" in flat
    assert "Plan changes (no slow calls" not in text
    doc = to_dict(_before_after())
    first, second = doc["groups"]
    assert (first["plan_hash"], second["plan_hash"]) == (BEFORE, AFTER)
    assert first["plan_change"] == second["plan_change"] == doc["plan_changes"][0]
    assert doc["plan_changes"][0]["before"] == {
        "calls": 1855, "estimated_calls": 17587.0, "p50_ms": 5.8, "p95_ms": 41.0,
    }  # fmt: skip
    assert [f["kind"] for f in first["findings"]] == ["missing_index"]
    assert [f["kind"] for f in second["findings"]] != ["missing_index"]  # the new plan needs no index


def test_a_change_without_slow_calls_under_either_plan_gets_its_own_section() -> None:
    text = render_text(Report(SINCE, UNTIL, plan_changes=(_change(),)))
    assert "Slow lookups 2025-11-01T10:00:00+00:00 .. 2025-11-01T11:00:00+00:00: none." in text
    assert "Plan changes (no slow calls under one of the plans):" in text
    assert "get_conversation_messages  fingerprint a1b2c3d4e5f60718" in text
    assert "p95 41 ms -> 2.5 ms" in " ".join(text.split())


def _repeat(**kw: Any) -> NPlusOne:
    base: dict[str, Any] = {
        "parent": "call_tool", "fingerprint": "0a0a0a0a0a0a0a0a", "operation": "get_file",
        "statement": "SELECT id, name FROM public.files WHERE id = $1", "occurrences": 76, "traces": 76,
        "executions_p50": 6.0, "executions_max": 6, "total_ms_p50": 4.2, "total_ms_max": 9.1, "total_ms_sum": 320.0,
        "example_trace_ids": TRACES, "fix": "load all of them in one query under call_tool",
        "batched_statement": batched_statement("SELECT id, name FROM public.files WHERE id = $1"),
    }  # fmt: skip
    base.update(kw)
    return NPlusOne(**base)


def test_n_plus_one_groups_name_the_parent_the_count_and_the_fix() -> None:
    r = Report(SINCE, UNTIL, n_plus_one=(_repeat(),), n_plus_one_source="scan")
    text = render_text(r)
    assert "N+1: one statement run again and again under one parent (found in the stored spans)" in text
    assert "get_file x6 under call_tool  fingerprint 0a0a0a0a0a0a0a0a" in text
    assert "76 times in 76 traces: 6 executions in a row (max 6), 4.2 ms per occurrence" in " ".join(text.split())
    assert f"open one: sieve trace {TRACES[0]}" in text
    assert any(line.strip() == "SELECT id, name FROM public.files WHERE id = ANY($1)" for line in text.splitlines())
    doc = json.loads(render_json(r))
    (g,) = doc["n_plus_one"]["groups"]
    assert doc["n_plus_one"]["source"] == "scan"
    assert g["executions"] == {"p50": 6.0, "max": 6} and g["batched_statement"].endswith("id = ANY($1)")
    assert "N+1: none (found in the stored spans)." in render_text(Report(SINCE, UNTIL, n_plus_one_source="scan"))
    marked = render_text(Report(SINCE, UNTIL, n_plus_one=(_repeat(marked=True),), n_plus_one_source="marked"))
    assert "(marked by the tail sampler)" in marked and "[marked in-process]" in marked


def test_the_batched_statement_is_written_only_when_it_is_unambiguous() -> None:
    assert batched_statement("SELECT a FROM t WHERE id = $1") == "SELECT a FROM t WHERE id = ANY($1)"
    assert batched_statement('SELECT a FROM t AS x WHERE x."Id" = $1 AND b = $2') == (
        'SELECT a FROM t AS x WHERE x."Id" = ANY($1) AND b = $2'
    )
    assert batched_statement("SELECT a FROM t WHERE id = $10") is None
    assert batched_statement("SELECT a FROM t WHERE id = $1 OR parent = $1") is None
    assert batched_statement("SELECT a FROM t WHERE id > $1") is None


def test_a_change_with_calls_on_one_side_only_says_so() -> None:
    only_after = _change(before_calls=0, before_estimated_calls=0.0, before_p50_ms=None, before_p95_ms=None)
    text = " ".join(render_text(Report(SINCE, UNTIL, plan_changes=(only_after,))).split())
    assert "no kept calls on the other side within an hour; p95 2.5 ms after (1,960 calls)" in text
    none = _change(before_calls=0, after_calls=0, before_p95_ms=None, after_p95_ms=None)
    assert "no kept calls on either side" in " ".join(render_text(Report(SINCE, UNTIL, plan_changes=(none,))).split())


def test_a_scan_shorter_than_the_window_says_where_it_started() -> None:
    scanned = UNTIL - timedelta(minutes=60)
    day = Report(UNTIL - timedelta(days=1), UNTIL, n_plus_one_source="scan", n_plus_one_since=scanned)
    assert "N+1: none (found in the stored spans since 2025-11-01T10:00:00+00:00)." in render_text(day)
    assert to_dict(day)["n_plus_one"]["since"] == scanned.isoformat()
