"""Row-level isolation, layer two: what migrations install in the database itself.

Alembic revisions call :func:`isolate_tenant_table` right after creating a tenant-scoped
table. On PostgreSQL it enables and FORCES row-level security (FORCE: the owner is bound
too) with one policy reading the tenant the app sets per transaction, plus a trigger that
refuses any change of tenant_id. On SQLite, which has no RLS, only the trigger is installed;
the ORM guard is the isolation there.

Kept deliberately stable: old revisions import it, so its output for a table never changes.
"""

from __future__ import annotations

from alembic import op

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION albedo_refuse_tenant_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION USING MESSAGE = 'tenant_id is immutable on ' || TG_TABLE_NAME,
    ERRCODE = 'check_violation';
END;
$$ LANGUAGE plpgsql
"""

POLICY_PREDICATE = (
    "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid "
    "OR current_setting('app.cross_tenant', true) = 'on'"
)


def install_functions() -> None:
    """Once, in the first revision: the trigger function PostgreSQL tables share."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)


def isolate_tenant_table(table: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} "
                   f"USING ({POLICY_PREDICATE}) WITH CHECK ({POLICY_PREDICATE})")
        op.execute(f"CREATE TRIGGER {table}_tenant_id_immutable BEFORE UPDATE ON {table} "
                   "FOR EACH ROW WHEN (NEW.tenant_id IS DISTINCT FROM OLD.tenant_id) "
                   "EXECUTE FUNCTION albedo_refuse_tenant_change()")
    elif dialect == "sqlite":
        op.execute(f"CREATE TRIGGER {table}_tenant_id_immutable BEFORE UPDATE OF tenant_id "
                   f"ON {table} WHEN NEW.tenant_id IS NOT OLD.tenant_id "
                   "BEGIN SELECT RAISE(ABORT, 'tenant_id is immutable'); END")


def release_tenant_table(table: str) -> None:
    """The downgrade of :func:`isolate_tenant_table` (dropping the table drops the rest)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"DROP TRIGGER IF EXISTS {table}_tenant_id_immutable"
               + (f" ON {table}" if op.get_bind().dialect.name == "postgresql" else ""))


def grant_app_role(connection, role: str) -> None:
    """Give the app's role data access (not ownership) to everything migrations created.

    Run by migrations/env.py after every upgrade, on the migration connection.
    """
    quoted = connection.dialect.identifier_preparer.quote(role)
    for statement in (
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
    ):
        connection.exec_driver_sql(statement)
