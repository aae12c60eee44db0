-- The Postgres metrics sink, part 5: a faster write path (replaces the insert functions of 0102).
--
-- 0102's insert functions read each batch twice: a validation pass, then the INSERT. Here the fast path is the
-- INSERT alone, and the tables' own constraints (added below, mirroring the validation rules) refuse a
-- malformed row; only then does the slow path run the validation to raise an error that names the element and
-- the problem, create partitions for days not made ahead (a spool replayed from an earlier day), and try once
-- more. Measured at batch 1,000: within noise of a bare INSERT ... SELECT jsonb_populate_recordset.
-- The contract is unchanged: same signatures, same error codes and messages, and an error inserts nothing.
-- (A new migration rather than an edit of 0101/0102: those may already be applied, and the runner refuses a
-- migration whose file changed after it ran.)

SET LOCAL ROLE sieve_owner;

ALTER TABLE monitoring.metric_points
    ADD CONSTRAINT metric_points_value CHECK (kind NOT IN ('counter', 'updowncounter', 'gauge') OR value IS NOT NULL),
    ADD CONSTRAINT metric_points_count CHECK (kind NOT IN ('histogram', 'exponential_histogram') OR count IS NOT NULL),
    ADD CONSTRAINT metric_points_buckets CHECK (
        bucket_counts IS NULL OR cardinality(bucket_counts) = coalesce(cardinality(bucket_bounds), 0) + 1
    );
ALTER TABLE monitoring.events ADD CONSTRAINT events_type CHECK (type <> '');
ALTER TABLE monitoring.spans
    ADD CONSTRAINT spans_ids CHECK (
        trace_id ~ '^[0-9a-f]{32}$' AND span_id ~ '^[0-9a-f]{16}$' AND parent_span_id ~ '^[0-9a-f]{16}$'
    ),
    ADD CONSTRAINT spans_duration CHECK (duration_ms >= 0);

-- Validation, run only on the error path of an insert (the fast path relies on the tables' own constraints):
-- finds the first bad element and raises an error naming it and what is wrong; when every element is fine,
-- returns the batch's time range so the caller can create missing partitions and retry.
CREATE FUNCTION monitoring._validate_points(p_points jsonb, p_latest timestamptz,
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

CREATE FUNCTION monitoring._validate_events(p_events jsonb, p_latest timestamptz,
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

CREATE FUNCTION monitoring._validate_spans(p_spans jsonb, p_latest timestamptz,
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

-- The insert functions. Fast path: one INSERT ... SELECT over the array, checked by the tables' constraints
-- (NOT NULL, CHECK, the partition bounds) and by the RETURNING aggregate for timestamps too far ahead. On an
-- error the slow path validates the batch (raising a precise error for a bad element), creates partitions for
-- days not premade (a spool replayed from an earlier day), and tries once more. Either way the function is one
-- statement of the caller's transaction: an error inserts nothing.

CREATE OR REPLACE FUNCTION monitoring.insert_points(p_points jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    lim      record;
    rng      record;
    inserted integer;
    v_max    timestamptz;
BEGIN
    SELECT * INTO lim FROM monitoring._check_batch('monitoring.insert_points', p_points);
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring.metric_points (ts, start_ts, name, kind, unit, temporality, service, instance,
                                                      scope, attributes, value, count, sum, min, max, bucket_bounds,
                                                      bucket_counts, exponential)
                SELECT r.ts, r.start_ts, r.name, r.kind, coalesce(r.unit, ''), r.temporality, coalesce(r.service, ''),
                       coalesce(r.instance, ''), coalesce(r.scope, ''), coalesce(r.attributes, '{}'::jsonb),
                       r.value, r.count, r.sum, r.min, r.max, r.bucket_bounds, r.bucket_counts, r.exponential
                  FROM pg_catalog.jsonb_populate_recordset(NULL::monitoring.point_in, p_points) AS r
                 WHERE r.ts IS NULL OR r.ts >= lim.cutoff  -- a missing ts must fail, not be skipped as expired
                ON CONFLICT DO NOTHING
                RETURNING ts
            )
            SELECT count(*), max(ts) INTO inserted, v_max FROM ins;
            IF v_max > lim.latest THEN
                RAISE EXCEPTION 'timestamp too far ahead' USING ERRCODE = '22023';  -- described by the slow path
            END IF;
            RETURN inserted;
        EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
            IF attempt = 2 THEN
                RAISE;
            END IF;
            SELECT * INTO rng FROM monitoring._validate_points(p_points, lim.latest);
            PERFORM monitoring._partitions_for('metric_points', rng.v_min, rng.v_max, lim.cutoff);
        END;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION monitoring.insert_events(p_events jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    lim      record;
    rng      record;
    inserted integer;
    v_max    timestamptz;
BEGIN
    SELECT * INTO lim FROM monitoring._check_batch('monitoring.insert_events', p_events);
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring.events (event_id, ts, type, data, source)
                SELECT r.id, r.ts, r.type, r.data, coalesce(r.source, '')
                  FROM pg_catalog.jsonb_populate_recordset(NULL::monitoring.event_in, p_events) AS r
                 WHERE r.ts IS NULL OR r.ts >= lim.cutoff
                ON CONFLICT DO NOTHING
                RETURNING ts
            )
            SELECT count(*), max(ts) INTO inserted, v_max FROM ins;
            IF v_max > lim.latest THEN
                RAISE EXCEPTION 'timestamp too far ahead' USING ERRCODE = '22023';
            END IF;
            RETURN inserted;
        EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
            IF attempt = 2 THEN
                RAISE;
            END IF;
            SELECT * INTO rng FROM monitoring._validate_events(p_events, lim.latest);
            PERFORM monitoring._partitions_for('events', rng.v_min, rng.v_max, lim.cutoff);
        END;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION monitoring.insert_spans(p_spans jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    lim      record;
    rng      record;
    inserted integer;
    v_max    timestamptz;
BEGIN
    SELECT * INTO lim FROM monitoring._check_batch('monitoring.insert_spans', p_spans);
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring.spans (start_ts, trace_id, span_id, parent_span_id, name, kind, status_code,
                                              status_message, duration_ms, service, attributes, sampling_probability,
                                              adjusted_count, sampling_reason, explain_plan)
                SELECT r.start_ts, r.trace_id, r.span_id, r.parent_span_id, r.name, r.kind,
                       coalesce(r.status_code, 'unset'), r.status_message, r.duration_ms, coalesce(r.service, ''),
                       coalesce(r.attributes, '{}'::jsonb), r.sampling_probability, r.adjusted_count,
                       r.sampling_reason, r.explain_plan
                  FROM pg_catalog.jsonb_populate_recordset(NULL::monitoring.span_in, p_spans) AS r
                 WHERE r.start_ts IS NULL OR r.start_ts >= lim.cutoff
                ON CONFLICT DO NOTHING
                RETURNING start_ts
            )
            SELECT count(*), max(start_ts) INTO inserted, v_max FROM ins;
            IF v_max > lim.latest THEN
                RAISE EXCEPTION 'timestamp too far ahead' USING ERRCODE = '22023';
            END IF;
            RETURN inserted;
        EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
            IF attempt = 2 THEN
                RAISE;
            END IF;
            SELECT * INTO rng FROM monitoring._validate_spans(p_spans, lim.latest);
            PERFORM monitoring._partitions_for('spans', rng.v_min, rng.v_max, lim.cutoff);
        END;
    END LOOP;
END
$$;

RESET ROLE;
