"""Alembic environment for Flask-Migrate.

Migrations run as the *owner* of the schema (MIGRATIONS_DATABASE_URL, default DATABASE_URL);
the app connects with DATABASE_URL. When the two roles differ on PostgreSQL, the app role is
granted data access (never ownership) after every upgrade, so row-level security binds it.
"""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import create_engine, make_url, pool

config = context.config
fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

settings = current_app.extensions["albedo.settings"]
target_db = current_app.extensions["migrate"].db
OWNER_URL = settings.migrations_database_url or settings.database_url
config.set_main_option("sqlalchemy.url",
                       make_url(OWNER_URL).render_as_string(hide_password=False)
                       .replace("%", "%%"))


def get_metadata():
    if hasattr(target_db, "metadatas"):
        return target_db.metadatas[None]
    return target_db.metadata


def app_role_to_grant(connection) -> str | None:
    if connection.dialect.name != "postgresql":
        return None
    app_user = make_url(settings.database_url).username
    owner = connection.exec_driver_sql("SELECT current_user").scalar()
    return app_user if app_user and app_user != owner else None


def render_item(type_, obj, autogen_context):
    """Revisions spell column types in plain SQLAlchemy, never the app's own classes."""
    from app.models import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline():
    context.configure(url=OWNER_URL, target_metadata=get_metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    conf_args.setdefault("render_item", render_item)
    conf_args.setdefault("compare_type", True)
    engine = create_engine(OWNER_URL, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=get_metadata(), **conf_args)
        with context.begin_transaction():
            context.run_migrations()
            role = app_role_to_grant(connection)
            if role:
                from tenants.migration_ops import grant_app_role

                grant_app_role(connection, role)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
