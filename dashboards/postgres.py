"""A query on Grafana's Postgres data source, which grafana-foundation-sdk 0.0.18 has no builder for.

The SDK's documented extension point: a ``Dataquery`` variant with ``to_json``/``from_json``, a builder for it,
and a ``DataqueryConfig`` registered with the cog runtime so that decoding a dashboard turns the panel's targets
back into ``SqlQuery`` objects instead of opaque dictionaries. The JSON is the shape Grafana's own SQL editor
saves in code mode: ``refId``, ``rawSql``, ``format`` (``table`` or ``time_series``), ``editorMode`` and
``rawQuery``.
"""

from __future__ import annotations

from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as common_models

from pipeline.grafana import resources

# Grafana < 10.2 called the plugin "postgres"; decode both ids to SqlQuery.
PLUGIN_IDS = (resources.POSTGRES_TYPE, "postgres")


class SqlQuery(cogvariants.Dataquery):
    """One SQL target of a panel on the Postgres data source."""

    def __init__(
        self,
        ref_id: str = "",
        raw_sql: str = "",
        format_val: str = "table",
        editor_mode: str = "code",
        datasource: common_models.DataSourceRef | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format_val = format_val
        self.editor_mode = editor_mode
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "rawSql": self.raw_sql,
            "format": self.format_val,
            "editorMode": self.editor_mode,
            "rawQuery": True,
        }
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        datasource = data.get("datasource")
        return cls(
            ref_id=str(data.get("refId", "")),
            raw_sql=str(data.get("rawSql", "")),
            format_val=str(data.get("format", "table")),
            editor_mode=str(data.get("editorMode", "code")),
            datasource=common_models.DataSourceRef.from_json(datasource) if isinstance(datasource, dict) else None,
        )


class SqlQueryBuilder(cogbuilder.Builder[SqlQuery]):
    """Chained builder in the SDK's style: ``SqlQueryBuilder().ref_id("A").raw_sql("SELECT ...")``."""

    def __init__(self) -> None:
        self._internal = SqlQuery(
            datasource=common_models.DataSourceRef(type_val=resources.POSTGRES_TYPE, uid=resources.POSTGRES_UID)
        )

    def build(self) -> SqlQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def raw_sql(self, raw_sql: str) -> Self:
        self._internal.raw_sql = raw_sql
        return self

    def format(self, format_val: str) -> Self:
        if format_val not in ("table", "time_series"):
            raise ValueError(f"SQL query format {format_val!r}: expected 'table' or 'time_series'")
        self._internal.format_val = format_val
        return self


def register() -> None:
    """Register ``SqlQuery`` with the cog runtime (idempotent), so decoded dashboards carry typed SQL targets."""
    for plugin_id in PLUGIN_IDS:
        cogruntime.register_dataquery_variant(
            cogruntime.DataqueryConfig(identifier=plugin_id, from_json_hook=SqlQuery.from_json)
        )
