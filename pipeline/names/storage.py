"""Storage metric names and attribute keys (``collectors/storage.py``).

Names follow the stable database semantic conventions (``docs/db/database-metrics.md``) where they exist.
The ``sieve.db.*`` span attributes split an operation's time the way the old system could not: waiting for a
pooled connection, establishing one, and executing.
"""

from __future__ import annotations

from pipeline.names import Kind, MetricSpec

# Attribute keys.
DB_SYSTEM = "db.system.name"
DB_OPERATION = "db.operation.name"
DB_NAMESPACE = "db.namespace"
POOL_NAME = "db.client.connection.pool.name"
CONNECTION_STATE = "db.client.connection.state"  # "idle" | "used"
ERROR_TYPE = "error.type"
DRIVER = "sieve.db.driver"  # "asyncpg" | "psycopg"
POOL_WAIT_S = "sieve.db.pool_wait_s"
CONNECT_S = "sieve.db.connect_s"
EXECUTE_S = "sieve.db.execute_s"
ROWS = "db.response.returned_rows"

OPERATION_DURATION = MetricSpec(
    "db.client.operation.duration",
    Kind.HISTOGRAM,
    "s",
    "Repository operation duration (pool wait + connect + execution)",
    (DB_SYSTEM, DB_OPERATION, DRIVER, ERROR_TYPE),
)
CONNECTION_WAIT = MetricSpec(
    "db.client.connection.wait_time",
    Kind.HISTOGRAM,
    "s",
    "Time waiting for a pooled connection (includes creating one when the pool has none idle)",
    (POOL_NAME,),
)
CONNECTION_CREATE = MetricSpec(
    "db.client.connection.create_time",
    Kind.HISTOGRAM,
    "s",
    "Time to establish a new connection",
    (POOL_NAME,),
)
CONNECTION_USE = MetricSpec(
    "db.client.connection.use_time",
    Kind.HISTOGRAM,
    "s",
    "Time a connection was held between acquire and release",
    (POOL_NAME,),
)
CONNECTION_COUNT = MetricSpec(
    "db.client.connection.count",
    Kind.GAUGE,
    "{connection}",
    "Pooled connections by state",
    (POOL_NAME, CONNECTION_STATE),
)

METRICS: tuple[MetricSpec, ...] = (
    OPERATION_DURATION,
    CONNECTION_WAIT,
    CONNECTION_CREATE,
    CONNECTION_USE,
    CONNECTION_COUNT,
)
