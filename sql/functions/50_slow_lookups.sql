-- Slow lookups: what `sieve slow-lookups`, the demo report and the storage dashboard read.
--
-- Input: kept spans. Operation spans of the storage collector carry sieve.db.fingerprint and the time split
-- sieve.db.pool_wait_s / connect_s / execute_s; a slow one is marked sieve.db.slow. EXPLAIN spans carry a plan
-- (spans.explain_plan) and its shape hash (sieve.db.plan_hash), captured for slow reads and, once per fingerprint
-- per cache TTL, for fast ones (the plan in force).
--
--   monitoring.get_plan_epochs         per fingerprint, which plan was in force when (from the EXPLAIN spans)
--   monitoring.get_slow_lookup_groups  slow operations grouped by statement shape *and* plan
--   monitoring.get_plan_changes        fingerprints whose plan changed in the window, latency before and after
--   monitoring.get_n_plus_one_groups   one statement shape run N+ times in a row under one parent span
--
-- Grafana's Postgres data source calls them with the dashboard's time range:
--   SELECT ... FROM monitoring.get_slow_lookup_groups($__timeFrom()::timestamptz, $__timeTo()::timestamptz)
-- SECURITY INVOKER like every read function: they run with the caller's grants (sieve_reader) and row-level
-- security. Each read goes through an index that holds only its rows (0003 and 0005): the report stays fast over
-- millions of stored spans.
--
-- Repeatable: applied after the numbered migrations and again whenever this file changes (pipeline/migrate.py).
-- Keep it idempotent: CREATE OR REPLACE, a DROP FUNCTION IF EXISTS before a changed signature, grants at the end.

SET LOCAL ROLE sieve_owner;

-- The result of get_slow_lookup_groups gained the plan columns: a changed result type needs a DROP
-- first, once; later runs replace the new shape in place (same oid, grants kept).
DO $$
DECLARE
    f regprocedure := to_regprocedure(
        'monitoring.get_slow_lookup_groups(timestamptz, timestamptz, double precision, integer)');
BEGIN
    IF f IS NOT NULL AND pg_get_function_result(f) NOT LIKE '%plan_hash%' THEN
        DROP FUNCTION monitoring.get_slow_lookup_groups(timestamptz, timestamptz, double precision, integer);
    END IF;
END
$$;

-- Plan epochs. A plan is known only when it is captured, so each fingerprint's EXPLAIN spans (the window, and a day
-- before it for the plan in force at its start) are read in time order, and a new epoch starts at each capture
-- whose plan hash differs from the one before. An epoch lasts until the next one starts; the first one of a
-- fingerprint also covers the time before its first capture (a call made before any capture belongs to the first
-- plan seen). A change is therefore placed at the first capture of the new plan: up to the plan cache's TTL after
-- the change really happened (collectors/_explain.py re-explains each fingerprint at least that often), or
-- rather at the start of the call the capture was taken for (its parent span), which ran under that plan.
CREATE OR REPLACE FUNCTION monitoring.get_plan_epochs(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (fingerprint text, plan_hash text, operation text, since timestamptz, until timestamptz,
               first_captured timestamptz, previous_plan_hash text)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH captures AS (
        SELECT e.attributes ->> 'sieve.db.fingerprint' AS fp, e.attributes ->> 'sieve.db.plan_hash' AS ph,
               e.attributes ->> 'db.operation.name' AS operation, e.start_ts, e.trace_id, e.parent_span_id
          FROM monitoring.spans AS e
         WHERE e.name = 'EXPLAIN'                                   -- spans_name_start
           AND e.start_ts >= p_from - interval '1 day' AND e.start_ts < p_to
           AND e.attributes ? 'sieve.db.plan_hash' AND e.attributes ? 'sieve.db.fingerprint'
    ),
    marked AS (
        SELECT c.*, lag(c.ph) OVER (PARTITION BY c.fp ORDER BY c.start_ts, c.ph) AS prev
          FROM captures AS c
    ),
    changes AS (
        SELECT m.fp, m.ph, m.prev, least(m.start_ts, p.start_ts) AS start_ts
          FROM marked AS m
          LEFT JOIN LATERAL (
                SELECT c.start_ts FROM monitoring.spans AS c                -- the call it was captured for
                 WHERE c.trace_id = m.trace_id AND c.span_id = m.parent_span_id   -- spans_key
                   AND c.start_ts >= m.start_ts - interval '1 hour' AND c.start_ts <= m.start_ts
                 LIMIT 1
          ) AS p ON true
         WHERE m.prev IS DISTINCT FROM m.ph
    ),
    starts AS (
        SELECT ch.*, lead(ch.start_ts) OVER (PARTITION BY ch.fp ORDER BY ch.start_ts) AS next_start
          FROM changes AS ch
    )
    SELECT s.fp, s.ph,
           (SELECT max(c.operation) FROM captures AS c WHERE c.fp = s.fp),
           CASE WHEN s.prev IS NULL THEN '-infinity'::timestamptz ELSE s.start_ts END,
           coalesce(s.next_start, 'infinity'::timestamptz),
           s.start_ts, s.prev
      FROM starts AS s
$$;

CREATE OR REPLACE FUNCTION monitoring.get_slow_lookup_groups(p_from timestamptz, p_to timestamptz,
                                                             p_min_duration_ms double precision DEFAULT 0,
                                                             p_limit integer DEFAULT 50)
RETURNS TABLE (fingerprint text, plan_hash text, operation text, statement text, calls bigint,
               p50_ms double precision, p95_ms double precision, max_ms double precision,
               pool_wait_ms double precision, connect_ms double precision, execute_ms double precision,
               pool_wait_share double precision, connect_share double precision, execute_share double precision,
               dominant text, connects bigint, idle_connects bigint, pool text, pool_max_size integer,
               example_trace_ids text[], first_seen timestamptz, last_seen timestamptz,
               plan jsonb, plan_analyzed boolean, plan_captured_at timestamptz)
LANGUAGE sql STABLE
SET search_path = ''
-- The CTEs below are small but their row estimates are not: a merge join on the fingerprint alone compared every
-- slow call with every EXPLAIN (seconds over a busy hour); hash joins on the full keys take milliseconds.
SET enable_mergejoin = off
AS $$
    WITH slow AS MATERIALIZED (
        -- Marked slow by the collector (its per-operation thresholds): the partial index spans_slow_operations.
        SELECT s.start_ts, s.trace_id, s.span_id, s.duration_ms, s.attributes AS a
          FROM monitoring.spans AS s
         WHERE p_min_duration_ms <= 0
           AND s.db_system IS NOT NULL AND s.attributes @> '{"sieve.db.slow": true}'
           AND s.start_ts >= p_from AND s.start_ts < p_to
           AND s.attributes ? 'sieve.db.execute_s'                  -- operation spans, not the drivers' statements
           AND s.attributes ? 'sieve.db.fingerprint'
        UNION ALL
        -- At least p_min_duration_ms long, marked or not (`--min-ms`): the partial index spans_storage_duration.
        SELECT s.start_ts, s.trace_id, s.span_id, s.duration_ms, s.attributes
          FROM monitoring.spans AS s
         WHERE p_min_duration_ms > 0
           AND s.db_system IS NOT NULL AND s.duration_ms >= p_min_duration_ms
           AND s.start_ts >= p_from AND s.start_ts < p_to
           AND s.attributes ? 'sieve.db.execute_s'
           AND s.attributes ? 'sieve.db.fingerprint'
    ),
    explains AS MATERIALIZED (
        -- EXPLAIN spans: the plans, and which call each was taken for (its parent). A call's own EXPLAIN starts
        -- after the call, so the read reaches a minute past the window.
        SELECT e.trace_id, e.parent_span_id, e.start_ts, e.explain_plan,
               e.attributes ->> 'sieve.db.fingerprint' AS fp, e.attributes ->> 'sieve.db.plan_hash' AS ph,
               e.attributes @> '{"sieve.db.plan.analyzed": true}' AS analyzed,
               e.attributes @> '{"sieve.db.plan.baseline": true}' AS baseline
          FROM monitoring.spans AS e
         WHERE e.name = 'EXPLAIN'                                   -- spans_name_start
           AND e.start_ts >= p_from - interval '1 day' AND e.start_ts < p_to + interval '1 minute'
           AND e.explain_plan IS NOT NULL
    ),
    epochs AS MATERIALIZED (
        SELECT * FROM monitoring.get_plan_epochs(p_from, p_to)
    ),
    own AS (
        SELECT x.trace_id, x.parent_span_id, x.fp, max(x.ph) AS ph
          FROM explains AS x
         WHERE x.ph IS NOT NULL
         GROUP BY x.trace_id, x.parent_span_id, x.fp
    ),
    attributed AS (
        -- Each slow call's plan: the one captured for the call itself when there is one, else the plan in force
        -- at its start (get_plan_epochs), else none known.
        SELECT sl.*, sl.a ->> 'sieve.db.fingerprint' AS fp, coalesce(o.ph, ep.plan_hash) AS ph,
               coalesce((sl.a ->> 'sieve.db.pool_wait_s')::double precision, 0) * 1000 AS wait_ms,
               coalesce((sl.a ->> 'sieve.db.connect_s')::double precision, 0) * 1000 AS conn_ms,
               coalesce((sl.a ->> 'sieve.db.execute_s')::double precision, 0) * 1000 AS exec_ms
          FROM slow AS sl
          LEFT JOIN own AS o
            ON o.trace_id = sl.trace_id AND o.parent_span_id = sl.span_id AND o.fp = sl.a ->> 'sieve.db.fingerprint'
          LEFT JOIN epochs AS ep
            ON ep.fingerprint = sl.a ->> 'sieve.db.fingerprint' AND sl.start_ts >= ep.since AND sl.start_ts < ep.until
    ),
    groups AS (
        SELECT g.fp, g.ph,
               mode() WITHIN GROUP (ORDER BY g.a ->> 'db.operation.name') AS operation,
               max(g.a ->> 'sieve.db.statement') AS statement,
               count(*) AS calls,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY g.duration_ms) AS p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY g.duration_ms) AS p95_ms,
               max(g.duration_ms) AS max_ms,
               sum(g.wait_ms) AS wait_ms, sum(g.conn_ms) AS conn_ms, sum(g.exec_ms) AS exec_ms,
               count(*) FILTER (WHERE g.a ? 'sieve.db.connects') AS connects,
               count(*) FILTER (WHERE g.a @> '{"sieve.db.idle_connect": true}') AS idle_connects,
               max(g.a ->> 'db.client.connection.pool.name') AS pool,
               max((g.a ->> 'db.client.connection.max')::integer) AS pool_max_size,
               (array_agg(g.trace_id ORDER BY g.duration_ms DESC))[1:3] AS example_trace_ids,
               min(g.start_ts) AS first_seen,
               max(g.start_ts) AS last_seen
          FROM attributed AS g
         GROUP BY g.fp, g.ph
    )
    SELECT g.fp, g.ph, g.operation, g.statement, g.calls, g.p50_ms, g.p95_ms, g.max_ms,
           g.wait_ms, g.conn_ms, g.exec_ms,
           g.wait_ms / nullif(g.wait_ms + g.conn_ms + g.exec_ms, 0),
           g.conn_ms / nullif(g.wait_ms + g.conn_ms + g.exec_ms, 0),
           g.exec_ms / nullif(g.wait_ms + g.conn_ms + g.exec_ms, 0),
           CASE greatest(g.wait_ms, g.conn_ms, g.exec_ms)
                WHEN 0 THEN NULL
                WHEN g.wait_ms THEN 'pool wait'
                WHEN g.conn_ms THEN 'connect'
                ELSE 'execute' END,
           g.connects, g.idle_connects, g.pool, g.pool_max_size, g.example_trace_ids, g.first_seen, g.last_seen,
           p.explain_plan, p.analyzed, p.start_ts
      FROM groups AS g
      LEFT JOIN LATERAL (
            -- The group's plan document: the newest capture of that plan taken for a slow call (with a slow call's
            -- parameters), else a baseline one. Calls whose plan is unknown get one only when the fingerprint has
            -- no hashed plan at all (spans stored before plan hashes existed).
            SELECT x.explain_plan, x.analyzed, x.start_ts
              FROM explains AS x
             WHERE x.fp = g.fp
               AND (x.ph = g.ph
                    OR (g.ph IS NULL AND NOT EXISTS (SELECT 1 FROM epochs AS ep WHERE ep.fingerprint = g.fp)))
             ORDER BY x.baseline, x.start_ts DESC
             LIMIT 1
      ) AS p ON true
     ORDER BY g.p95_ms * g.calls DESC, g.fp, g.ph  -- where the time goes: slow and frequent first
     LIMIT least(greatest(p_limit, 0), 1000)
$$;

-- Fingerprints whose plan changed inside the window, with the latency of *all* their kept calls (slow or not)
-- under the old plan and under the new one: the 2,000 kept calls nearest the change on each side, within an hour of
-- it and the two epochs (enough for a p95; a busy operation has ~100k an hour). The calls before the change may
-- precede the window: a change at the start of the window (a restart with a new index) still has its "before". Percentiles are weighted
-- by each span's adjusted count (1 / its keep probability), so the sampler's preference for slow traces does not
-- inflate them. Operation spans are found by name (the operation the EXPLAIN spans name) through spans_name_start,
-- newest first before the change and oldest first after it.
CREATE OR REPLACE FUNCTION monitoring.get_plan_changes(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (fingerprint text, operation text, from_plan_hash text, to_plan_hash text, changed_at timestamptz,
               before_calls bigint, before_estimated_calls double precision,
               before_p50_ms double precision, before_p95_ms double precision,
               after_calls bigint, after_estimated_calls double precision,
               after_p50_ms double precision, after_p95_ms double precision)
LANGUAGE sql STABLE
SET search_path = ''
-- The nearest calls come from walking spans_name_start in time order and stopping at 2,000; a bitmap scan would
-- fetch every call of the hour first (the planner underestimates how many match the operation's name).
SET enable_bitmapscan = off
AS $$
    WITH epochs AS MATERIALIZED (
        SELECT * FROM monitoring.get_plan_epochs(p_from, p_to)
    ),
    changes AS (
        SELECT cur.fingerprint, cur.operation, prev.plan_hash AS from_hash, cur.plan_hash AS to_hash,
               cur.since AS changed_at,
               greatest(prev.since, cur.since - interval '1 hour') AS before_from,
               least(p_to, cur.until, cur.since + interval '1 hour') AS after_to
          FROM epochs AS cur
          JOIN epochs AS prev ON prev.fingerprint = cur.fingerprint AND prev.until = cur.since
         WHERE cur.since >= p_from AND cur.since < p_to
    ),
    calls AS (
        SELECT c.fingerprint, c.changed_at, false AS after, b.duration_ms, b.w
          FROM changes AS c
          CROSS JOIN LATERAL (
                SELECT s.duration_ms, coalesce(s.adjusted_count, 1) AS w
                  FROM monitoring.spans AS s
                 WHERE s.name = c.operation AND s.start_ts >= c.before_from AND s.start_ts < c.changed_at
                   AND s.attributes ? 'sieve.db.execute_s'
                   AND s.attributes ->> 'sieve.db.fingerprint' = c.fingerprint
                 ORDER BY s.start_ts DESC
                 LIMIT 2000
          ) AS b
        UNION ALL
        SELECT c.fingerprint, c.changed_at, true, a.duration_ms, a.w
          FROM changes AS c
          CROSS JOIN LATERAL (
                SELECT s.duration_ms, coalesce(s.adjusted_count, 1) AS w
                  FROM monitoring.spans AS s
                 WHERE s.name = c.operation AND s.start_ts >= c.changed_at AND s.start_ts < c.after_to
                   AND s.attributes ? 'sieve.db.execute_s'
                   AND s.attributes ->> 'sieve.db.fingerprint' = c.fingerprint
                 ORDER BY s.start_ts
                 LIMIT 2000
          ) AS a
    ),
    ranked AS (
        SELECT k.*,
               sum(k.w) OVER (PARTITION BY k.fingerprint, k.changed_at, k.after ORDER BY k.duration_ms
                              ROWS UNBOUNDED PRECEDING) AS cum,
               sum(k.w) OVER (PARTITION BY k.fingerprint, k.changed_at, k.after) AS total
          FROM calls AS k
    ),
    stats AS (
        SELECT r.fingerprint, r.changed_at, r.after, count(*) AS kept, max(r.total) AS estimated,
               min(r.duration_ms) FILTER (WHERE r.cum >= 0.5 * r.total) AS p50,
               min(r.duration_ms) FILTER (WHERE r.cum >= 0.95 * r.total) AS p95
          FROM ranked AS r
         GROUP BY r.fingerprint, r.changed_at, r.after
    )
    SELECT c.fingerprint, c.operation, c.from_hash, c.to_hash, c.changed_at,
           coalesce(b.kept, 0), coalesce(b.estimated, 0), b.p50, b.p95,
           coalesce(a.kept, 0), coalesce(a.estimated, 0), a.p50, a.p95
      FROM changes AS c
      LEFT JOIN stats AS b ON b.fingerprint = c.fingerprint AND b.changed_at = c.changed_at AND NOT b.after
      LEFT JOIN stats AS a ON a.fingerprint = c.fingerprint AND a.changed_at = c.changed_at AND a.after
     ORDER BY c.changed_at, c.fingerprint
$$;

-- N+1: the same statement shape executed p_min_count times or more, one after another, under one parent span of
-- one trace (Sentry's N+1 DB span detector counts 5 repetitions by default). "One after another": the repeated
-- spans' durations add up to no more than the time from the first one's start to the last one's end, so they did
-- not overlap. Operation spans and the drivers' statement spans both carry the fingerprint: a loop of repository
-- calls shows as repeated operation spans under the caller's span; a loop inside one repository call as repeated
-- statement spans under the operation's when statement spans are on, else as the operation's own count of it
-- (sieve.db.repeats, the most times one shape ran in it: the operation is the loop's parent, its fingerprint the
-- shape, its statements' time the loop's). The tail sampler's detector (pipeline/sampling/nplusone.py) applies the
-- same rules and marks the spans it found (sieve.db.n_plus_one) in the traces it keeps; `marked` says so.
-- p_marked_only reads only those, through the partial index spans_n_plus_one.
CREATE OR REPLACE FUNCTION monitoring.get_n_plus_one_groups(p_from timestamptz, p_to timestamptz,
                                                            p_min_count integer DEFAULT 5,
                                                            p_min_total_ms double precision DEFAULT 0,
                                                            p_limit integer DEFAULT 20,
                                                            p_marked_only boolean DEFAULT false)
RETURNS TABLE (parent_name text, fingerprint text, operation text, statement text, occurrences bigint,
               traces bigint, executions_p50 double precision, executions_max integer,
               total_ms_p50 double precision, total_ms_max double precision, total_ms_sum double precision,
               marked boolean, example_trace_ids text[], first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql STABLE
SET search_path = ''
SET work_mem = '64MB'  -- the grouping of a busy hour's statement spans stays in memory
AS $$
    WITH candidates AS (
        -- Only what the grouping needs: a busy hour has hundreds of thousands of statement spans.
        SELECT s.trace_id, s.span_id, s.parent_span_id, s.attributes ->> 'sieve.db.fingerprint' AS fp, s.start_ts,
               s.duration_ms, s.name, s.attributes ? 'sieve.db.n_plus_one' AS marked,
               (s.attributes ->> 'sieve.db.repeats')::integer AS repeats,
               (s.attributes ->> 'sieve.db.execute_s')::double precision * 1000 AS execute_ms
          FROM monitoring.spans AS s
         WHERE NOT p_marked_only
           AND s.start_ts >= p_from AND s.start_ts < p_to
           AND s.attributes ? 'sieve.db.fingerprint' AND s.name <> 'EXPLAIN' AND s.parent_span_id IS NOT NULL
        UNION ALL
        SELECT s.trace_id, s.span_id, s.parent_span_id, s.attributes ->> 'sieve.db.fingerprint', s.start_ts,
               s.duration_ms, s.name, true, (s.attributes ->> 'sieve.db.repeats')::integer,
               (s.attributes ->> 'sieve.db.execute_s')::double precision * 1000
          FROM monitoring.spans AS s
         WHERE p_marked_only
           AND s.attributes ? 'sieve.db.n_plus_one'                 -- spans_n_plus_one
           AND s.start_ts >= p_from AND s.start_ts < p_to
           AND s.attributes ? 'sieve.db.fingerprint' AND s.parent_span_id IS NOT NULL
    ),
    by_parent AS MATERIALIZED (
        -- One pass: the sibling loops, and in the same groups the operations that looped inside themselves (a few
        -- rows; kept as arrays so the candidates are read once).
        SELECT c.trace_id, c.parent_span_id, c.fp, count(*) AS n, sum(c.duration_ms) AS total_ms,
               min(c.start_ts) AS first_ts, max(c.name) AS operation, bool_or(c.marked) AS marked,
               count(*) >= greatest(p_min_count, 2)
                   AND sum(c.duration_ms) >= p_min_total_ms
                   -- sequential: no two of them overlapped (0.01 ms per span of rounding allowed)
                   AND sum(c.duration_ms) <= extract(epoch FROM max(c.start_ts
                                                                    + make_interval(secs => c.duration_ms / 1000))
                                                               - min(c.start_ts)) * 1000 + 0.01 * count(*)
                   AS is_loop,
               array_agg(c.span_id) FILTER (WHERE c.repeats >= greatest(p_min_count, 2)) AS inner_ids,
               array_agg(c.repeats) FILTER (WHERE c.repeats >= greatest(p_min_count, 2)) AS inner_n,
               array_agg(coalesce(c.execute_ms, c.duration_ms))
                   FILTER (WHERE c.repeats >= greatest(p_min_count, 2)) AS inner_ms,
               array_agg(c.start_ts) FILTER (WHERE c.repeats >= greatest(p_min_count, 2)) AS inner_ts,
               array_agg(c.marked) FILTER (WHERE c.repeats >= greatest(p_min_count, 2)) AS inner_marked
          FROM candidates AS c
         GROUP BY c.trace_id, c.parent_span_id, c.fp
        HAVING count(*) >= greatest(p_min_count, 2) OR bool_or(c.repeats >= greatest(p_min_count, 2))
    ),
    reps AS (
        SELECT g.trace_id, g.parent_span_id, g.fp, g.n, g.total_ms, g.first_ts, g.operation, g.marked
          FROM by_parent AS g
         WHERE g.is_loop
        UNION ALL
        -- Loops inside one operation: the operation is their parent; no operation name (the statements are no
        -- spans). Not when its statements are spans of their own under it: the loop above counts them.
        SELECT g.trace_id, i.span_id, g.fp, i.n, i.ms, i.ts, NULL, i.marked
          FROM by_parent AS g
         CROSS JOIN LATERAL unnest(g.inner_ids, g.inner_n, g.inner_ms, g.inner_ts, g.inner_marked)
                    AS i(span_id, n, ms, ts, marked)
         WHERE g.inner_ids IS NOT NULL AND i.ms >= p_min_total_ms
           AND NOT EXISTS (SELECT 1 FROM by_parent AS x
                            WHERE x.is_loop AND x.trace_id = g.trace_id AND x.parent_span_id = i.span_id
                              AND x.fp = g.fp)
    ),
    named AS (
        SELECT r.*, coalesce(p.name, '(parent not kept)') AS parent_name
          FROM reps AS r
          LEFT JOIN LATERAL (
                SELECT ps.name FROM monitoring.spans AS ps
                 WHERE ps.trace_id = r.trace_id AND ps.span_id = r.parent_span_id   -- spans_key
                   AND ps.start_ts >= r.first_ts - interval '1 day' AND ps.start_ts <= r.first_ts
                 LIMIT 1
          ) AS p ON true
    ),
    grouped AS (
        SELECT n.parent_name, n.fp, max(n.operation) AS operation, count(*) AS occurrences,
               count(DISTINCT n.trace_id) AS traces,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY n.n) AS n_p50, max(n.n)::integer AS n_max,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY n.total_ms) AS total_p50, max(n.total_ms) AS total_max,
               sum(n.total_ms) AS total_sum, bool_or(n.marked) AS marked,
               (array_agg(n.trace_id ORDER BY n.total_ms DESC))[1:3] AS examples,
               min(n.first_ts) AS first_seen, max(n.first_ts) AS last_seen
          FROM named AS n
         GROUP BY n.parent_name, n.fp
         ORDER BY sum(n.total_ms) DESC, n.fp
         LIMIT least(greatest(p_limit, 0), 1000)
    )
    SELECT g.parent_name, g.fp, g.operation, st.statement, g.occurrences, g.traces, g.n_p50, g.n_max,
           g.total_p50, g.total_max, g.total_sum, g.marked, g.examples, g.first_seen, g.last_seen
      FROM grouped AS g
      LEFT JOIN LATERAL (
            -- The normalised statement, from an operation span of the fingerprint in the example trace (the
            -- drivers' own spans carry the raw text, which may hold literals: never shown).
            SELECT x.attributes ->> 'sieve.db.statement' AS statement
              FROM monitoring.spans AS x
             WHERE x.trace_id = g.examples[1] AND x.attributes ->> 'sieve.db.fingerprint' = g.fp
               AND x.attributes ? 'sieve.db.statement'
               AND x.start_ts >= g.first_seen - interval '1 day' AND x.start_ts < p_to
             LIMIT 1
      ) AS st ON true
     ORDER BY g.total_sum DESC, g.fp
$$;

-- Who may call them: the reader (Grafana's data source, `sieve slow-lookups`).
REVOKE ALL ON FUNCTION
    monitoring.get_plan_epochs(timestamptz, timestamptz),
    monitoring.get_slow_lookup_groups(timestamptz, timestamptz, double precision, integer),
    monitoring.get_plan_changes(timestamptz, timestamptz),
    monitoring.get_n_plus_one_groups(timestamptz, timestamptz, integer, double precision, integer, boolean)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    monitoring.get_plan_epochs(timestamptz, timestamptz),
    monitoring.get_slow_lookup_groups(timestamptz, timestamptz, double precision, integer),
    monitoring.get_plan_changes(timestamptz, timestamptz),
    monitoring.get_n_plus_one_groups(timestamptz, timestamptz, integer, double precision, integer, boolean)
TO sieve_reader;

RESET ROLE;
