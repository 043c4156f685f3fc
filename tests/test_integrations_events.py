"""emit(): validation, who is owed an event, and that an event exists only if its
transaction committed."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.integrations.catalogue import EVENTS
from app.integrations.events import emit
from app.integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.integrations.service import Actor, create_endpoint
from tenants.context import NoTenantError, activate
from tests.fakes.receiver import start_receiver
from tests.fakes.webhooks import app_allowing

DOC = Path(__file__).resolve().parent.parent / "docs" / "webhook-events.md"


@pytest.fixture
def receiver():
    r = start_receiver()
    yield r
    r.close()


@pytest.fixture
def hooks_app(app, migrated, receiver):
    with app_allowing(migrated, receiver.port) as application:
        yield application


def test_every_catalogued_event_is_documented_with_its_version():
    text = DOC.read_text()
    documented = dict(re.findall(r"^### `([a-z_.]+)` \(version (\d+)\)", text, re.M))
    for name, kind in EVENTS.items():
        assert documented.get(name) == str(kind.version), f"{name} is not documented"
    assert set(EVENTS) == {
        "execution.succeeded", "execution.failed", "license.created", "license.suspended",
        "license.revoked", "license.expired", "license.validation_failed",
        "machine.activated", "customer.created", "subscription.updated", "quota.exceeded",
        "usage.threshold_reached", "spending_limit.reached", "credits.low",
        "credits.top_up_failed"}


def test_emit_refuses_unknown_types_missing_fields_and_no_tenant(ctx, acme):
    with activate(acme.info):
        with pytest.raises(ValueError, match="unknown event type"):
            emit("license.exploded", {"license_id": "x"})
        with pytest.raises(ValueError, match="lacks license_id"):
            emit("license.created", {"status": "active"})
        with pytest.raises(ValueError, match="test events"):
            emit("webhook.test", {})
    with pytest.raises(NoTenantError):
        emit("license.created", {"license_id": "x"})


def test_the_audience_reseller_endpoints_get_all_customer_endpoints_their_own(
        hooks_app, acme, globex, make_user, receiver):
    team = Actor(make_user(acme, "team@acme.example", role="RESELLER"), "RESELLER")
    ann = Actor(make_user(acme, "ann@acme.example"), "USER")
    bob = Actor(make_user(acme, "bob@acme.example"), "USER")
    globex_ann = Actor(make_user(globex, "ann@acme.example"), "USER")
    with hooks_app.app_context():
        with activate(acme.info):
            everything, _ = create_endpoint(team, receiver.url("/team"))
            create_endpoint(team, receiver.url("/team-licenses"),
                            event_types=["license.created"])
            anns, _ = create_endpoint(ann, receiver.url("/ann"))
            create_endpoint(bob, receiver.url("/bob"))
            assert anns.owner_user_id == ann.user_id and everything.owner_user_id is None
            db.session.commit()
        with activate(globex.info):
            create_endpoint(globex_ann, receiver.url("/globex-ann"))
            db.session.commit()
        with activate(acme.info):
            emit("license.created", {"license_id": "l1"}, owner_user_id=ann.user_id)
            emit("quota.exceeded", {"user_id": str(bob.user_id), "quota": "runs"},
                 owner_user_id=bob.user_id)
            emit("customer.created", {"user_id": "u", "email": "x@example.com"})
            db.session.commit()
            rows = db.session.execute(
                select(WebhookEvent.type, WebhookDelivery.url)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)).all()
    got = sorted((t, url.rsplit("/", 1)[1]) for t, url in rows)
    assert got == sorted([
        ("license.created", "team"), ("license.created", "team-licenses"),
        ("license.created", "ann"),
        ("quota.exceeded", "team"), ("quota.exceeded", "bob"),
        ("customer.created", "team"),
    ])


def test_an_event_whose_transaction_rolls_back_is_never_sent(hooks_app, acme, make_user,
                                                             receiver):
    from tests.fakes.webhooks import drain

    team = Actor(make_user(acme, "team@acme.example", role="RESELLER"), "RESELLER")
    with hooks_app.app_context(), activate(acme.info):
        create_endpoint(team, receiver.url())
        db.session.commit()
        emit("license.created", {"license_id": "rolled-back"})
        db.session.rollback()
        assert db.session.scalars(select(WebhookEvent)).all() == []
    drain(hooks_app)
    assert receiver.requests == []


def test_event_data_is_stored_as_plain_json(ctx, acme):
    from datetime import UTC, datetime

    license_id = uuid.uuid4()
    with activate(acme.info):
        event = emit("license.created", {
            "license_id": license_id, "expires_at": datetime(2027, 1, 2, 3, 4, tzinfo=UTC)})
        db.session.commit()
        stored = db.session.get(WebhookEvent, event.id)
        assert stored.data == {"license_id": str(license_id),
                               "expires_at": "2027-01-02T03:04:00Z"}
        assert db.session.scalars(select(WebhookEndpoint)).all() == []
