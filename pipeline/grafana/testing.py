"""An in-memory, recording stand-in for ``grafana_client.GrafanaApi``, shipped for tests of code that pushes.

It keeps folders, data sources and dashboards by uid the way Grafana does (404 for what is missing, 409 for a
duplicate uid or data source name, ``overwrite`` required to replace a dashboard), records every call in order,
and raises the client's own exception types, so the code under test sees what it would see over HTTP.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from grafana_client.client import GrafanaClientError


@dataclass(frozen=True)
class Call:
    """One recorded API call: ``"folder.create_folder"`` and its arguments."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def _error(status: int, message: str) -> GrafanaClientError:
    return GrafanaClientError(status, {"message": message}, f"Client Error {status}: {message}")


class _Part:
    def __init__(self, owner: RecordingGrafana, name: str) -> None:
        self._owner = owner
        self._name = name

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._owner.calls.append(Call(f"{self._name}.{method}", args, copy.deepcopy(kwargs)))
        failure = self._owner.fail_on.get(f"{self._name}.{method}")
        if failure is not None:
            raise failure


class _Folders(_Part):
    def get_folder(self, uid: str) -> dict[str, Any]:
        self._record("get_folder", uid)
        if uid not in self._owner.folders:
            raise _error(404, "folder not found")
        return copy.deepcopy(self._owner.folders[uid])

    def create_folder(self, title: str, uid: str | None = None, parent_uid: str | None = None) -> dict[str, Any]:
        self._record("create_folder", title, uid=uid, parent_uid=parent_uid)
        if uid is None or uid in self._owner.folders:
            raise _error(409, "a folder with the same uid already exists")
        self._owner.folders[uid] = {"uid": uid, "title": title, "version": 1}
        return copy.deepcopy(self._owner.folders[uid])

    def update_folder(
        self, uid: str, title: str | None = None, version: int | None = None, overwrite: bool = False
    ) -> dict[str, Any]:
        self._record("update_folder", uid, title=title, version=version, overwrite=overwrite)
        folder = self._owner.folders.get(uid)
        if folder is None:
            raise _error(404, "folder not found")
        folder.update(title=title or folder["title"], version=folder["version"] + 1)
        return copy.deepcopy(folder)


class _Datasources(_Part):
    def get_datasource_by_uid(self, datasource_uid: str) -> dict[str, Any]:
        self._record("get_datasource_by_uid", datasource_uid)
        if datasource_uid not in self._owner.datasources:
            raise _error(404, "data source not found")
        return copy.deepcopy(self._owner.datasources[datasource_uid])

    def create_datasource(self, datasource: dict[str, Any]) -> dict[str, Any]:
        self._record("create_datasource", copy.deepcopy(datasource))
        uid, name = datasource.get("uid"), datasource.get("name")
        if uid in self._owner.datasources or any(d["name"] == name for d in self._owner.datasources.values()):
            raise _error(409, "data source with the same uid or name already exists")
        self._owner.datasources[str(uid)] = copy.deepcopy(datasource)
        return {"datasource": copy.deepcopy(datasource), "message": "Datasource added"}

    def update_datasource_by_uid(self, datasource_uid: str, datasource: dict[str, Any]) -> dict[str, Any]:
        self._record("update_datasource_by_uid", datasource_uid, copy.deepcopy(datasource))
        if datasource_uid not in self._owner.datasources:
            raise _error(404, "data source not found")
        self._owner.datasources[datasource_uid] = copy.deepcopy(datasource)
        return {"datasource": copy.deepcopy(datasource), "message": "Datasource updated"}

    def health(self, datasource_uid: str) -> dict[str, Any]:
        self._record("health", datasource_uid)
        return copy.deepcopy(self._owner.health.get(datasource_uid, {"status": "OK", "message": "ok"}))


class _Dashboards(_Part):
    def update_dashboard(self, dashboard: dict[str, Any]) -> dict[str, Any]:
        self._record("update_dashboard", copy.deepcopy(dashboard))
        model = dashboard["dashboard"]
        uid = model.get("uid")
        folder_uid = dashboard.get("folderUid")
        if folder_uid is not None and folder_uid not in self._owner.folders:
            raise _error(400, "folder not found")
        previous = self._owner.dashboards.get(uid)
        if previous is not None and not dashboard.get("overwrite"):
            raise _error(412, "a dashboard with the same uid already exists")
        version = (previous["version"] + 1) if previous else 1
        # Like Grafana: no folderUid means the General folder, even for a dashboard that was in another one.
        self._owner.dashboards[uid] = {"model": copy.deepcopy(model), "folderUid": folder_uid, "version": version}
        return {"status": "success", "uid": uid, "version": version}


class RecordingGrafana:
    """``GrafanaApi``-shaped fake: ``.folder``, ``.datasource``, ``.dashboard``; ``calls`` in order.

    ``fail_on["dashboard.update_dashboard"] = SomeGrafanaException(...)`` makes that method raise after recording;
    ``health[uid] = {"status": "ERROR", "message": ...}`` changes a data source's health answer.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.fail_on: dict[str, Exception] = {}
        self.health: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.folder = _Folders(self, "folder")
        self.datasource = _Datasources(self, "datasource")
        self.dashboard = _Dashboards(self, "dashboard")

    def methods(self) -> list[str]:
        """The recorded calls' method names, in order."""
        return [c.method for c in self.calls]
