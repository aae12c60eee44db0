"""The data sources Sieve's dashboards reference, as Grafana API payloads (fixed uids, names and types).

The compose stack provisions the same three from ``dashboards/provisioning/datasources/sieve.yaml``; a test keeps
the two in step. The Postgres password is only ever taken from the environment and sent in ``secureJsonData``
(Grafana stores it encrypted and never returns it); when absent, an update keeps the password Grafana has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.grafana import resources

PROMETHEUS_NAME = "Sieve Prometheus"
POSTGRES_NAME = "Sieve Postgres"
JAEGER_NAME = "Sieve Jaeger"

# Prometheus' default scrape interval: Grafana derives $__rate_interval from it (4 x this at least), so a value
# at or above the real interval keeps every rate window over two samples or more.
DEFAULT_SCRAPE_INTERVAL = "15s"


@dataclass(frozen=True)
class PostgresSettings:
    """Where Grafana (not this machine) reaches the database holding the ``monitoring`` schema."""

    host: str  # host:port as seen from the Grafana server
    database: str
    user: str
    password: str | None = None
    sslmode: str = "disable"

    def __repr__(self) -> str:  # never print the password
        return f"PostgresSettings(host={self.host!r}, database={self.database!r}, user={self.user!r})"


@dataclass(frozen=True)
class DataSourceSettings:
    """Where the data sources point: Prometheus, and optionally the sink's Postgres and a Jaeger."""

    prometheus_url: str
    postgres: PostgresSettings | None = None
    jaeger_url: str | None = None
    scrape_interval: str = DEFAULT_SCRAPE_INTERVAL


def prometheus_payload(settings: DataSourceSettings) -> dict[str, Any]:
    json_data: dict[str, Any] = {"httpMethod": "POST", "timeInterval": settings.scrape_interval}
    if settings.jaeger_url:
        # Exemplars carry a trace_id label; this turns them into links to the trace in the Jaeger data source.
        json_data["exemplarTraceIdDestinations"] = [{"name": "trace_id", "datasourceUid": resources.JAEGER_UID}]
    return {
        "uid": resources.PROMETHEUS_UID,
        "name": PROMETHEUS_NAME,
        "type": resources.PROMETHEUS_TYPE,
        "access": "proxy",
        "url": settings.prometheus_url,
        "isDefault": False,
        "jsonData": json_data,
    }


def postgres_payload(pg: PostgresSettings) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "uid": resources.POSTGRES_UID,
        "name": POSTGRES_NAME,
        "type": resources.POSTGRES_TYPE,
        "access": "proxy",
        "url": pg.host,
        "user": pg.user,
        "isDefault": False,
        "jsonData": {
            "database": pg.database,
            "sslmode": pg.sslmode,
            "postgresVersion": 1500,
            "timescaledb": False,
            "maxOpenConns": 5,
        },
    }
    if pg.password:
        payload["secureJsonData"] = {"password": pg.password}
    return payload


def jaeger_payload(url: str) -> dict[str, Any]:
    return {
        "uid": resources.JAEGER_UID,
        "name": JAEGER_NAME,
        "type": resources.JAEGER_TYPE,
        "access": "proxy",
        "url": url,
        "isDefault": False,
        "jsonData": {},
    }


def datasource_payloads(settings: DataSourceSettings) -> list[dict[str, Any]]:
    """Payloads in push order: Jaeger first, since Prometheus' exemplar links name it."""
    payloads: list[dict[str, Any]] = []
    if settings.jaeger_url:
        payloads.append(jaeger_payload(settings.jaeger_url))
    payloads.append(prometheus_payload(settings))
    if settings.postgres is not None:
        payloads.append(postgres_payload(settings.postgres))
    return payloads
