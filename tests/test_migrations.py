"""Migrations are the only way the schema changes: one head, and models and revisions agree."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import Migrate

from app.extensions import db


def test_a_single_head(ctx):
    config = ctx.extensions["migrate"].migrate.get_config(
        directory=ctx.extensions["migrate"].directory)
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several migration heads: {heads}"


def test_models_and_migrations_agree(ctx, owner_engine):
    # The database was built by the migrations (conftest); autogenerate must find nothing.
    with owner_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models differ from migrations: {diff}"


def test_the_database_is_at_the_head_revision(ctx, owner_engine):
    config = ctx.extensions["migrate"].migrate.get_config(
        directory=ctx.extensions["migrate"].directory)
    head = ScriptDirectory.from_config(config).get_current_head()
    with owner_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head


def test_no_create_all_in_the_application():
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    offenders = [str(p) for folder in ("app", "tenants", "jobs")
                 for p in (root / folder).rglob("*.py") if "create_all(" in p.read_text()]
    assert offenders == []
    assert isinstance(Migrate, type)
