-- The Postgres metrics sink, part 1: roles, the `monitoring` schema and its one-row configuration.
-- (Tables: 0003. Grants on schema and tables: 0004. Functions and their grants: sql/functions/.)
--
-- Roles (cluster-wide, created idempotently and NOLOGIN, so a migration never creates a way in):
--   sieve_owner   owns the schema, tables and functions; the identity SECURITY DEFINER functions run as.
--                 Never logs in and never belongs to an application.
--   sieve_writer  may only EXECUTE the insert functions (and the partition maintenance the sink runs).
--                 No table privileges at all.
--   sieve_reader  may only read: SELECT on the tables and EXECUTE on the read functions (Grafana's data source).
--
-- To let a program log in, create a login role that is a member of one of them, for example
--   CREATE ROLE sieve_app LOGIN PASSWORD '...' IN ROLE sieve_writer;
--   CREATE ROLE grafana   LOGIN PASSWORD '...' IN ROLE sieve_reader;
-- (or, for a throwaway setup, ALTER ROLE sieve_writer LOGIN PASSWORD '...').
--
-- Everything is created as sieve_owner (SET LOCAL ROLE below), so a superuser owns nothing the sink uses and
-- the functions' privileges are exactly the owner's.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['sieve_owner', 'sieve_writer', 'sieve_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database of the same cluster migrated at the same moment
            END;
        END IF;
    END LOOP;
    -- A non-superuser migrator (Supabase's `postgres`) must be a member of sieve_owner to create objects as it.
    IF NOT pg_catalog.pg_has_role(current_user, 'sieve_owner', 'MEMBER') THEN
        EXECUTE format('GRANT sieve_owner TO %I', current_user);
    END IF;
END
$$;

-- Functions are executable by PUBLIC by default; make sure none of the owner's functions ever is.
ALTER DEFAULT PRIVILEGES FOR ROLE sieve_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

CREATE SCHEMA monitoring AUTHORIZATION sieve_owner;
REVOKE ALL ON SCHEMA monitoring FROM PUBLIC;

SET LOCAL ROLE sieve_owner;

-- One row of settings the SQL side needs at insert time. `retention_days` is written by monitoring.maintain()
-- (the sink passes its configured retention); inserts skip rows older than it so that a replayed spool cannot
-- resurrect a partition retention already dropped.
CREATE TABLE monitoring.config (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    retention_days integer NOT NULL DEFAULT 30 CHECK (retention_days BETWEEN 1 AND 3650),
    max_batch_rows integer NOT NULL DEFAULT 10000 CHECK (max_batch_rows BETWEEN 1 AND 1000000),
    -- How far ahead of the server clock a timestamp may be (client clock skew); later rows are rejected.
    max_future     interval NOT NULL DEFAULT interval '1 day'
);
INSERT INTO monitoring.config DEFAULT VALUES;

RESET ROLE;
