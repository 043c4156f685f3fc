"""Row-level isolation, database layer: PostgreSQL's row-level security (PostgreSQL only)."""

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from app.auth.models import User
from app.extensions import db
from tests.conftest import POSTGRES

pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="row-level security is PostgreSQL's; set DATABASE_URL to run these")


def _tenant_tables():
    from tenants.isolation import TenantScoped

    return sorted(m.class_.__tablename__ for m in db.Model.registry.mappers
                  if issubclass(m.class_, TenantScoped))


def test_every_tenant_table_has_forced_rls_and_a_policy(ctx):
    tables = _tenant_tables()
    assert "users" in tables and "emails" in tables
    rows = db.session.execute(sa.text(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
        "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
        "FROM pg_class c WHERE c.relname = ANY(:t)"), {"t": tables}).all()
    assert {r[0] for r in rows} == set(tables)
    for name, enabled, forced, policies in rows:
        assert enabled and forced and policies >= 1, name


def test_the_app_role_is_neither_owner_nor_bypassrls(ctx):
    me, bypass, superuser = db.session.execute(sa.text(
        "SELECT current_user, rolbypassrls, rolsuper FROM pg_roles "
        "WHERE rolname = current_user")).one()
    owners = set(db.session.execute(sa.text(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE tablename = ANY(:t)"),
        {"t": _tenant_tables()}).scalars())
    assert me not in owners, f"the app connects as the table owner {me}"
    assert not bypass and not superuser


def test_raw_sql_as_the_app_role_sees_only_the_tenant_set(app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    make_user(globex, "alice@example.com")
    with app.app_context(), db.engine.connect() as conn, conn.begin():
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"),
                     {"t": str(acme.info.id)})
        tenant_ids = set(conn.execute(sa.text("SELECT tenant_id FROM users")).scalars())
        assert tenant_ids == {acme.info.id}
        # Writing a row for another tenant is refused by the WITH CHECK policy.
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            conn.execute(sa.text(
                "INSERT INTO users (id, tenant_id, email, name, role, is_active, "
                "session_version, created_at, updated_at) VALUES (gen_random_uuid(), :g, "
                "'x@example.com', '', 'USER', true, 0, now(), now())"),
                {"g": str(globex.info.id)})


def test_no_tenant_set_means_no_rows(app, acme, make_user):
    make_user(acme, "alice@example.com")
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 0


def test_a_pooled_connection_starts_each_transaction_with_no_tenant(app, acme, make_user):
    from tenants import activate

    make_user(acme, "alice@example.com")
    with app.app_context():
        engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1,
                                  max_overflow=0)
        with engine.connect() as conn:
            with conn.begin():
                conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"),
                             {"t": str(acme.info.id)})
                assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 1
            with conn.begin():
                assert conn.execute(sa.text(
                    "SELECT current_setting('app.tenant_id', true)")).scalar() in ("", None)
                assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar() == 0
        engine.dispose()
        # And through the ORM session: each transaction sets the tenant afresh.
        with activate(acme.info):
            assert len(db.session.scalars(select(User)).all()) == 1
            db.session.commit()
        raw = db.session.execute(sa.text("SELECT current_setting('app.tenant_id', true)"))
        assert raw.scalar() in ("", None)


def test_every_table_with_a_tenant_id_column_has_forced_rls_and_a_policy(ctx):
    """Not only the TenantScoped models: any table holding a tenant_id (domains, Stripe
    events, whatever comes next) must be bound by row-level security."""
    rows = db.session.execute(sa.text(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
        "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
        "FROM information_schema.columns col "
        "JOIN pg_class c ON c.relname = col.table_name "
        "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = col.table_schema "
        "WHERE col.table_schema = 'public' AND col.column_name = 'tenant_id' "
        "AND c.relkind = 'r'")).all()
    names = {r[0] for r in rows}
    assert {"users", "domains", "billing_stripe_events"} <= names
    unbound = [name for name, enabled, forced, policies in rows
               if not (enabled and forced and policies >= 1)]
    assert unbound == []


def test_domains_unverified_ones_are_their_tenants_alone(app, acme, globex):
    from tenants.models import Domain, Tenant
    from tenants.service import add_domain, mark_domain_verified

    with app.app_context():
        add_domain(db.session.get(Tenant, acme.info.id), "hidden.acme-corp.example")
        mark_domain_verified(add_domain(db.session.get(Tenant, acme.info.id),
                                        "www.acme-corp.example"))
        db.session.commit()
    with app.app_context(), db.engine.connect() as conn, conn.begin():
        # No tenant (host resolution): only verified hostnames, no unverified token.
        seen = set(conn.execute(sa.text("SELECT hostname FROM domains")).scalars())
        assert seen == {"www.acme-corp.example"}
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"),
                     {"t": str(globex.info.id)})
        assert "hidden.acme-corp.example" not in set(
            conn.execute(sa.text("SELECT hostname FROM domains")).scalars())
        # Another tenant can neither change acme's domains nor add one in acme's name.
        changed = conn.execute(sa.text(
            "UPDATE domains SET is_primary = true WHERE hostname = 'www.acme-corp.example'"))
        assert changed.rowcount == 0
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            conn.execute(sa.text(
                "INSERT INTO domains (id, tenant_id, hostname, is_primary, "
                "verification_token, created_at, updated_at) VALUES (gen_random_uuid(), :a, "
                "'evil.example', false, 'x', now(), now())"), {"a": str(acme.info.id)})
    with app.app_context():
        from tenants import activate

        with activate(acme.info):
            assert {d.hostname for d in db.session.scalars(select(Domain))} == {
                "hidden.acme-corp.example", "www.acme-corp.example"}


def test_routed_stripe_events_are_their_tenants(app, acme, globex):
    with app.app_context(), db.engine.connect() as conn, conn.begin():
        conn.execute(sa.text("SELECT set_config('app.cross_tenant', 'on', true)"))
        for event_id, tenant in (("evt_acme", acme.info.id), ("evt_none", None)):
            conn.execute(sa.text(
                "INSERT INTO billing_stripe_events (id, stripe_event_id, type, tenant_id, "
                "outcome, source, received_at, payload) VALUES (gen_random_uuid(), :e, "
                "'invoice.paid', :t, 'processed', 'webhook', now(), '{}')"),
                {"e": event_id, "t": str(tenant) if tenant else None})
    with app.app_context(), db.engine.connect() as conn, conn.begin():
        assert set(conn.execute(sa.text(
            "SELECT stripe_event_id FROM billing_stripe_events")).scalars()) == {"evt_none"}
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"),
                     {"t": str(globex.info.id)})
        assert set(conn.execute(sa.text(
            "SELECT stripe_event_id FROM billing_stripe_events")).scalars()) == {"evt_none"}
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"),
                     {"t": str(acme.info.id)})
        assert set(conn.execute(sa.text(
            "SELECT stripe_event_id FROM billing_stripe_events")).scalars()) == {
            "evt_acme", "evt_none"}
