"""The committed JSON is what the generator produces, and what Grafana's schema (the SDK's decoder) accepts."""

from __future__ import annotations

import json

import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import prometheus as prometheus_models

from dashboards import build, postgres
from dashboards.common import to_dict
from pipeline.grafana import resources


def test_committed_json_is_generated_json(tmp_path):
    committed = {p.name: json.loads(p.read_text()) for p in build.OUTPUT_DIR.glob("*.json")}
    generated = {name: json.loads(text) for name, text in build.generate().items()}
    stale = sorted(n for n in committed.keys() | generated.keys() if committed.get(n) != generated.get(n))
    assert not stale, f"dashboards/grafana is out of date ({', '.join(stale)}): run `{build.GENERATE_COMMAND}`"
    assert build.stale_files() == []


def test_write_creates_every_file_and_removes_stale_ones(tmp_path):
    (tmp_path / "old-dashboard.json").write_text("{}")
    written = build.write(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(f"{uid}.json" for uid in resources.DASHBOARD_UIDS)
    assert sorted(written) == sorted(tmp_path.glob("*.json"))
    assert build.stale_files(tmp_path) == []
    (tmp_path / "sieve-storage.json").write_text("{}\n")
    assert build.stale_files(tmp_path) == ["sieve-storage.json"]


def test_generation_is_deterministic():
    assert build.generate() == build.generate()


def test_four_dashboards_with_fixed_uids(committed):
    assert sorted(b.uid for b in committed) == sorted(resources.DASHBOARD_UIDS)
    for board in committed:
        assert board.path.name == f"{board.uid}.json"
        assert "id" not in board.model or board.model["id"] is None  # the id is per-instance; uid is identity
        assert "sieve" in board.model["tags"]


@pytest.fixture(scope="module")
def decoder():
    plugins.register_default_plugins()
    postgres.register()


def test_committed_json_round_trips_through_the_sdk_decoder(committed, decoder):
    for board in committed:
        model = dashboard_models.Dashboard.from_json(board.model)
        again = json.loads(JSONEncoder(sort_keys=True).encode(model))
        assert again == board.model, f"{board.uid}: the SDK's decoder loses or changes fields"


def test_decoded_targets_are_typed_queries(committed, decoder):
    for board in committed:
        model = dashboard_models.Dashboard.from_json(board.model)
        for panel in model.panels or []:
            for target in getattr(panel, "targets", None) or []:
                assert not isinstance(target, UnknownDataquery), f"{board.uid}/{panel.title}: untyped target"
                expected = postgres.SqlQuery if panel.datasource.uid == resources.POSTGRES_UID else None
                assert isinstance(target, expected or prometheus_models.Dataquery)


def test_sql_query_round_trip():
    query = postgres.SqlQueryBuilder().ref_id("B").raw_sql("SELECT 1").format("time_series").build()
    data = json.loads(JSONEncoder().encode(query))
    assert data == {
        "refId": "B",
        "rawSql": "SELECT 1",
        "format": "time_series",
        "editorMode": "code",
        "rawQuery": True,
        "datasource": {"type": resources.POSTGRES_TYPE, "uid": resources.POSTGRES_UID},
    }
    assert json.loads(JSONEncoder().encode(postgres.SqlQuery.from_json(data))) == data
    with pytest.raises(ValueError, match="format"):
        postgres.SqlQueryBuilder().format("csv")


def test_to_dict_matches_committed_text(committed):
    from dashboards import overview

    assert to_dict(overview.build()) == next(b.model for b in committed if b.uid == resources.OVERVIEW_UID)


def test_check_command(capsys, monkeypatch, tmp_path):
    from dashboards.__main__ import main

    assert main(["--check"]) == 0
    monkeypatch.setattr("dashboards.__main__.stale_files", lambda: build.stale_files(tmp_path))
    assert main(["--check"]) == 1
    assert "run `python -m dashboards`" in capsys.readouterr().out
