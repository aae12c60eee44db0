-- Slow lookups grouped by statement shape: what `sieve slow-lookups` and the storage dashboard read.
--
-- Input: kept operation spans of the storage collector (they carry sieve.db.fingerprint and the time split
-- sieve.db.pool_wait_s / connect_s / execute_s) and the EXPLAIN spans the collector emits for slow reads (their
-- plan is in spans.explain_plan). A span is "slow" when the collector marked it (sieve.db.slow, per-operation
-- thresholds), or, when p_min_duration_ms > 0, when it took at least that long.
--
-- Grafana's Postgres data source calls it with the dashboard's time range:
--   SELECT ... FROM monitoring.get_slow_lookup_groups($__timeFrom()::timestamptz, $__timeTo()::timestamptz)
-- SECURITY INVOKER like every read function: it runs with the caller's grants (sieve_reader) and row-level security.
--
-- Repeatable: applied after the numbered migrations and again whenever this file changes (pipeline/migrate.py).
-- Keep it idempotent: CREATE OR REPLACE, a DROP FUNCTION IF EXISTS before a changed signature, grants at the end.

SET LOCAL ROLE sieve_owner;

CREATE OR REPLACE FUNCTION monitoring.get_slow_lookup_groups(p_from timestamptz, p_to timestamptz,
                                                             p_min_duration_ms double precision DEFAULT 0,
                                                             p_limit integer DEFAULT 50)
RETURNS TABLE (fingerprint text, operation text, statement text, calls bigint,
               p50_ms double precision, p95_ms double precision, max_ms double precision,
               pool_wait_ms double precision, connect_ms double precision, execute_ms double precision,
               pool_wait_share double precision, connect_share double precision, execute_share double precision,
               dominant text, connects bigint, idle_connects bigint, pool text, pool_max_size integer,
               example_trace_ids text[], last_seen timestamptz, plan jsonb, plan_analyzed boolean)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH slow AS (
        SELECT s.start_ts, s.trace_id, s.duration_ms, s.attributes AS a,
               s.attributes ->> 'sieve.db.fingerprint' AS fp,
               coalesce((s.attributes ->> 'sieve.db.pool_wait_s')::double precision, 0) * 1000 AS wait_ms,
               coalesce((s.attributes ->> 'sieve.db.connect_s')::double precision, 0) * 1000 AS conn_ms,
               coalesce((s.attributes ->> 'sieve.db.execute_s')::double precision, 0) * 1000 AS exec_ms
          FROM monitoring.spans AS s
         WHERE s.db_system IS NOT NULL                      -- the partial index spans_storage_duration
           AND s.start_ts >= p_from AND s.start_ts < p_to   -- partition pruning
           AND s.attributes ? 'sieve.db.execute_s'          -- operation spans, not the drivers' statement spans
           AND s.attributes ? 'sieve.db.fingerprint'
           AND CASE WHEN p_min_duration_ms > 0 THEN s.duration_ms >= p_min_duration_ms
                    ELSE (s.attributes ->> 'sieve.db.slow')::boolean IS TRUE END
    ),
    groups AS (
        SELECT g.fp,
               mode() WITHIN GROUP (ORDER BY g.a ->> 'db.operation.name') AS operation,
               max(g.a ->> 'sieve.db.statement') AS statement,
               count(*) AS calls,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY g.duration_ms) AS p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY g.duration_ms) AS p95_ms,
               max(g.duration_ms) AS max_ms,
               sum(g.wait_ms) AS wait_ms, sum(g.conn_ms) AS conn_ms, sum(g.exec_ms) AS exec_ms,
               count(*) FILTER (WHERE g.a ? 'sieve.db.connects') AS connects,
               count(*) FILTER (WHERE (g.a ->> 'sieve.db.idle_connect')::boolean IS TRUE) AS idle_connects,
               max(g.a ->> 'db.client.connection.pool.name') AS pool,
               max((g.a ->> 'db.client.connection.max')::integer) AS pool_max_size,
               (array_agg(g.trace_id ORDER BY g.duration_ms DESC))[1:3] AS example_trace_ids,
               max(g.start_ts) AS last_seen
          FROM slow AS g
         GROUP BY g.fp
    )
    SELECT g.fp, g.operation, g.statement, g.calls, g.p50_ms, g.p95_ms, g.max_ms,
           g.wait_ms, g.conn_ms, g.exec_ms,
           g.wait_ms / nullif(g.wait_ms + g.conn_ms + g.exec_ms, 0),
           g.conn_ms / nullif(g.wait_ms + g.conn_ms + g.exec_ms, 0),
           g.exec_ms / nullif(g.wait_ms + g.conn_ms + g.exec_ms, 0),
           CASE greatest(g.wait_ms, g.conn_ms, g.exec_ms)
                WHEN 0 THEN NULL
                WHEN g.wait_ms THEN 'pool wait'
                WHEN g.conn_ms THEN 'connect'
                ELSE 'execute' END,
           g.connects, g.idle_connects, g.pool, g.pool_max_size, g.example_trace_ids, g.last_seen,
           p.explain_plan, p.analyzed
      FROM groups AS g
      LEFT JOIN LATERAL (
            -- The newest plan captured for this statement shape in the window (plans are cached per fingerprint).
            SELECT e.explain_plan, (e.attributes ->> 'sieve.db.plan.analyzed')::boolean AS analyzed
              FROM monitoring.spans AS e
             WHERE e.name = 'EXPLAIN' AND e.start_ts >= p_from AND e.start_ts < p_to
               AND e.explain_plan IS NOT NULL
               AND e.attributes ->> 'sieve.db.fingerprint' = g.fp
             ORDER BY e.start_ts DESC
             LIMIT 1
      ) AS p ON true
     ORDER BY g.p95_ms * g.calls DESC  -- where the time goes: slow and frequent first
     LIMIT least(greatest(p_limit, 0), 1000)
$$;

-- Who may call it: the reader (Grafana's data source, `sieve slow-lookups`).
REVOKE ALL ON FUNCTION monitoring.get_slow_lookup_groups(timestamptz, timestamptz, double precision, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.get_slow_lookup_groups(timestamptz, timestamptz, double precision, integer)
    TO sieve_reader;

RESET ROLE;
