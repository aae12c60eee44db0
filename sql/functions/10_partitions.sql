-- Partitions: one per UTC day and table, named <table>_pYYYYMMDD, made ahead of time and dropped after the
-- retention (DROP, not DELETE). monitoring.maintain() is what the sink calls (at start, then periodically; or
-- pg_cron); the underscore functions are internal: only the owner may call them (maintain() and the insert
-- functions do, as SECURITY DEFINER).
--
-- Repeatable: applied after the numbered migrations and again whenever this file changes (pipeline/migrate.py).
-- Keep it idempotent: CREATE OR REPLACE, a DROP FUNCTION IF EXISTS before a changed signature, grants at the end.

SET LOCAL ROLE sieve_owner;

CREATE OR REPLACE FUNCTION monitoring._ensure_partitions(p_table text, p_from date, p_to date)
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

CREATE OR REPLACE FUNCTION monitoring._drop_partitions_before(p_table text, p_before date)
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

-- Creates the partitions the days of [p_min, p_max] need (normally none: maintain() makes them ahead).
CREATE OR REPLACE FUNCTION monitoring._partitions_for(p_table text, p_min timestamptz, p_max timestamptz,
                                                      p_cutoff timestamptz)
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

-- Partition maintenance, called by the sink at start and then periodically (or by pg_cron): makes the partitions
-- of today and the next p_days_ahead days, records the retention, and drops partitions older than it.
CREATE OR REPLACE FUNCTION monitoring.maintain(p_retention_days integer, p_days_ahead integer DEFAULT 2)
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

-- Who may call these: the writer runs the maintenance; the helpers are the owner's alone.
REVOKE ALL ON FUNCTION
    monitoring._ensure_partitions(text, date, date),
    monitoring._drop_partitions_before(text, date),
    monitoring._partitions_for(text, timestamptz, timestamptz, timestamptz),
    monitoring.maintain(integer, integer)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.maintain(integer, integer) TO sieve_writer;

RESET ROLE;
