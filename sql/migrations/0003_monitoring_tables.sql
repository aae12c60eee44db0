-- The Postgres metrics sink, part 2: time-partitioned tables, their constraints and indexes, row-level security,
-- the element types of the insert functions' batches, and the old API's view.
--
-- Every table has a natural key so that a retried or replayed batch never doubles a row. On a partitioned table
-- a unique key must contain the partition column, so each key ends with the timestamp.
-- CHECK constraints state what a row must be; the insert functions rely on them on their fast path and only
-- run their own validation (sql/functions/20_batch_checks.sql, same rules, precise messages) after a failure.
-- Indexes per partition (declared on the parent, they cascade): BRIN on the time column for wide scans (tiny and
-- nearly free on append-only data), B-trees for the lookups the read functions and dashboards make.
-- Partitions (one per UTC day, made ahead, dropped after the retention) are made by monitoring.maintain()
-- (sql/functions/10_partitions.sql).

SET LOCAL ROLE sieve_owner;

-- Metric points as the OpenTelemetry SDK exports them: one row per data point.
CREATE TABLE monitoring.metric_points (
    ts            timestamptz NOT NULL,           -- the point's time (time_unix_nano)
    start_ts      timestamptz,                    -- start of the aggregation window (cumulative: process start)
    name          text NOT NULL,
    kind          text NOT NULL
        CHECK (kind IN ('counter', 'updowncounter', 'gauge', 'histogram', 'exponential_histogram')),
    unit          text NOT NULL DEFAULT '',
    temporality   text CHECK (temporality IN ('cumulative', 'delta')),
    service       text NOT NULL DEFAULT '',       -- resource service.name
    instance      text NOT NULL DEFAULT '',       -- resource service.instance.id
    scope         text NOT NULL DEFAULT '',       -- instrumentation scope (meter) name
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb,
    value         double precision,               -- counters, up/down counters and gauges
    count         bigint,                         -- histograms
    sum           double precision,
    min           double precision,
    max           double precision,
    bucket_bounds double precision[],             -- explicit upper bounds; bucket_counts has one more element
    bucket_counts bigint[],
    exponential   jsonb,                          -- scale, zero_count and the offset buckets of an exponential histogram
    CONSTRAINT metric_points_value CHECK (kind NOT IN ('counter', 'updowncounter', 'gauge') OR value IS NOT NULL),
    CONSTRAINT metric_points_count CHECK (kind NOT IN ('histogram', 'exponential_histogram') OR count IS NOT NULL),
    CONSTRAINT metric_points_buckets CHECK (
        bucket_counts IS NULL OR cardinality(bucket_counts) = coalesce(cardinality(bucket_bounds), 0) + 1
    ),
    -- Identifies the time series: jsonb's text form is canonical (keys sorted, duplicates removed), so equal
    -- attribute sets hash alike whatever order the client sent them in.
    series        text NOT NULL GENERATED ALWAYS AS (
        md5(service || '|' || instance || '|' || attributes::text)
    ) STORED,
    received_at   timestamptz NOT NULL DEFAULT now(),
    -- Natural key; (name, ts) first so it also serves "points of metric X over a window".
    CONSTRAINT metric_points_key UNIQUE (name, ts, series)
) PARTITION BY RANGE (ts);

CREATE INDEX metric_points_ts_brin ON monitoring.metric_points USING brin (ts);

-- Application events, the old monitoring.metrics_raw shape (a type and a JSON payload) plus a natural key.
CREATE SEQUENCE monitoring.events_id_seq;
CREATE TABLE monitoring.events (
    id          bigint NOT NULL DEFAULT nextval('monitoring.events_id_seq'),  -- what the old API returned
    event_id    uuid NOT NULL,                   -- chosen by the writer when the event is recorded
    ts          timestamptz NOT NULL,
    type        text NOT NULL,
    data        jsonb NOT NULL,
    source      text NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_type CHECK (type <> ''),
    CONSTRAINT events_key UNIQUE (event_id, ts)
) PARTITION BY RANGE (ts);
ALTER SEQUENCE monitoring.events_id_seq OWNED BY monitoring.events.id;

CREATE INDEX events_type_ts ON monitoring.events (type, ts DESC);  -- get_recent_metrics: newest N of a type
CREATE INDEX events_ts_brin ON monitoring.events USING brin (ts);

-- Kept spans (after tail sampling), with the rate and reason the sampler stamped on them.
CREATE TABLE monitoring.spans (
    start_ts             timestamptz NOT NULL,
    trace_id             text NOT NULL,           -- 32 lower-case hex digits
    span_id              text NOT NULL,           -- 16 lower-case hex digits
    parent_span_id       text,
    name                 text NOT NULL,
    kind                 text NOT NULL CHECK (kind IN ('internal', 'server', 'client', 'producer', 'consumer')),
    status_code          text NOT NULL DEFAULT 'unset' CHECK (status_code IN ('unset', 'ok', 'error')),
    status_message       text,
    duration_ms          double precision NOT NULL,
    service              text NOT NULL DEFAULT '',
    attributes           jsonb NOT NULL DEFAULT '{}'::jsonb,
    sampling_probability double precision,        -- sieve.sampling.probability
    adjusted_count       double precision,        -- sieve.sampling.adjusted_count (1 / probability)
    sampling_reason      text,                    -- sieve.sampling.reason
    explain_plan         jsonb,                   -- EXPLAIN (FORMAT JSON) of a slow statement, captured off the hot path
    db_system            text GENERATED ALWAYS AS (
        coalesce(attributes ->> 'db.system.name', attributes ->> 'db.system')
    ) STORED,
    received_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT spans_ids CHECK (
        trace_id ~ '^[0-9a-f]{32}$' AND span_id ~ '^[0-9a-f]{16}$' AND parent_span_id ~ '^[0-9a-f]{16}$'
    ),
    CONSTRAINT spans_duration CHECK (duration_ms >= 0),
    -- Natural key; trace_id first so it also serves "all spans of a trace".
    CONSTRAINT spans_key UNIQUE (trace_id, span_id, start_ts)
) PARTITION BY RANGE (start_ts);

CREATE INDEX spans_name_start ON monitoring.spans (name, start_ts DESC);
CREATE INDEX spans_start_brin ON monitoring.spans USING brin (start_ts);
-- Storage spans by duration (monitoring.get_slow_lookup_groups reads storage spans only). Partial, so it only
-- holds storage spans.
CREATE INDEX spans_storage_duration ON monitoring.spans (duration_ms DESC) WHERE db_system IS NOT NULL;

-- Row-level security, forced so that even the owner goes through a policy. Grants decide whether a role may touch
-- a table at all (0004); these policies say which rows, and deny everything to any role not named here (for
-- example a platform's automatic grants to anon/authenticated).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['metric_points', 'events', 'spans', 'config'] LOOP
        EXECUTE format('ALTER TABLE monitoring.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE monitoring.%I FORCE ROW LEVEL SECURITY', t);
        -- The owner is the identity of the SECURITY DEFINER insert and maintenance functions.
        EXECUTE format('CREATE POLICY owner_all ON monitoring.%I FOR ALL TO sieve_owner USING (true) WITH CHECK (true)', t);
        EXECUTE format('CREATE POLICY reader_select ON monitoring.%I FOR SELECT TO sieve_reader USING (true)', t);
    END LOOP;
END
$$;

-- Element shapes of the insert functions' batch arrays: the keys of a JSON element are these attribute names.
-- A column added to a table later is added to its type by the same migration (ALTER TYPE ... ADD ATTRIBUTE).
CREATE TYPE monitoring.point_in AS (
    ts timestamptz, start_ts timestamptz, name text, kind text, unit text, temporality text,
    service text, instance text, scope text, attributes jsonb,
    value double precision, count bigint, sum double precision, min double precision, max double precision,
    bucket_bounds double precision[], bucket_counts bigint[], exponential jsonb
);
CREATE TYPE monitoring.event_in AS (id uuid, ts timestamptz, type text, data jsonb, source text);
CREATE TYPE monitoring.span_in AS (
    start_ts timestamptz, trace_id text, span_id text, parent_span_id text, name text, kind text,
    status_code text, status_message text, duration_ms double precision, service text, attributes jsonb,
    sampling_probability double precision, adjusted_count double precision, sampling_reason text,
    explain_plan jsonb
);

-- The old table's shape over the events table, for queries written against monitoring.metrics_raw.
-- security_invoker: the view reads with the caller's rights (and row-level security), not its owner's.
CREATE VIEW monitoring.metrics_raw WITH (security_invoker = true) AS
    SELECT e.id, e.type, e.data, e.ts AS "timestamp", e.received_at AS created_at FROM monitoring.events AS e;

RESET ROLE;
