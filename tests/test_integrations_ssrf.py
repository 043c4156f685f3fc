"""Webhook URLs go through the SSRF guard as in production: refused when an endpoint is
created, and refused again on every attempt (DNS can change after creation)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.errors import ApiError
from app.extensions import db
from app.integrations import signing
from app.integrations.events import emit
from app.integrations.models import WebhookDelivery, WebhookEndpoint
from app.integrations.secrets import seal
from app.integrations.service import Actor, create_endpoint
from tenants.context import activate
from tests.fakes.receiver import start_receiver
from tests.fakes.webhooks import app_allowing, drain


@pytest.fixture
def listener():
    r = start_receiver()
    yield r
    r.close()


def _urls(port: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/hook", "http://10.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data/", f"http://[::1]:{port}/hook",
            f"http://localhost:{port}/hook"]  # a hostname that resolves to loopback


def test_blocked_urls_are_refused_when_an_endpoint_is_created(app, acme, make_user, listener):
    team = Actor(make_user(acme, "team@acme.example", role="RESELLER"), "RESELLER")
    with app.app_context(), activate(acme.info):
        for url in _urls(listener.port):
            with pytest.raises(ApiError) as err:
                create_endpoint(team, url)
            assert (err.value.status, err.value.code) == (422, "url_not_allowed"), url
    assert listener.requests == []


def test_a_blocked_url_is_never_called_even_if_it_got_in(app, acme, globex, listener):
    # As if each URL resolved to a public address when it was saved and changed since.
    with app.app_context(), activate(acme.info):
        for url in _urls(listener.port):
            db.session.add(WebhookEndpoint(url=url, secret_encrypted=seal(signing.new_secret()),
                                           event_types=[], enabled=True))
        db.session.commit()
        emit("license.created", {"license_id": "l1"})
        db.session.commit()
    drain(app)
    assert listener.requests == []
    with app.app_context(), activate(acme.info):
        deliveries = db.session.scalars(select(WebhookDelivery)).all()
        assert len(deliveries) == 5
        for delivery in deliveries:
            assert delivery.status == "failed", delivery.url
            assert delivery.attempts[0].error.startswith("blocked:")
            assert delivery.attempts[0].status_code is None


def test_a_redirect_to_loopback_is_not_followed(app, migrated, acme, make_user, listener):
    inner = start_receiver()
    try:
        listener.script = [(307, {"Location": inner.url("/steal")}, b"")]
        team = Actor(make_user(acme, "team@acme.example", role="RESELLER"), "RESELLER")
        # Only the first hop is allowed through the guard, as a test receiver.
        with app_allowing(migrated, listener.port) as allowed:
            with allowed.app_context(), activate(acme.info):
                create_endpoint(team, listener.url())
                emit("license.created", {"license_id": "l1"})
                db.session.commit()
            drain(allowed)
            with allowed.app_context(), activate(acme.info):
                delivery = db.session.scalars(select(WebhookDelivery)).one()
                assert delivery.status == "failed"
                assert "loopback" in delivery.attempts[0].error
        assert len(listener.requests) == 1
        assert inner.requests == []
    finally:
        inner.close()
