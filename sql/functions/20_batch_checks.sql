-- Batch checks of the insert functions (sql/functions/30_inserts.sql), all internal: only the owner may call them.
--
-- _check_batch runs on every call (the envelope: an array, not too long) and returns the time limits. The rest
-- runs only after the fast path failed: _validate_<kind> applies a table's rules element by element (the same
-- rules as the table's CHECK constraints, sql/migrations/0003) and raises an error that names the function,
-- the element and the problem; when every element is fine it returns the batch's time range, so the caller can
-- create partitions for days not made ahead and try once more.
--   SQLSTATE 22023 (invalid_parameter_value): malformed element or batch
--   SQLSTATE 54000 (program_limit_exceeded):  more elements than monitoring.config.max_batch_rows
--
-- Repeatable: applied after the numbered migrations and again whenever this file changes (pipeline/migrate.py).
-- Keep it idempotent: CREATE OR REPLACE, a DROP FUNCTION IF EXISTS before a changed signature, grants at the end.

SET LOCAL ROLE sieve_owner;

-- Checks the envelope of a batch; returns the retention cutoff and the latest acceptable timestamp.
CREATE OR REPLACE FUNCTION monitoring._check_batch(p_fn text, p_batch jsonb,
                                                   OUT cutoff timestamptz, OUT latest timestamptz)
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
CREATE OR REPLACE FUNCTION monitoring._reject(p_fn text, p_batch jsonb, p_index bigint, p_required text[], p_rule text)
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
CREATE OR REPLACE FUNCTION monitoring._diagnose_types(p_fn text, p_batch jsonb, p_type regtype, p_error text)
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

-- The rules of each kind of batch (error path only): the first bad element raises, else the batch's time range.
CREATE OR REPLACE FUNCTION monitoring._validate_points(p_points jsonb, p_latest timestamptz,
                                                       OUT v_min timestamptz, OUT v_max timestamptz)
LANGUAGE plpgsql
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    fn    constant text := 'monitoring.insert_points';
    v_bad bigint;
    why   text;
BEGIN
    BEGIN
        SELECT min(r.ts), max(r.ts),
               min(r.ordinality) FILTER (WHERE r.ts IS NULL OR r.name IS NULL OR r.kind IS NULL
                   OR r.kind NOT IN ('counter', 'updowncounter', 'gauge', 'histogram', 'exponential_histogram')
                   OR (r.kind IN ('counter', 'updowncounter', 'gauge') AND r.value IS NULL)
                   OR (r.kind IN ('histogram', 'exponential_histogram') AND r.count IS NULL)
                   OR (r.bucket_counts IS NOT NULL
                       AND cardinality(r.bucket_counts) <> coalesce(cardinality(r.bucket_bounds), 0) + 1)
                   OR (r.temporality IS NOT NULL AND r.temporality NOT IN ('cumulative', 'delta'))
                   OR r.ts > p_latest)
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
                   WHEN r.ts > p_latest
                       THEN format('ts %s is more than %s ahead of the server clock', r.ts, p_latest - now())
                   ELSE 'bucket_counts must have one element more than bucket_bounds'
               END
          INTO why
          FROM pg_catalog.jsonb_populate_record(NULL::monitoring.point_in, p_points -> (v_bad::integer - 1)) AS r;
        PERFORM monitoring._reject(fn, p_points, v_bad, ARRAY['ts', 'name', 'kind'], why);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION monitoring._validate_events(p_events jsonb, p_latest timestamptz,
                                                       OUT v_min timestamptz, OUT v_max timestamptz)
LANGUAGE plpgsql
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    fn    constant text := 'monitoring.insert_events';
    v_bad bigint;
    why   text;
BEGIN
    BEGIN
        SELECT min(r.ts), max(r.ts),
               min(r.ordinality) FILTER (WHERE r.id IS NULL OR r.ts IS NULL OR r.type IS NULL OR r.type = ''
                   OR r.data IS NULL OR r.ts > p_latest)
          INTO v_min, v_max, v_bad
          FROM ROWS FROM (pg_catalog.jsonb_populate_recordset(NULL::monitoring.event_in, p_events))
               WITH ORDINALITY AS r;
    EXCEPTION WHEN data_exception THEN
        PERFORM monitoring._diagnose_types(fn, p_events, 'monitoring.event_in'::regtype, SQLERRM);
    END;
    IF v_bad IS NOT NULL THEN
        SELECT CASE
                   WHEN r.type = '' THEN 'type is empty'
                   ELSE format('ts %s is more than %s ahead of the server clock', r.ts, p_latest - now())
               END
          INTO why
          FROM pg_catalog.jsonb_populate_record(NULL::monitoring.event_in, p_events -> (v_bad::integer - 1)) AS r;
        PERFORM monitoring._reject(fn, p_events, v_bad, ARRAY['id', 'ts', 'type', 'data'], why);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION monitoring._validate_spans(p_spans jsonb, p_latest timestamptz,
                                                      OUT v_min timestamptz, OUT v_max timestamptz)
LANGUAGE plpgsql
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    fn    constant text := 'monitoring.insert_spans';
    v_bad bigint;
    why   text;
BEGIN
    BEGIN
        SELECT min(r.start_ts), max(r.start_ts),
               min(r.ordinality) FILTER (WHERE r.start_ts IS NULL OR r.trace_id IS NULL OR r.span_id IS NULL
                   OR r.name IS NULL OR r.kind IS NULL OR r.duration_ms IS NULL
                   OR r.trace_id !~ '^[0-9a-f]{32}$' OR r.span_id !~ '^[0-9a-f]{16}$'
                   OR r.parent_span_id !~ '^[0-9a-f]{16}$'
                   OR r.kind NOT IN ('internal', 'server', 'client', 'producer', 'consumer')
                   OR coalesce(r.status_code, 'unset') NOT IN ('unset', 'ok', 'error')
                   OR r.duration_ms < 0 OR r.start_ts > p_latest)
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
                   ELSE format('start_ts %s is more than %s ahead of the server clock', r.start_ts, p_latest - now())
               END
          INTO why
          FROM pg_catalog.jsonb_populate_record(NULL::monitoring.span_in, p_spans -> (v_bad::integer - 1)) AS r;
        PERFORM monitoring._reject(fn, p_spans, v_bad,
            ARRAY['start_ts', 'trace_id', 'span_id', 'name', 'kind', 'duration_ms'], why);
    END IF;
END
$$;

-- Who may call these: the owner alone (through the insert functions).
REVOKE ALL ON FUNCTION
    monitoring._check_batch(text, jsonb),
    monitoring._reject(text, jsonb, bigint, text[], text),
    monitoring._diagnose_types(text, jsonb, regtype, text),
    monitoring._validate_points(jsonb, timestamptz),
    monitoring._validate_events(jsonb, timestamptz),
    monitoring._validate_spans(jsonb, timestamptz)
FROM PUBLIC;

RESET ROLE;
