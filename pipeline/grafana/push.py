"""Publish Sieve's folder, data sources and dashboards into a running Grafana through its HTTP API.

``Publisher`` takes any object shaped like ``grafana_client.GrafanaApi`` (``.folder``, ``.datasource``,
``.dashboard``), so tests hand it a recording fake and ``sieve dashboards push`` hands it the real client.
Everything is addressed by fixed uid, so a second push updates in place:

1. the folder ``sieve`` (created when ``GET /folders/sieve`` is 404, retitled when its title drifted);
2. the data sources ``sieve-prometheus``, ``sieve-postgres`` (and ``sieve-jaeger`` when asked), created or
   updated by uid, then asked for their server-side health (a failing check is reported, not fatal: Grafana may
   not reach Prometheus yet);
3. every committed dashboard with ``overwrite: true`` and an explicit ``folderUid`` (the API moves a dashboard to
   the General folder when an update omits it).

Alert rules are not pushed: they are Prometheus-format rules that Prometheus loads (``rule_files``) and Grafana
shows through the Prometheus data source as data-source-managed rules (``manageAlerts``). Copying them into
Grafana-managed rules would give two evaluators of one rule and a copy promtool cannot test.

Errors::

    PushError                  anything that stops a push; .status is the HTTP status when there was one
     ├── GrafanaUnreachable    connection refused, DNS, TLS, timeout
     ├── GrafanaAuthError      401 (no or bad credentials) and 403 (the token's role is too low)
     └── GrafanaRequestError   any other refusal, naming the call that failed
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from pipeline.grafana import resources
from pipeline.grafana.datasources import DataSourceSettings, datasource_payloads


class PushError(Exception):
    """A push could not be completed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GrafanaUnreachable(PushError):
    """No HTTP answer from Grafana."""


class GrafanaAuthError(PushError):
    """Grafana refused the credentials (401) or the permission (403)."""


class GrafanaRequestError(PushError):
    """Grafana answered a call with an error other than 401/403."""


class FolderApi(Protocol):
    """What the publisher needs of ``GrafanaApi.folder``."""

    def get_folder(self, uid: str) -> Any: ...
    def create_folder(self, title: str, uid: str | None = None, parent_uid: str | None = None) -> Any: ...
    def update_folder(
        self, uid: str, title: str | None = None, version: int | None = None, overwrite: bool = False
    ) -> Any: ...


class DatasourceApi(Protocol):
    """What the publisher needs of ``GrafanaApi.datasource``."""

    def get_datasource_by_uid(self, datasource_uid: str) -> Any: ...
    def create_datasource(self, datasource: dict[str, Any]) -> Any: ...
    def update_datasource_by_uid(self, datasource_uid: str, datasource: dict[str, Any]) -> Any: ...
    def health(self, datasource_uid: str) -> Any: ...


class DashboardApi(Protocol):
    """What the publisher needs of ``GrafanaApi.dashboard``."""

    def update_dashboard(self, dashboard: dict[str, Any]) -> Any: ...


class GrafanaLike(Protocol):
    """The part of ``grafana_client.GrafanaApi`` a push uses."""

    @property
    def folder(self) -> FolderApi: ...
    @property
    def datasource(self) -> DatasourceApi: ...
    @property
    def dashboard(self) -> DashboardApi: ...


@dataclass
class PushReport:
    """What a push did: one line per object, and warnings that did not stop it."""

    actions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one API call, turning the client's and the network's exceptions into ``PushError``s."""
    try:
        return fn(*args, **kwargs)
    except GrafanaUnauthorizedError as exc:
        raise GrafanaAuthError(
            f"401 Unauthorized while {what}: set GRAFANA_TOKEN to a service account token "
            "(or put user:password in the URL)",
            401,
        ) from exc
    except GrafanaTimeoutError as exc:
        raise GrafanaUnreachable(f"timed out while {what}: {exc.message}") from exc
    except GrafanaClientError as exc:
        if exc.status_code == 403:
            raise GrafanaAuthError(
                f"403 Forbidden while {what}: the token's role cannot do this (data sources need Admin, "
                "folders and dashboards Editor)",
                403,
            ) from exc
        raise GrafanaRequestError(f"HTTP {exc.status_code} while {what}: {exc.message}", exc.status_code) from exc
    except GrafanaException as exc:
        if not exc.status_code:  # the client wraps transport errors as status 0
            raise GrafanaUnreachable(f"no answer while {what}: {exc.message}") from exc
        raise GrafanaRequestError(f"HTTP {exc.status_code} while {what}: {exc.message}", exc.status_code) from exc
    except OSError as exc:  # niquests' ConnectionError and friends are OSErrors
        raise GrafanaUnreachable(f"cannot reach Grafana while {what}: {exc}") from exc


def _missing(what: str, fn: Callable[..., Any], *args: Any) -> Any | None:
    """``fn(*args)``, or ``None`` when Grafana answers 404."""
    try:
        return _call(what, fn, *args)
    except GrafanaRequestError as exc:
        if exc.status == 404:
            return None
        raise


def dashboard_payload(model: dict[str, Any], message: str) -> dict[str, Any]:
    """The body of ``POST /api/dashboards/db``: by uid, overwriting, in Sieve's folder."""
    dashboard = {k: v for k, v in model.items() if k != "id"}  # the id is per-instance; the uid identifies it
    return {"dashboard": dashboard, "folderUid": resources.FOLDER_UID, "overwrite": True, "message": message}


class Publisher:
    """Pushes folder, data sources and dashboards; every step idempotent by uid."""

    def __init__(self, api: GrafanaLike, message: str = "sieve dashboards push") -> None:
        self._api = api
        self._message = message

    def push(self, dashboards: Sequence[resources.DashboardFile], datasources: DataSourceSettings | None) -> PushReport:
        """Folder first (dashboards name it), then data sources (dashboards reference them), then dashboards."""
        report = PushReport()
        self.ensure_folder(report)
        if datasources is not None:
            for payload in datasource_payloads(datasources):
                self.upsert_datasource(payload, report)
        for board in dashboards:
            _call(f"saving dashboard {board.uid}", self._api.dashboard.update_dashboard, self._payload(board))
            report.actions.append(f"dashboard {board.uid} ({board.title}) saved in folder {resources.FOLDER_UID}")
        return report

    def _payload(self, board: resources.DashboardFile) -> dict[str, Any]:
        return dashboard_payload(board.model, self._message)

    def ensure_folder(self, report: PushReport) -> None:
        uid, title = resources.FOLDER_UID, resources.FOLDER_TITLE
        existing = _missing(f"reading folder {uid}", self._api.folder.get_folder, uid)
        if existing is None:
            _call(f"creating folder {uid}", self._api.folder.create_folder, title, uid=uid)
            report.actions.append(f"folder {uid} created")
        elif existing.get("title") != title:
            _call(f"renaming folder {uid}", self._api.folder.update_folder, uid, title=title, overwrite=True)
            report.actions.append(f"folder {uid} renamed to {title!r}")
        else:
            report.actions.append(f"folder {uid} present")

    def upsert_datasource(self, payload: dict[str, Any], report: PushReport) -> None:
        uid = str(payload["uid"])
        existing = _missing(f"reading data source {uid}", self._api.datasource.get_datasource_by_uid, uid)
        if existing is None:
            _call(f"creating data source {uid}", self._api.datasource.create_datasource, payload)
            report.actions.append(f"data source {uid} created ({payload['url']})")
        else:
            _call(f"updating data source {uid}", self._api.datasource.update_datasource_by_uid, uid, payload)
            report.actions.append(f"data source {uid} updated ({payload['url']})")
        try:
            health = _call(f"checking data source {uid}", self._api.datasource.health, uid)
        except (GrafanaRequestError, GrafanaUnreachable) as exc:
            report.warnings.append(f"data source {uid}: health check failed: {exc}")
            return
        status = health.get("status") if isinstance(health, dict) else None
        if status != "OK":
            message = health.get("message") if isinstance(health, dict) else health
            report.warnings.append(f"data source {uid}: health {status}: {message}")
