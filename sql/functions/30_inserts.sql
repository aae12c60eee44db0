-- The batched writes the sink calls, one call per batch: monitoring.insert_points, insert_events, insert_spans;
-- and the old single-row write, monitoring.insert_metric.
--
-- Each batched write takes ONE jsonb array (jsonb_populate_recordset over the element types of
-- sql/migrations/0003: the fastest non-COPY path measured from Python, and a single body for PostgREST) and
-- returns how many rows it inserted; rows the table already has (a retried or replayed batch) are skipped by
-- ON CONFLICT DO NOTHING on the natural key, as are rows older than the retention. A malformed batch (not an
-- array, too many elements, an element that is not an object, a wrong type, a missing key) raises an error naming
-- the function, the element and the problem (20_batch_checks.sql), and inserts nothing: the call is one statement
-- of the caller's transaction.
--
-- The three share one shape, monitoring._insert_batch. Fast path: one INSERT ... SELECT over the array, checked
-- by the table's own constraints (NOT NULL, CHECK, the partition bounds) and by the RETURNING aggregate for
-- timestamps too far ahead (at batch 1,000: within noise of a bare INSERT ... SELECT, and of the three separate
-- functions this shape replaced). On an error, the slow path validates the batch (a precise error for a bad
-- element), creates partitions for days not made ahead (a spool replayed from an earlier day), and tries again.
--
-- Security: the public functions are SECURITY DEFINER (the writer role has no table privileges), owned by
-- sieve_owner, with `SET search_path = ''` and every name schema-qualified, so a caller's search_path (a shadowing
-- temporary table, a look-alike function in a schema of theirs) cannot change what they do.
--
-- Repeatable: applied after the numbered migrations and again whenever this file changes (pipeline/migrate.py).
-- Keep it idempotent: CREATE OR REPLACE, a DROP FUNCTION IF EXISTS before a changed signature, grants at the end.

SET LOCAL ROLE sieve_owner;

-- One batched insert. p_kind names the batch and its function: 'points' (table metric_points), 'events', 'spans'.
-- Only the column mapping differs between kinds: one static statement each, so each keeps a cached plan.
CREATE OR REPLACE FUNCTION monitoring._insert_batch(p_kind text, p_batch jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
SET timezone = 'UTC'
AS $$
DECLARE
    fn       constant text := 'monitoring.insert_' || p_kind;
    lim      record;
    rng      record;
    inserted integer;
    v_max    timestamptz;
BEGIN
    SELECT * INTO lim FROM monitoring._check_batch(fn, p_batch);
    FOR attempt IN 1 .. 2 LOOP
        BEGIN
            -- A missing timestamp must fail on its NOT NULL, not be skipped as older than the retention.
            CASE p_kind
            WHEN 'points' THEN
                WITH ins AS (
                    INSERT INTO monitoring.metric_points (ts, start_ts, name, kind, unit, temporality, service,
                                                          instance, scope, attributes, value, count, sum, min, max,
                                                          bucket_bounds, bucket_counts, exponential)
                    SELECT r.ts, r.start_ts, r.name, r.kind, coalesce(r.unit, ''), r.temporality,
                           coalesce(r.service, ''), coalesce(r.instance, ''), coalesce(r.scope, ''),
                           coalesce(r.attributes, '{}'::jsonb), r.value, r.count, r.sum, r.min, r.max,
                           r.bucket_bounds, r.bucket_counts, r.exponential
                      FROM pg_catalog.jsonb_populate_recordset(NULL::monitoring.point_in, p_batch) AS r
                     WHERE r.ts IS NULL OR r.ts >= lim.cutoff
                    ON CONFLICT DO NOTHING
                    RETURNING ts
                )
                SELECT count(*), max(ts) INTO inserted, v_max FROM ins;
            WHEN 'events' THEN
                WITH ins AS (
                    INSERT INTO monitoring.events (event_id, ts, type, data, source)
                    SELECT r.id, r.ts, r.type, r.data, coalesce(r.source, '')
                      FROM pg_catalog.jsonb_populate_recordset(NULL::monitoring.event_in, p_batch) AS r
                     WHERE r.ts IS NULL OR r.ts >= lim.cutoff
                    ON CONFLICT DO NOTHING
                    RETURNING ts
                )
                SELECT count(*), max(ts) INTO inserted, v_max FROM ins;
            WHEN 'spans' THEN
                WITH ins AS (
                    INSERT INTO monitoring.spans (start_ts, trace_id, span_id, parent_span_id, name, kind,
                                                  status_code, status_message, duration_ms, service, attributes,
                                                  sampling_probability, adjusted_count, sampling_reason,
                                                  explain_plan)
                    SELECT r.start_ts, r.trace_id, r.span_id, r.parent_span_id, r.name, r.kind,
                           coalesce(r.status_code, 'unset'), r.status_message, r.duration_ms,
                           coalesce(r.service, ''), coalesce(r.attributes, '{}'::jsonb), r.sampling_probability,
                           r.adjusted_count, r.sampling_reason, r.explain_plan
                      FROM pg_catalog.jsonb_populate_recordset(NULL::monitoring.span_in, p_batch) AS r
                     WHERE r.start_ts IS NULL OR r.start_ts >= lim.cutoff
                    ON CONFLICT DO NOTHING
                    RETURNING start_ts
                )
                SELECT count(*), max(start_ts) INTO inserted, v_max FROM ins;
            END CASE;
            IF v_max > lim.latest THEN
                RAISE EXCEPTION 'timestamp too far ahead' USING ERRCODE = '22023';  -- described by the slow path
            END IF;
            RETURN inserted;
        EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
            IF attempt = 2 THEN
                RAISE;
            END IF;
            CASE p_kind
            WHEN 'points' THEN
                SELECT * INTO rng FROM monitoring._validate_points(p_batch, lim.latest);
            WHEN 'events' THEN
                SELECT * INTO rng FROM monitoring._validate_events(p_batch, lim.latest);
            WHEN 'spans' THEN
                SELECT * INTO rng FROM monitoring._validate_spans(p_batch, lim.latest);
            END CASE;
            PERFORM monitoring._partitions_for(CASE p_kind WHEN 'points' THEN 'metric_points' ELSE p_kind END,
                                               rng.v_min, rng.v_max, lim.cutoff);
        END;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION monitoring.insert_points(p_points jsonb)
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$ SELECT monitoring._insert_batch('points', p_points) $$;

CREATE OR REPLACE FUNCTION monitoring.insert_events(p_events jsonb)
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$ SELECT monitoring._insert_batch('events', p_events) $$;

CREATE OR REPLACE FUNCTION monitoring.insert_spans(p_spans jsonb)
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$ SELECT monitoring._insert_batch('spans', p_spans) $$;

-- The old single-row write, kept for compatibility: inserts (p_type, p_data, now()) into the
-- events table and returns the row's id. One call per row; it has no natural key, so a retried call doubles a row.
CREATE OR REPLACE FUNCTION monitoring.insert_metric(p_type text, p_data jsonb)
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

-- Who may call these: the writer, the batched and the single-row writes; the shared shape is the owner's alone.
REVOKE ALL ON FUNCTION
    monitoring._insert_batch(text, jsonb),
    monitoring.insert_points(jsonb),
    monitoring.insert_events(jsonb),
    monitoring.insert_spans(jsonb),
    monitoring.insert_metric(text, jsonb)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    monitoring.insert_points(jsonb),
    monitoring.insert_events(jsonb),
    monitoring.insert_spans(jsonb),
    monitoring.insert_metric(text, jsonb)
TO sieve_writer;

RESET ROLE;
