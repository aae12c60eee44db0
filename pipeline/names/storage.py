"""Storage metric names and attribute keys (``collectors/storage.py``).

Names follow the stable database semantic conventions (``docs/db/database-metrics.md``) where they exist.
The ``sieve.db.*`` span attributes split an operation's time the way the old system could not: waiting for a
pooled connection, establishing one, and executing.
"""

from __future__ import annotations

from pipeline.names.spec import DURATION_BUCKETS_S, Kind, MetricSpec

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
# Statement identity: the pg_query fingerprint ignores literals, parameters, comments and IN-list
# lengths, so every call of one statement shape shares it; the normalised text has literals replaced by $n.
FINGERPRINT = "sieve.db.fingerprint"
STATEMENT = "sieve.db.statement"  # normalised text of the operation's slowest statement
QUERY_SUMMARY = "db.query.summary"  # semconv: "SELECT public.messages"
STATEMENTS = "sieve.db.statements"  # statements the operation ran
REPEATS = "sieve.db.repeats"  # the most times one statement shape ran in the operation (set when above 1)
SLOW = "sieve.db.slow"  # the operation took longer than its slow threshold (the sampler keeps its trace)
CONNECTS = "sieve.db.connects"  # connections the operation had to open
# ... re-opening a connection the pool had closed for idling (the pool was no bigger than it had been before)
IDLE_CONNECT = "sieve.db.idle_connect"
POOL_IDLE_S = "sieve.db.pool_idle_s"  # seconds since the pool last handed back a connection
POOL_MAX = "db.client.connection.max"  # the pool's max size (semconv metric name, used as an attribute here)
# EXPLAIN of a slow read, captured off the hot path on a span of its own (child of the operation's span).
PLAN = "sieve.db.plan"  # EXPLAIN (FORMAT JSON) output as a JSON string; the sink stores it in spans.explain_plan
PLAN_ANALYZED = "sieve.db.plan.analyzed"
PLAN_CACHED = "sieve.db.plan.cached"
EXPLAIN_OUTCOME = "sieve.db.explain.outcome"
# The plan's shape (node types, relations, indexes, join types; never costs or row estimates) as 16 hex digits
# (pipeline.sqlshape.plan_shape_hash), on EXPLAIN spans: slow calls are grouped by fingerprint *and* plan, so
# before and after an index are two groups. Hashed from the statement's generic plan where Postgres can make one
# (collectors/_explain.py): the same for every parameter value.
PLAN_HASH = "sieve.db.plan_hash"
PLAN_HASH_SOURCE = "sieve.db.plan_hash.source"  # "generic" (EXPLAIN GENERIC_PLAN) | "captured" (this plan's shape)
PLAN_BASELINE = "sieve.db.plan.baseline"  # true: explained although fast, to know the plan in force
# A freshly captured plan (not a cached one) asks the sampler to keep its trace through the default
# `force-sample` policy, so the plan in force reaches the sink even when the call that carried it was fast.
FORCE_SAMPLE = "sieve.force_sample"

# N+1: the same statement shape executed N or more times, one after another, under one parent span.
# The in-process detector (tail sampler, at decision time) marks a kept trace's spans with these; the slow-lookups
# report finds the same pattern in stored spans without them and says which way it was found.
N_PLUS_ONE = "sieve.db.n_plus_one"  # bool, on every span of a detected repetition (the repeated statements)
N_PLUS_ONE_COUNT = "sieve.db.n_plus_one.count"  # int, on those spans: executions under that parent in the trace
# str, on the span the loop ran under (for a loop inside one operation, that operation): the repeated statement
# shape, the one with the most executions when several loops ran under it.
N_PLUS_ONE_FINGERPRINT = "sieve.db.n_plus_one.fingerprint"
N_PLUS_ONE_POLICY = "n-plus-one"  # sieve.sampling.reason of a trace kept because of it

OPERATION_DURATION = MetricSpec(
    "db.client.operation.duration",
    Kind.HISTOGRAM,
    "s",
    "Repository operation duration (pool wait + connect + execution)",
    (DB_SYSTEM, DB_OPERATION, DRIVER, ERROR_TYPE),
    buckets=DURATION_BUCKETS_S,
)
CONNECTION_WAIT = MetricSpec(
    "db.client.connection.wait_time",
    Kind.HISTOGRAM,
    "s",
    "Time waiting for a pooled connection (includes creating one when the pool has none idle)",
    (POOL_NAME,),
    buckets=DURATION_BUCKETS_S,
)
CONNECTION_CREATE = MetricSpec(
    "db.client.connection.create_time",
    Kind.HISTOGRAM,
    "s",
    "Time to establish a new connection",
    (POOL_NAME,),
    buckets=DURATION_BUCKETS_S,
)
CONNECTION_USE = MetricSpec(
    "db.client.connection.use_time",
    Kind.HISTOGRAM,
    "s",
    "Time a connection was held between acquire and release",
    (POOL_NAME,),
    buckets=DURATION_BUCKETS_S,
)
CONNECTION_COUNT = MetricSpec(
    # Not the current semconv name db.client.connection.count: as a Prometheus gauge "_count" reads as a
    # histogram's count and promtool check metrics rejects it; this is the earlier semconv name (still what the
    # contrib SQLAlchemy instrumentation emits), with the same labels.
    "db.client.connections.usage",
    Kind.GAUGE,
    "{connection}",
    "Pooled connections by state",
    (POOL_NAME, CONNECTION_STATE),
)
EXPLAIN_REQUESTS = MetricSpec(
    "sieve.db.explain.requests",
    Kind.COUNTER,
    "{request}",
    "Plan captures asked for slow reads, by outcome (captured, cached, rate_limited, queue_full, error, skipped)",
    (EXPLAIN_OUTCOME,),
)

METRICS: tuple[MetricSpec, ...] = (
    OPERATION_DURATION,
    CONNECTION_WAIT,
    CONNECTION_CREATE,
    CONNECTION_USE,
    CONNECTION_COUNT,
    EXPLAIN_REQUESTS,
)
