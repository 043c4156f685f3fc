"""Backup and restore: `flask albedo backup PATH` / `flask albedo restore PATH`.

On PostgreSQL a seeded database is backed up, restored into a fresh database, and that copy
must work as production would use it: the app role reads through row-level security, a
license validates and an agent runs there.
"""

from __future__ import annotations

import sqlite3
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app import create_app
from tests.agents_support import fake, make_agent, run_agents_worker  # noqa: F401
from tests.conftest import POSTGRES, host_client
from tests.licensing_support import make_license, validate


def _cli(application, *args: str):
    return application.test_cli_runner().invoke(args=["albedo", *args])


@pytest.mark.skipif(POSTGRES, reason="the SQLite backup path (PostgreSQL: the test below)")
def test_sqlite_online_backup_and_restore(app, acme, globex, tmp_path, migrated):
    target = tmp_path / "backup.sqlite3"
    done = _cli(app, "backup", str(target))
    assert done.exit_code == 0, done.output
    assert "backup written" in done.output
    again = _cli(app, "backup", str(target))
    assert again.exit_code != 0 and "exists" in again.output  # never overwritten

    fresh = tmp_path / "restored.sqlite3"
    restored_settings = migrated.with_overrides(database_url=f"sqlite:///{fresh}",
                                                migrations_database_url=f"sqlite:///{fresh}")
    restored_app = create_app(restored_settings)
    done = _cli(restored_app, "restore", str(target))
    assert done.exit_code == 0, done.output
    with sqlite3.connect(fresh) as conn:
        slugs = {row[0] for row in conn.execute("SELECT slug FROM tenants")}
    assert slugs == {"acme", "globex"}
    # A second restore without --replace refuses to overwrite what is there.
    refused = _cli(restored_app, "restore", str(target))
    assert refused.exit_code != 0 and "not empty" in refused.output
    assert _cli(restored_app, "restore", "--replace", str(target)).exit_code == 0
    # Not a backup: refused before anything is touched.
    junk = tmp_path / "junk.sqlite3"
    sqlite3.connect(junk).close()
    assert "not an Albedo backup" in _cli(restored_app, "restore", "--replace",
                                          str(junk)).output
    with restored_app.app_context():
        from app.extensions import db

        db.engine.dispose()


def _admin_url(owner_url: str, database: str) -> sa.URL:
    return make_url(owner_url).set(username="postgres", password=None, database=database)


@pytest.fixture
def fresh_database(migrated):
    """An empty database with the same roles, as a restore target, dropped afterwards."""
    name = f"albedo_restore_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_admin_url(migrated.migrations_database_url, "postgres"),
                             isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"cannot create a database as postgres for the restore: {exc}")
    inside = sa.create_engine(_admin_url(migrated.migrations_database_url, name),
                              isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    app_role = make_url(migrated.database_url).username
    owner_role = make_url(migrated.migrations_database_url).username
    with inside.connect() as conn:  # as .ci/postgres-setup.sql does for a new database
        conn.execute(sa.text(f"ALTER SCHEMA public OWNER TO {owner_role}"))
        conn.execute(sa.text(f"GRANT CONNECT ON DATABASE {name} TO {app_role}"))
    inside.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES, reason="needs PostgreSQL (DATABASE_URL)")
def test_postgres_backup_restores_into_a_fresh_database_with_rls(
        app, migrated, acme, globex, make_user, fake, fresh_database, tmp_path):
    # Seed: two look-alike tenants, each with a customer, a license and an agent.
    users, licenses = {}, {}
    seeded = create_app(migrated.with_overrides(extra={
        **migrated.extra, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-platform"}))
    for site in (acme, globex):
        users[site.info.slug] = make_user(site, "ann@example.com")
        licenses[site.info.slug] = make_license(seeded, site)
        make_agent(seeded, site, users[site.info.slug])
    with seeded.app_context():
        from app.extensions import db

        db.engine.dispose()

    archive = tmp_path / "albedo.dump"
    done = _cli(app, "backup", str(archive))
    assert done.exit_code == 0, done.output

    restored_settings = migrated.with_overrides(
        database_url=str(make_url(migrated.database_url).set(database=fresh_database)
                         .render_as_string(hide_password=False)),
        migrations_database_url=str(make_url(migrated.migrations_database_url)
                                    .set(database=fresh_database)
                                    .render_as_string(hide_password=False)),
        extra={**migrated.extra, "OPENAI_BASE_URL": fake.base_url,
               "OPENAI_API_KEY": "sk-platform", "ALBEDO_AGENTS_RETRY_BACKOFF": "0"})
    restored = create_app(restored_settings)
    done = _cli(restored, "restore", str(archive))
    assert done.exit_code == 0, done.output

    # Row-level security came back ENABLED and FORCED, and binds the app role.
    app_engine = sa.create_engine(restored_settings.database_url, poolclass=sa.pool.NullPool)
    with app_engine.connect() as conn:
        flags = conn.execute(sa.text(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class "
            "WHERE relname IN ('users', 'licenses', 'agents', 'agent_executions')")).scalars()
        assert list(flags) == [True] * 4
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 0
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, false)"),
                     {"t": str(acme.info.id)})
        emails = conn.execute(sa.text("SELECT email, tenant_id FROM users")).all()
        assert [(e, t) for e, t in emails] == [("ann@example.com", acme.info.id)]
        # Every tenant's rows came back (the dump ran with the cross-tenant setting).
        conn.execute(sa.text("SELECT set_config('app.cross_tenant', 'on', false)"))
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM licenses")).scalar() == 2
        assert conn.execute(sa.text("SELECT current_user")).scalar() == make_url(
            restored_settings.database_url).username
    app_engine.dispose()

    # A license validates there, and an agent runs there.
    with restored.app_context():
        from app.redis import get_redis

        get_redis().flushdb()  # nothing cached from the original may help the copy
    site = host_client(restored, acme.host)
    answer = validate(type("S", (), {"client": site})(), licenses["acme"].key)
    assert answer["code"] == "VALID"

    from app.agents import executions
    from app.agents.models import Execution
    from app.agents.service import Caller, get_agent_by_slug
    from app.extensions import db
    from tenants.context import activate

    with restored.app_context(), activate(acme.info):
        caller = Caller(users["acme"], "USER")
        agent = get_agent_by_slug(caller, "helper")
        execution, _ = executions.start_execution(caller, agent, input="hello again")
        execution_id = execution.id
    run_agents_worker(restored)
    with restored.app_context(), activate(acme.info):
        assert db.session.get(Execution, execution_id).status == "succeeded"
    with restored.app_context():
        db.session.remove()
        db.engine.dispose()
