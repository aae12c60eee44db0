-- The Postgres metrics sink, part 2: time-partitioned tables, their indexes, row-level security, and the
-- partition maintenance (one partition per UTC day, made ahead of time, dropped after the retention).
--
-- Every table has a natural key so that a retried or replayed batch never doubles a row. On a partitioned table
-- a unique key must contain the partition column, so each key ends with the timestamp.
-- Indexes per partition (declared on the parent, they cascade): BRIN on the time column for wide scans (tiny and
-- nearly free on append-only data), B-trees for the lookups the read functions and dashboards make.

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
    -- Natural key; trace_id first so it also serves "all spans of a trace".
    CONSTRAINT spans_key UNIQUE (trace_id, span_id, start_ts)
) PARTITION BY RANGE (start_ts);

CREATE INDEX spans_name_start ON monitoring.spans (name, start_ts DESC);
CREATE INDEX spans_start_brin ON monitoring.spans USING brin (start_ts);
-- Slow lookups: the slowest storage spans of a window. Partial, so it only holds storage spans.
CREATE INDEX spans_storage_duration ON monitoring.spans (duration_ms DESC) WHERE db_system IS NOT NULL;

-- Row-level security, forced so that even the owner goes through a policy. Grants decide whether a role may touch
-- a table at all (0103); these policies say which rows, and deny everything to any role not named here (for
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

-- Partitions. Named <table>_pYYYYMMDD, covering one UTC day. Internal: no role but the owner may call these
-- two helpers; monitoring.maintain() (0102) is what the sink calls.
CREATE FUNCTION monitoring._ensure_partitions(p_table text, p_from date, p_to date)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    d       date;
    v_name  text;
    created integer := 0;
BEGIN
    IF p_table NOT IN ('metric_points', 'events', 'spans') THEN
        RAISE EXCEPTION 'monitoring._ensure_partitions: unknown table %', p_table USING ERRCODE = '22023';
    END IF;
    d := p_from;
    WHILE d <= p_to LOOP
        v_name := p_table || '_p' || to_char(d, 'YYYYMMDD');
        IF to_regclass('monitoring.' || quote_ident(v_name)) IS NULL THEN
            BEGIN
                -- timezone is UTC inside this function, so date::timestamptz is midnight UTC.
                EXECUTE format(
                    'CREATE TABLE monitoring.%I PARTITION OF monitoring.%I FOR VALUES FROM (%L) TO (%L)',
                    v_name, p_table, d::timestamptz, (d + 1)::timestamptz
                );
                created := created + 1;
            EXCEPTION WHEN duplicate_table OR unique_violation THEN
                NULL;  -- a concurrent writer made it first
            END;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END
$$;

CREATE FUNCTION monitoring._drop_partitions_before(p_table text, p_before date)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    part    record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname
          FROM pg_catalog.pg_inherits i
          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = ('monitoring.' || quote_ident(p_table))::regclass
           AND c.relname ~ ('^' || p_table || '_p[0-9]{8}$')
           AND to_date(right(c.relname, 8), 'YYYYMMDD') < p_before
    LOOP
        -- DROP, not DELETE: instant, and leaves no dead rows for VACUUM.
        EXECUTE format('DROP TABLE monitoring.%I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;

RESET ROLE;
