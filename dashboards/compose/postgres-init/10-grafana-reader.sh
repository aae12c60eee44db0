#!/bin/sh
# First start of the compose stack's Postgres (docker-entrypoint-initdb.d): a login role for Grafana's
# Postgres data source that can only read, by membership of `sieve_reader`.
#
# sieve_reader itself belongs to the migrations (sql/migrations/0002_monitoring_roles.sql creates it NOLOGIN when
# it does not exist; 0004_monitoring_grants.sql grants it SELECT on the monitoring tables, sql/functions/ EXECUTE
# on the read functions). This script runs before the demo service applies the migrations, so it creates the group role
# the same way (idempotently, NOLOGIN) for the membership to attach to; the migrations then find it and grant.
# The password comes from the environment (GRAFANA_PG_PASSWORD, set in .env), never from a file in the repository.
set -eu

: "${GRAFANA_PG_USER:=grafana}"  # the user of the Postgres data source (dashboards/provisioning/datasources)
: "${GRAFANA_PG_PASSWORD:?GRAFANA_PG_PASSWORD must be set (see .env.example)}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v grafana_user="$GRAFANA_PG_USER" -v grafana_password="$GRAFANA_PG_PASSWORD" <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'sieve_reader') THEN
        CREATE ROLE sieve_reader NOLOGIN;
    END IF;
END
$$;
-- psql interpolates :"name" as a quoted identifier and :'value' as a quoted literal (no SQL injection).
CREATE ROLE :"grafana_user" LOGIN PASSWORD :'grafana_password' IN ROLE sieve_reader;
-- Read-only by default too: whatever this role is later granted, its sessions cannot write.
ALTER ROLE :"grafana_user" SET default_transaction_read_only = on;
SQL
