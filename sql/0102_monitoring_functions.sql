-- The Postgres metrics sink, part 3: the RPC functions.
--
-- Writes: one call per batch. Each insert function takes ONE jsonb array (jsonb_populate_recordset: the fastest
-- non-COPY path measured from Python, and a single unnamed-looking body for PostgREST) and returns how many rows
-- it inserted; rows the table already has (a retried or replayed batch) are skipped by ON CONFLICT DO NOTHING on
-- the natural key, as are rows older than the retention. A malformed batch (not an array, too many elements, an
-- element that is not an object, a wrong type, a missing key) raises an error naming the function, the element
-- and the problem, and inserts nothing: the function body is one statement of the caller's transaction.
--   SQLSTATE 22023 (invalid_parameter_value): malformed element or batch
--   SQLSTATE 54000 (program_limit_exceeded):  more elements than monitoring.config.max_batch_rows
--
-- Security: the write functions are SECURITY DEFINER (the writer role has no table privileges), owned by
-- sieve_owner, with `SET search_path = ''` and every name schema-qualified, so a caller's search_path (a shadowing
-- temporary table, a look-alike function in a schema of theirs) cannot change what they do. Read functions are
-- SECURITY INVOKER: they run with the caller's own grants and row-level security.

SET LOCAL ROLE sieve_owner;

-- Element shapes of the batch arrays. The keys of a JSON element are these attribute names.
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

-- Checks the envelope of a batch; returns the retention cutoff and the latest acceptable timestamp.
CREATE FUNCTION monitoring._check_batch(p_fn text, p_batch jsonb, OUT cutoff timestamptz, OUT latest timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    cfg monitoring.config;
    n   integer;
BEGIN
    IF p_batch IS NULL OR pg_catalog.jsonb_typeof(p_batch) <> 'array' THEN
        RAISE EXCEPTION '%: expected a JSON array of objects, got %', p_fn, coalesce(pg_catalog.jsonb_typeof(p_batch), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    SELECT * INTO cfg FROM monitoring.config;
    n := pg_catalog.jsonb_array_length(p_batch);
    IF n > cfg.max_batch_rows THEN
        RAISE EXCEPTION '%: batch of % elements exceeds the limit of % (monitoring.config.max_batch_rows)',
            p_fn, n, cfg.max_batch_rows
            USING ERRCODE = '54000', HINT = 'split the batch';
    END IF;
    cutoff := (current_date - cfg.retention_days)::timestamptz;  -- midnight UTC, the oldest kept partition
    latest := now() + cfg.max_future;
END
$$;

-- Raises the error for element p_index (1-based) of a batch: which keys are missing or which value is wrong.
CREATE FUNCTION monitoring._reject(p_fn text, p_batch jsonb, p_index bigint, p_required text[], p_rule text)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    elem    jsonb := p_batch -> (p_index::integer - 1);
    missing text[];
BEGIN
    IF pg_catalog.jsonb_typeof(elem) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION '%: element % is not a JSON object', p_fn, p_index USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(k ORDER BY k) INTO missing
      FROM unnest(p_required) AS k
     WHERE coalesce(pg_catalog.jsonb_typeof(elem -> k), 'null') = 'null';
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '%: element % lacks required key(s) %', p_fn, p_index, array_to_string(missing, ', ')
            USING ERRCODE = '22023';
    END IF;
    RAISE EXCEPTION '%: element % is invalid: %', p_fn, p_index, p_rule USING ERRCODE = '22023';
END
$$;

-- Finds the first element whose values do not convert to the element type (the set-returning conversion only
-- says "invalid input syntax" without saying where); called on the error path only.
CREATE FUNCTION monitoring._diagnose_types(p_fn text, p_batch jsonb, p_type regtype, p_error text)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    elem jsonb;
    i    bigint;
BEGIN
    FOR elem, i IN SELECT e, n FROM pg_catalog.jsonb_array_elements(p_batch) WITH ORDINALITY AS t(e, n) LOOP
        IF pg_catalog.jsonb_typeof(elem) <> 'object' THEN
            RAISE EXCEPTION '%: element % is not a JSON object', p_fn, i USING ERRCODE = '22023';
        END IF;
        BEGIN
            EXECUTE format('SELECT pg_catalog.jsonb_populate_record(NULL::%s, $1)', p_type) USING elem;
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION '%: element % has a value of the wrong type: %', p_fn, i, SQLERRM USING ERRCODE = '22023';
        END;
    END LOOP;
    RAISE EXCEPTION '%: malformed batch: %', p_fn, p_error USING ERRCODE = '22023';
END
$$;

-- Creates the partitions the days of [p_min, p_max] need (normally none: maintain() makes them ahead).
CREATE FUNCTION monitoring._partitions_for(p_table text, p_min timestamptz, p_max timestamptz, p_cutoff timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
SET timezone = 'UTC'
AS $$
BEGIN
    IF p_max IS NULL OR p_max < p_cutoff THEN
        RETURN;
    END IF;
    PERFORM monitoring._ensure_partitions(p_table, greatest(p_min, p_cutoff)::date, p_max::date);
END
$$;

CREATE FUNCTION monitoring.insert_points(p_points jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    fn       constant text := 'monitoring.insert_points';
    lim      record;
    v_min    timestamptz;
    v_max    timestamptz;
    v_bad    bigint;
    why      text;
    inserted integer;
BEGIN
    SELECT * INTO lim FROM monitoring._check_batch(fn, p_points);
    BEGIN
        SELECT min(r.ts), max(r.ts),
               min(r.ordinality) FILTER (WHERE r.ts IS NULL OR r.name IS NULL OR r.kind IS NULL
                   OR r.kind NOT IN ('counter', 'updowncounter', 'gauge', 'histogram', 'exponential_histogram')
                   OR (r.kind IN ('counter', 'updowncounter', 'gauge') AND r.value IS NULL)
                   OR (r.kind IN ('histogram', 'exponential_histogram') AND r.count IS NULL)
                   OR (r.bucket_counts IS NOT NULL
                       AND cardinality(r.bucket_counts) <> coalesce(cardinality(r.bucket_bounds), 0) + 1)
                   OR (r.temporality IS NOT NULL AND r.temporality NOT IN ('cumulative', 'delta'))
                   OR r.ts > lim.latest)
          INTO v_min, v_max, v_bad
          FROM ROWS FROM (pg_catalog.jsonb_populate_recordset(NULL::monitoring.point_in, p_points))
               WITH ORDINALITY AS r;
    EXCEPTION WHEN data_exception THEN
        PERFORM monitoring._diagnose_types(fn, p_points, 'monitoring.point_in'::regtype, SQLERRM);
    END;
    IF v_bad IS NOT NULL THEN
        SELECT CASE
                   WHEN r.kind NOT IN ('counter', 'updowncounter', 'gauge', 'histogram', 'exponential_histogram')
                       THEN format('kind %L is not counter, updowncounter, gauge, histogram or exponential_histogram', r.kind)
                   WHEN r.kind IN ('counter', 'updowncounter', 'gauge') AND r.value IS NULL
                       THEN format('a %s needs "value"', r.kind)
                   WHEN r.kind IN ('histogram', 'exponential_histogram') AND r.count IS NULL
                       THEN format('a %s needs "count"', r.kind)
                   WHEN r.temporality NOT IN ('cumulative', 'delta')
                       THEN format('temporality %L is not cumulative or delta', r.temporality)
                   WHEN r.ts > lim.latest
                       THEN format('ts %s is more than %s ahead of the server clock', r.ts, lim.latest - now())
                   ELSE 'bucket_counts must have one element more than bucket_bounds'
               END
          INTO why
          FROM pg_catalog.jsonb_populate_record(NULL::monitoring.point_in, p_points -> (v_bad::integer - 1)) AS r;
        PERFORM monitoring._reject(fn, p_points, v_bad, ARRAY['ts', 'name', 'kind'], why);
    END IF;
    PERFORM monitoring._partitions_for('metric_points', v_min, v_max, lim.cutoff);

    INSERT INTO monitoring.metric_points (ts, start_ts, name, kind, unit, temporality, service, instance, scope,
                                          attributes, value, count, sum, min, max, bucket_bounds, bucket_counts,
                                          exponential)
    SELECT r.ts, r.start_ts, r.name, r.kind, coalesce(r.unit, ''), r.temporality, coalesce(r.service, ''),
           coalesce(r.instance, ''), coalesce(r.scope, ''), coalesce(r.attributes, '{}'::jsonb),
           r.value, r.count, r.sum, r.min, r.max, r.bucket_bounds, r.bucket_counts, r.exponential
      FROM pg_catalog.jsonb_populate_recordset(NULL::monitoring.point_in, p_points) AS r
     WHERE r.ts >= lim.cutoff
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END
$$;

CREATE FUNCTION monitoring.insert_events(p_events jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    fn       constant text := 'monitoring.insert_events';
    lim      record;
    v_min    timestamptz;
    v_max    timestamptz;
    v_bad    bigint;
    why      text;
    inserted integer;
BEGIN
    SELECT * INTO lim FROM monitoring._check_batch(fn, p_events);
    BEGIN
        SELECT min(r.ts), max(r.ts),
               min(r.ordinality) FILTER (WHERE r.id IS NULL OR r.ts IS NULL OR r.type IS NULL OR r.type = ''
                   OR r.data IS NULL OR r.ts > lim.latest)
          INTO v_min, v_max, v_bad
          FROM ROWS FROM (pg_catalog.jsonb_populate_recordset(NULL::monitoring.event_in, p_events))
               WITH ORDINALITY AS r;
    EXCEPTION WHEN data_exception THEN
        PERFORM monitoring._diagnose_types(fn, p_events, 'monitoring.event_in'::regtype, SQLERRM);
    END;
    IF v_bad IS NOT NULL THEN
        SELECT CASE
                   WHEN r.type = '' THEN 'type is empty'
                   ELSE format('ts %s is more than %s ahead of the server clock', r.ts, lim.latest - now())
               END
          INTO why
          FROM pg_catalog.jsonb_populate_record(NULL::monitoring.event_in, p_events -> (v_bad::integer - 1)) AS r;
        PERFORM monitoring._reject(fn, p_events, v_bad, ARRAY['id', 'ts', 'type', 'data'], why);
    END IF;
    PERFORM monitoring._partitions_for('events', v_min, v_max, lim.cutoff);

    INSERT INTO monitoring.events (event_id, ts, type, data, source)
    SELECT r.id, r.ts, r.type, r.data, coalesce(r.source, '')
      FROM pg_catalog.jsonb_populate_recordset(NULL::monitoring.event_in, p_events) AS r
     WHERE r.ts >= lim.cutoff
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END
$$;

CREATE FUNCTION monitoring.insert_spans(p_spans jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    fn       constant text := 'monitoring.insert_spans';
    lim      record;
    v_min    timestamptz;
    v_max    timestamptz;
    v_bad    bigint;
    why      text;
    inserted integer;
BEGIN
    SELECT * INTO lim FROM monitoring._check_batch(fn, p_spans);
    BEGIN
        SELECT min(r.start_ts), max(r.start_ts),
               min(r.ordinality) FILTER (WHERE r.start_ts IS NULL OR r.trace_id IS NULL OR r.span_id IS NULL
                   OR r.name IS NULL OR r.kind IS NULL OR r.duration_ms IS NULL
                   OR r.trace_id !~ '^[0-9a-f]{32}$' OR r.span_id !~ '^[0-9a-f]{16}$'
                   OR r.parent_span_id !~ '^[0-9a-f]{16}$'
                   OR r.kind NOT IN ('internal', 'server', 'client', 'producer', 'consumer')
                   OR coalesce(r.status_code, 'unset') NOT IN ('unset', 'ok', 'error')
                   OR r.duration_ms < 0 OR r.start_ts > lim.latest)
          INTO v_min, v_max, v_bad
          FROM ROWS FROM (pg_catalog.jsonb_populate_recordset(NULL::monitoring.span_in, p_spans))
               WITH ORDINALITY AS r;
    EXCEPTION WHEN data_exception THEN
        PERFORM monitoring._diagnose_types(fn, p_spans, 'monitoring.span_in'::regtype, SQLERRM);
    END;
    IF v_bad IS NOT NULL THEN
        SELECT CASE
                   WHEN r.trace_id !~ '^[0-9a-f]{32}$' THEN format('trace_id %L is not 32 lower-case hex digits', r.trace_id)
                   WHEN r.span_id !~ '^[0-9a-f]{16}$' THEN format('span_id %L is not 16 lower-case hex digits', r.span_id)
                   WHEN r.parent_span_id !~ '^[0-9a-f]{16}$'
                       THEN format('parent_span_id %L is not 16 lower-case hex digits', r.parent_span_id)
                   WHEN r.kind NOT IN ('internal', 'server', 'client', 'producer', 'consumer')
                       THEN format('kind %L is not internal, server, client, producer or consumer', r.kind)
                   WHEN r.status_code NOT IN ('unset', 'ok', 'error')
                       THEN format('status_code %L is not unset, ok or error', r.status_code)
                   WHEN r.duration_ms < 0 THEN format('duration_ms %s is negative', r.duration_ms)
                   ELSE format('start_ts %s is more than %s ahead of the server clock', r.start_ts, lim.latest - now())
               END
          INTO why
          FROM pg_catalog.jsonb_populate_record(NULL::monitoring.span_in, p_spans -> (v_bad::integer - 1)) AS r;
        PERFORM monitoring._reject(fn, p_spans, v_bad,
            ARRAY['start_ts', 'trace_id', 'span_id', 'name', 'kind', 'duration_ms'], why);
    END IF;
    PERFORM monitoring._partitions_for('spans', v_min, v_max, lim.cutoff);

    INSERT INTO monitoring.spans (start_ts, trace_id, span_id, parent_span_id, name, kind, status_code,
                                  status_message, duration_ms, service, attributes, sampling_probability,
                                  adjusted_count, sampling_reason, explain_plan)
    SELECT r.start_ts, r.trace_id, r.span_id, r.parent_span_id, r.name, r.kind, coalesce(r.status_code, 'unset'),
           r.status_message, r.duration_ms, coalesce(r.service, ''), coalesce(r.attributes, '{}'::jsonb),
           r.sampling_probability, r.adjusted_count, r.sampling_reason, r.explain_plan
      FROM pg_catalog.jsonb_populate_recordset(NULL::monitoring.span_in, p_spans) AS r
     WHERE r.start_ts >= lim.cutoff
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END
$$;

-- The old single-row write, kept for compatibility (old-system.md §2.4): inserts (p_type, p_data, now()) into the
-- events table and returns the row's id. One call per row; it has no natural key, so a retried call doubles a row.
CREATE FUNCTION monitoring.insert_metric(p_type text, p_data jsonb)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_type IS NULL OR p_type = '' OR p_data IS NULL THEN
        RAISE EXCEPTION 'monitoring.insert_metric: p_type and p_data are required' USING ERRCODE = '22023';
    END IF;
    PERFORM monitoring._ensure_partitions('events', current_date, current_date);
    INSERT INTO monitoring.events (event_id, ts, type, data)
    VALUES (pg_catalog.gen_random_uuid(), now(), p_type, p_data)
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;

-- Partition maintenance, called by the sink at start and then periodically (or by pg_cron): makes the partitions
-- of today and the next p_days_ahead days, records the retention, and drops partitions older than it.
CREATE FUNCTION monitoring.maintain(p_retention_days integer, p_days_ahead integer DEFAULT 2)
RETURNS TABLE (created integer, dropped integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    t text;
BEGIN
    IF p_retention_days IS NULL OR p_retention_days NOT BETWEEN 1 AND 3650 THEN
        RAISE EXCEPTION 'monitoring.maintain: p_retention_days must be between 1 and 3650, got %', p_retention_days
            USING ERRCODE = '22023';
    END IF;
    IF p_days_ahead IS NULL OR p_days_ahead NOT BETWEEN 0 AND 31 THEN
        RAISE EXCEPTION 'monitoring.maintain: p_days_ahead must be between 0 and 31, got %', p_days_ahead
            USING ERRCODE = '22023';
    END IF;
    UPDATE monitoring.config SET retention_days = p_retention_days WHERE retention_days <> p_retention_days;
    created := 0;
    dropped := 0;
    FOREACH t IN ARRAY ARRAY['metric_points', 'events', 'spans'] LOOP
        created := created + monitoring._ensure_partitions(t, current_date, current_date + p_days_ahead);
        dropped := dropped + monitoring._drop_partitions_before(t, current_date - p_retention_days);
    END LOOP;
    RETURN NEXT;
END
$$;

-- Reads. SECURITY INVOKER (the default): the caller's grants and row-level security apply.

-- The old read, kept for compatibility: the newest events of a type within the last p_minutes.
CREATE FUNCTION monitoring.get_recent_metrics(p_type text, p_minutes integer DEFAULT 5, p_limit integer DEFAULT 100)
RETURNS TABLE (id bigint, type text, data jsonb, "timestamp" timestamptz)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT e.id, e.type, e.data, e.ts
      FROM monitoring.events AS e
     WHERE e.type = p_type
       AND e.ts > now() - make_interval(mins => greatest(p_minutes, 0))
     ORDER BY e.ts DESC
     LIMIT least(greatest(p_limit, 0), 10000)
$$;

-- The newest points of one metric within the last p_minutes.
CREATE FUNCTION monitoring.get_recent_points(p_name text, p_minutes integer DEFAULT 5, p_limit integer DEFAULT 1000)
RETURNS TABLE (ts timestamptz, kind text, unit text, service text, attributes jsonb, value double precision,
               count bigint, sum double precision, bucket_bounds double precision[], bucket_counts bigint[])
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT p.ts, p.kind, p.unit, p.service, p.attributes, p.value, p.count, p.sum, p.bucket_bounds, p.bucket_counts
      FROM monitoring.metric_points AS p
     WHERE p.name = p_name
       AND p.ts > now() - make_interval(mins => greatest(p_minutes, 0))
     ORDER BY p.ts DESC
     LIMIT least(greatest(p_limit, 0), 100000)
$$;

-- Slow lookups: the slowest storage spans (spans carrying db.system[.name]) that started in the last p_minutes,
-- with the sampler's adjusted count so a reader can tell a one-off from a pattern.
CREATE FUNCTION monitoring.get_slow_lookups(p_minutes integer DEFAULT 60, p_limit integer DEFAULT 20,
                                            p_min_duration_ms double precision DEFAULT 0)
RETURNS TABLE (start_ts timestamptz, trace_id text, span_id text, name text, service text, db_system text,
               operation text, statement text, duration_ms double precision, status_code text,
               sampling_reason text, adjusted_count double precision, explain_plan jsonb)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT s.start_ts, s.trace_id, s.span_id, s.name, s.service, s.db_system,
           coalesce(s.attributes ->> 'db.operation.name', s.attributes ->> 'db.operation'),
           coalesce(s.attributes ->> 'db.query.text', s.attributes ->> 'db.statement'),
           s.duration_ms, s.status_code, s.sampling_reason, s.adjusted_count, s.explain_plan
      FROM monitoring.spans AS s
     WHERE s.db_system IS NOT NULL
       AND s.start_ts > now() - make_interval(mins => greatest(p_minutes, 0))
       AND s.duration_ms >= p_min_duration_ms
     ORDER BY s.duration_ms DESC
     LIMIT least(greatest(p_limit, 0), 10000)
$$;

-- Every kept span of one trace, in start order.
CREATE FUNCTION monitoring.get_trace(p_trace_id text)
RETURNS SETOF monitoring.spans
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT * FROM monitoring.spans AS s WHERE s.trace_id = p_trace_id ORDER BY s.start_ts, s.span_id
$$;

-- The old table's shape over the events table, for queries written against monitoring.metrics_raw.
-- security_invoker: the view reads with the caller's rights (and row-level security), not its owner's.
CREATE VIEW monitoring.metrics_raw WITH (security_invoker = true) AS
    SELECT e.id, e.type, e.data, e.ts AS "timestamp", e.received_at AS created_at FROM monitoring.events AS e;

RESET ROLE;
