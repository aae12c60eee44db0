-- The Postgres metrics sink, part 3: who may use the schema and its tables.
--
--   PUBLIC        nothing: no schema usage, no table access, no EXECUTE on any monitoring function.
--   sieve_writer  USAGE on the schema; EXECUTE on the insert functions and monitoring.maintain(). No table
--                 privileges: it cannot SELECT what it wrote, nor write other than through the functions.
--   sieve_reader  USAGE on the schema; SELECT on the tables and the metrics_raw view; EXECUTE on the read
--                 functions. It cannot insert, nor call the insert functions.
--   anon, authenticated (Supabase, when present): nothing, even if the schema is later exposed through the API.
--   service_role (Supabase, when present): a member of sieve_writer, so server-side code can write through RPC.
--
-- EXECUTE on functions is granted next to each function, in sql/functions/ (re-applied with them). A function
-- the owner creates is executable by nobody else until then: 0002 revokes PUBLIC's default EXECUTE, and the
-- block below revokes the platform roles' automatic grants.

REVOKE ALL ON SCHEMA monitoring FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA monitoring FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA monitoring FROM PUBLIC;

GRANT USAGE ON SCHEMA monitoring TO sieve_writer, sieve_reader;

GRANT SELECT ON monitoring.metric_points, monitoring.events, monitoring.spans, monitoring.config,
    monitoring.metrics_raw
TO sieve_reader;

-- Platform roles, only where they exist (a plain Postgres has none of them).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON SCHEMA monitoring FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA monitoring FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA monitoring FROM %I', r);
            -- Platforms auto-grant new objects in exposed schemas; undo that for what the owner creates later
            -- (the functions of sql/functions/ among them).
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE sieve_owner IN SCHEMA monitoring '
                           'REVOKE ALL ON TABLES FROM %I', r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE sieve_owner IN SCHEMA monitoring '
                           'REVOKE ALL ON FUNCTIONS FROM %I', r);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT sieve_writer TO service_role;
    END IF;
END
$$;
