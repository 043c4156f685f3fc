#!/bin/sh
# The app's role: it logs in, owns nothing and cannot bypass row-level security.
# The migrations (run as the owner) grant it data access on every table they create.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE albedo_app LOGIN PASSWORD '${APP_DB_PASSWORD}' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
GRANT CONNECT ON DATABASE ${POSTGRES_DB} TO albedo_app;
SQL
