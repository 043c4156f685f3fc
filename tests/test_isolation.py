"""Row-level isolation, ORM layer (both databases) and database layer (trigger / RLS)."""

import pytest
import sqlalchemy as sa
from sqlalchemy import delete, func, select, update

from app.auth.models import User
from app.extensions import db
from tenants import NoTenantError, activate, cross_tenant
from tenants.isolation import CrossTenantWriteError, TenantIdImmutableError


@pytest.fixture
def lookalikes(acme, globex, make_user):
    """Two tenants with the same emails, names and roles."""
    for site in (acme, globex):
        make_user(site, "alice@example.com", name="Alice", role="USER")
        make_user(site, "bob@example.com", name="Bob", role="USER")
        make_user(site, "owner@example.com", name="Owner", role="RESELLER")
    return acme, globex


def test_queries_see_only_the_current_tenant(ctx, lookalikes):
    acme, globex = lookalikes
    with activate(acme.info):
        users = db.session.scalars(select(User)).all()
        assert {u.tenant_id for u in users} == {acme.info.id}
        assert len(users) == 3
        # Joins, aggregates and explicit filters on the other tenant stay inside acme.
        assert db.session.scalar(select(func.count()).select_from(User)) == 3
        assert db.session.scalars(select(User).where(User.tenant_id == globex.info.id)).all() == []
    with activate(globex.info):
        assert {u.tenant_id for u in db.session.scalars(select(User))} == {globex.info.id}


def test_get_by_primary_key_of_another_tenant_finds_nothing(ctx, lookalikes):
    acme, globex = lookalikes
    with activate(globex.info):
        globex_alice = db.session.scalars(select(User).filter_by(email="alice@example.com")).one()
        globex_alice_id = globex_alice.id
    db.session.remove()
    with activate(acme.info):
        assert db.session.get(User, globex_alice_id) is None


def test_a_query_without_a_tenant_raises(ctx, lookalikes):
    with pytest.raises(NoTenantError):
        db.session.scalars(select(User)).all()
    with pytest.raises(NoTenantError):
        db.session.execute(update(User).values(name="x"))
    with pytest.raises(NoTenantError):
        db.session.execute(delete(User))


def test_cross_tenant_access_needs_an_explicit_named_opt_in(ctx, lookalikes):
    rows = db.session.scalars(select(User).execution_options(
        cross_tenant="test reads every tenant")).all()
    assert len(rows) == 6
    with cross_tenant("test counts every tenant"):
        assert db.session.scalar(select(func.count()).select_from(User)) == 6
    with pytest.raises(ValueError):
        db.session.scalars(select(User).execution_options(cross_tenant="")).all()
    with pytest.raises(ValueError), cross_tenant(" "):
        pass


def test_bulk_update_and_delete_stay_in_the_tenant(ctx, lookalikes):
    acme, globex = lookalikes
    with activate(acme.info):
        db.session.execute(update(User).values(name="Renamed"))
        db.session.execute(delete(User).where(User.email == "bob@example.com"))
        db.session.commit()
    with activate(globex.info):
        names = sorted(u.name for u in db.session.scalars(select(User)))
        assert names == ["Alice", "Bob", "Owner"]
    with activate(acme.info):
        names = sorted(u.name for u in db.session.scalars(select(User)))
        assert names == ["Renamed", "Renamed"]


def test_new_rows_are_stamped_with_the_current_tenant(ctx, acme):
    with activate(acme.info):
        user = User(email="new@example.com", role="USER")
        db.session.add(user)
        db.session.commit()
        assert user.tenant_id == acme.info.id


def test_a_foreign_tenant_insert_is_refused(ctx, acme, globex):
    with activate(acme.info):
        db.session.add(User(email="sneaky@example.com", role="USER", tenant_id=globex.info.id))
        with pytest.raises(CrossTenantWriteError):
            db.session.flush()
        db.session.rollback()


def test_an_insert_without_a_tenant_is_refused(ctx, acme):
    db.session.add(User(email="orphan@example.com", role="USER"))
    with pytest.raises(NoTenantError):
        db.session.flush()
    db.session.rollback()


def test_tenant_id_change_is_refused_by_the_orm(ctx, lookalikes):
    acme, globex = lookalikes
    with activate(acme.info):
        alice = db.session.scalars(select(User).filter_by(email="alice@example.com")).one()
        alice.tenant_id = globex.info.id
        with pytest.raises(TenantIdImmutableError):
            db.session.flush()
        db.session.rollback()


def test_tenant_id_change_is_refused_by_the_database(ctx, lookalikes, owner_engine):
    acme, globex = lookalikes
    # Raw SQL as the schema owner, cross-tenant switched on: only the trigger stands in the way.
    with pytest.raises(sa.exc.DatabaseError, match="tenant_id is immutable"), \
            owner_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT set_config('app.cross_tenant', 'on', true)"))
        conn.execute(sa.text("UPDATE users SET tenant_id = :g WHERE tenant_id = :a"),
                     {"g": _db_uuid(conn, globex.info.id), "a": _db_uuid(conn, acme.info.id)})


def _db_uuid(conn, value):
    # SQLAlchemy's Uuid type stores 32 hex digits on SQLite and a native uuid on PostgreSQL.
    return value.hex if conn.dialect.name == "sqlite" else str(value)


def test_tenant_scoped_loads_through_relationships_and_joins(ctx, lookalikes):
    from app.email.models import OutboundEmail

    acme, globex = lookalikes
    for site in (acme, globex):
        with activate(site.info):
            db.session.add(OutboundEmail(template="welcome", to_address="alice@example.com",
                                         from_name="x", from_address="x@example.com",
                                         subject=f"for {site.info.slug}", html_body="",
                                         text_body=""))
            db.session.commit()
    with activate(acme.info):
        rows = db.session.execute(
            select(User.email, OutboundEmail.subject)
            .join(OutboundEmail, OutboundEmail.to_address == User.email)).all()
        assert rows and {subject for _, subject in rows} == {"for acme"}


def test_switching_tenant_inside_one_transaction_writes_to_the_new_tenant(ctx, acme, globex):
    # A transaction begun under acme (a read), then a write under globex in the same
    # transaction: both layers must see globex (PostgreSQL's policy checks the insert).
    with activate(acme.info):
        db.session.scalars(select(User)).all()
    with activate(globex.info):
        user = User(email="late@example.com", role="USER")
        db.session.add(user)
        db.session.commit()
        assert user.tenant_id == globex.info.id
