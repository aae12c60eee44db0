"""What every panel of every committed dashboard must have: a place, an id, refIds, a fixed data source, a unit."""

from __future__ import annotations

from itertools import combinations

import pytest

from pipeline.grafana import resources
from pipeline.grafana.resources import DEFAULT_TRACE_URL

FIXED_DATASOURCES = {
    resources.PROMETHEUS_UID: resources.PROMETHEUS_TYPE,
    resources.POSTGRES_UID: resources.POSTGRES_TYPE,
}
SLOW_LOOKUPS_SQL = (
    "SELECT fingerprint, plan_hash, operation, calls, p50_ms, p95_ms, max_ms, dominant, "
    "example_trace_ids[1] AS trace_id, 'sieve trace ' || example_trace_ids[1] AS open_with, statement "
    "FROM monitoring.get_slow_lookup_groups($__timeFrom()::timestamptz, $__timeTo()::timestamptz)"
)


def test_every_panel_has_a_unique_id_and_a_grid_position(committed):
    for board in committed:
        panels = board.model["panels"]
        ids = [p.get("id") for p in panels]
        assert all(isinstance(i, int) and i > 0 for i in ids), board.uid
        assert len(set(ids)) == len(ids), f"{board.uid}: duplicate panel ids"
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["w"] > 0 and pos["h"] > 0, f"{board.uid}/{panel['title']}"
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{board.uid}/{panel['title']}: off the grid"


def test_no_two_panels_overlap(committed):
    for board in committed:
        for a, b in combinations(board.model["panels"], 2):
            pa, pb = a["gridPos"], b["gridPos"]
            apart = (
                pa["x"] + pa["w"] <= pb["x"]
                or pb["x"] + pb["w"] <= pa["x"]
                or pa["y"] + pa["h"] <= pb["y"]
                or pb["y"] + pb["h"] <= pa["y"]
            )
            assert apart, f"{board.uid}: {a['title']!r} overlaps {b['title']!r}"


def test_every_target_has_a_unique_ref_id(committed):
    for board in committed:
        for panel in board.model["panels"]:
            refs = [t.get("refId") for t in panel.get("targets", [])]
            assert all(refs), f"{board.uid}/{panel['title']}: target without refId"
            assert len(set(refs)) == len(refs), f"{board.uid}/{panel['title']}: duplicate refIds {refs}"
            if panel["type"] != "row":
                assert refs, f"{board.uid}/{panel['title']}: no query"


def test_data_sources_are_the_fixed_ones(committed):
    for board in committed:
        for panel in board.model["panels"]:
            if panel["type"] == "row":
                continue
            ds = panel["datasource"]
            assert FIXED_DATASOURCES.get(ds["uid"]) == ds["type"], f"{board.uid}/{panel['title']}: {ds}"
            for target in panel["targets"]:
                assert target.get("datasource", ds) == ds
        for variable in board.model["templating"]["list"]:
            if "datasource" in variable:
                assert variable["datasource"] == {"type": resources.PROMETHEUS_TYPE, "uid": resources.PROMETHEUS_UID}


def test_every_metric_panel_has_a_unit(committed):
    for board in committed:
        for panel in board.model["panels"]:
            if panel["type"] in ("timeseries", "stat"):
                assert panel["fieldConfig"]["defaults"].get("unit"), f"{board.uid}/{panel['title']}: no unit"


def test_service_and_instance_variables_on_every_dashboard(committed):
    for board in committed:
        variables = {v["name"]: v for v in board.model["templating"]["list"]}
        assert variables["job"]["query"] == "label_values(target_info, job)"
        assert variables["instance"]["query"] == 'label_values(target_info{job=~"$job"}, instance)'
        # One job (never "All": the same series may arrive under two jobs), any of its instances.
        assert not variables["job"]["includeAll"] and not variables["job"]["multi"]
        assert variables["job"]["current"] == {"text": resources.DEFAULT_JOB, "value": resources.DEFAULT_JOB}
        assert variables["instance"]["includeAll"] and variables["instance"]["multi"]


def test_slow_lookups_table_reads_the_postgres_function_and_links_traces(committed):
    storage = next(b.model for b in committed if b.uid == resources.STORAGE_UID)
    tables = {p["title"]: p for p in storage["panels"] if p["type"] == "table"}
    assert set(tables) == {"Slow lookups", "N+1 loops (last hour of the range)"}
    table = tables["Slow lookups"]
    assert table["datasource"] == {"type": resources.POSTGRES_TYPE, "uid": resources.POSTGRES_UID}
    (target,) = table["targets"]
    assert target["rawSql"] == SLOW_LOOKUPS_SQL
    assert (target["format"], target["editorMode"], target["refId"]) == ("table", "code", "A")
    overrides = {o["matcher"]["options"]: o["properties"] for o in table["fieldConfig"]["overrides"]}
    (links,) = [p["value"] for p in overrides["trace_id"] if p["id"] == "links"]
    assert links == [{"title": "Open trace", "url": "${trace_url}/trace/${__value.raw}", "targetBlank": True}]
    trace_url = next(v for v in storage["templating"]["list"] if v["name"] == "trace_url")
    assert (trace_url["type"], trace_url["query"]) == ("textbox", DEFAULT_TRACE_URL)
    for column in ("p50_ms", "p95_ms", "max_ms"):
        assert {"id": "unit", "value": "ms"} in overrides[column]
    # The N+1 table reads its function over at most the last hour of the range, with the same trace links.
    (n1,) = tables["N+1 loops (last hour of the range)"]["targets"]
    assert "monitoring.get_n_plus_one_groups(greatest($__timeFrom()" in n1["rawSql"]
    assert "'sieve trace ' || example_trace_ids[1] AS open_with" in n1["rawSql"]


def test_latency_and_error_panels_of_exemplar_metrics_show_exemplars(committed):
    from pipeline.exemplars.sources import SOURCES

    carried = {s.spec.prometheus_name + ("_bucket" if s.is_histogram else "") for s in SOURCES}
    # A time series panel shows exemplars as dots on its graph (a stat panel has nowhere to put them).
    flagged = []
    for board in committed:
        for panel in board.model["panels"]:
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                if target.get("exemplar"):
                    flagged.append(panel["title"])
                    # Only metrics that carry Sieve's exemplars ask for them.
                    assert any(name in expr for name in carried), f"{board.uid}/{panel['title']}: {expr}"
                elif panel["type"] == "timeseries" and "histogram_quantile" in expr and any(n in expr for n in carried):
                    raise AssertionError(f"{board.uid}/{panel['title']}: a latency panel without exemplars")
    assert {"p95 duration", "Processing p95 by op", "p95 by operation", "Errors"} <= set(flagged)


def test_dashboards_link_to_each_other(committed):
    for board in committed:
        (link,) = board.model["links"]
        assert link["type"] == "dashboards" and link["tags"] == ["sieve"] and link["keepTime"]


def test_units_come_from_the_metric_table():
    from dashboards.common import rate_unit, unit
    from pipeline.names import sink, storage, websocket

    assert unit(storage.OPERATION_DURATION) == "s"
    assert unit(sink.SPOOL_SIZE) == "bytes"
    assert unit(websocket.CONNECTIONS_ACTIVE) == "short"
    assert rate_unit(websocket.MESSAGES_RECEIVED) == "suffix:message/s"
    assert rate_unit(storage.OPERATION_DURATION, "operation") == "suffix:operation/s"
    with pytest.raises(ValueError, match="name what is counted"):
        rate_unit(storage.OPERATION_DURATION)


def test_no_panel_shows_seconds_per_second(committed):
    for board in committed:
        for panel in board.model["panels"]:
            assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit") != "suffix:s/s", panel["title"]
