-- Roles for the PostgreSQL test run (and a model for production):
--   albedo_owner  owns the schema and runs the migrations;
--   albedo_app    what the app connects as: no ownership, no BYPASSRLS, so row-level
--                 security binds it. The migrations grant it data access.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'albedo_owner') THEN
    CREATE ROLE albedo_owner LOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'albedo_app') THEN
    CREATE ROLE albedo_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END
$$;
ALTER SCHEMA public OWNER TO albedo_owner;
-- Whatever database this runs in (CI's `test`, a developer's own): GRANT takes no
-- expression, so the name comes from current_database() through a DO block.
DO $$
BEGIN
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO albedo_app', current_database());
END
$$;
