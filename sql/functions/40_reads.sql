-- Reads: the old API's read, recent metric points, one trace's spans. SECURITY INVOKER (the default): they run
-- with the caller's own grants (sieve_reader's, or Grafana's login in it) and row-level security, and pin an
-- empty search_path like every monitoring function.
--
-- Repeatable: applied after the numbered migrations and again whenever this file changes (pipeline/migrate.py).
-- Keep it idempotent: CREATE OR REPLACE, a DROP FUNCTION IF EXISTS before a changed signature, grants at the end.

SET LOCAL ROLE sieve_owner;

-- The old read, kept for compatibility: the newest events of a type within the last p_minutes.
CREATE OR REPLACE FUNCTION monitoring.get_recent_metrics(p_type text, p_minutes integer DEFAULT 5,
                                                         p_limit integer DEFAULT 100)
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
CREATE OR REPLACE FUNCTION monitoring.get_recent_points(p_name text, p_minutes integer DEFAULT 5,
                                                        p_limit integer DEFAULT 1000)
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

-- Every kept span of one trace, in start order.
CREATE OR REPLACE FUNCTION monitoring.get_trace(p_trace_id text)
RETURNS SETOF monitoring.spans
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT * FROM monitoring.spans AS s WHERE s.trace_id = p_trace_id ORDER BY s.start_ts, s.span_id
$$;

-- Application events of one trace (their data carries its trace_id, as `sieve trace` shows them) between two
-- times: the trace's own span range, so the read stays on a few pages (events_ts_brin) whatever the table's size.
CREATE OR REPLACE FUNCTION monitoring.get_trace_events(p_trace_id text, p_from timestamptz, p_to timestamptz,
                                                       p_limit integer DEFAULT 1000)
RETURNS TABLE (ts timestamptz, type text, data jsonb, source text)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT e.ts, e.type, e.data, e.source
      FROM monitoring.events AS e
     WHERE e.ts >= p_from AND e.ts <= p_to
       AND e.data ->> 'trace_id' = p_trace_id
     ORDER BY e.ts, e.id
     LIMIT least(greatest(p_limit, 0), 10000)
$$;

-- Who may call these: the reader.
REVOKE ALL ON FUNCTION
    monitoring.get_recent_metrics(text, integer, integer),
    monitoring.get_recent_points(text, integer, integer),
    monitoring.get_trace(text),
    monitoring.get_trace_events(text, timestamptz, timestamptz, integer)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    monitoring.get_recent_metrics(text, integer, integer),
    monitoring.get_recent_points(text, integer, integer),
    monitoring.get_trace(text),
    monitoring.get_trace_events(text, timestamptz, timestamptz, integer)
TO sieve_reader;

RESET ROLE;
