#!/bin/sh
# First start of the database only (docker-entrypoint-initdb.d): a read-only role for
# Grafana, so a dashboard query can never change data.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v reader_password="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password';
GRANT pg_read_all_data TO grafana_reader;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
SQL
