"""Shared helpers for the billing tests: an app wired to the fake Stripe, signed posts."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from app import create_app
from tests.fakes.stripe_server import FakeStripe, start_stripe

WEBHOOK_SECRET = "whsec_test_current_secret"
PREVIOUS_SECRET = "whsec_test_previous_secret"
WEBHOOK_PATH = "/api/v1/billing/stripe/webhook"


def stripe_settings(migrated, fake: FakeStripe, **more: str):
    extra = {**dict(migrated.extra), "STRIPE_SECRET_KEY": "sk_test_albedo",
             "STRIPE_WEBHOOK_SECRETS": f"{WEBHOOK_SECRET},{PREVIOUS_SECRET}",
             "STRIPE_API_BASE": fake.api_base, "STRIPE_APPLICATION_FEE_PERCENT": "12.5",
             **more}
    return migrated.with_overrides(extra=extra)


def stripe_app(migrated, fake: FakeStripe):
    return create_app(stripe_settings(migrated, fake))


def dispose(application) -> None:
    with application.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


def signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET,
           timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    header = FakeStripe.sign(body, secret, timestamp=timestamp or int(time.time()))
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}


def post_event(client, event: dict[str, Any], **kwargs: Any):
    body, headers = signed(event, **kwargs)
    return client.post(WEBHOOK_PATH, data=body, headers=headers)


def connect(app, site, fake: FakeStripe) -> str:
    """Give ``site`` a connected account that has finished onboarding."""
    from app.billing.models import ConnectAccount
    from app.extensions import db
    from tenants.context import activate

    account = fake.create_account(charges_enabled=True)
    with app.app_context(), activate(site.info):
        db.session.add(ConnectAccount(stripe_account_id=account, charges_enabled=True,
                                      payouts_enabled=True, details_submitted=True))
        db.session.commit()
    return account


def add_plan(app, site, fake: FakeStripe, code: str = "pro", amount: int = 1900,
             **limits: Any):
    """A sellable plan of ``site`` backed by a price on the fake; returns (plan id, price)."""
    from app.billing.plans import create_plan
    from app.extensions import db
    from tenants.context import activate

    price = fake.add_price(unit_amount=amount)
    with app.app_context(), activate(site.info):
        plan = create_plan(code, code.title(), stripe_price_id=price, amount_minor=amount,
                           **limits)
        db.session.commit()
        return plan.id, price


def buy(app, site, fake: FakeStripe, plan_id, user_id, email: str,
        account: str | None) -> dict[str, Any]:
    """Start checkout through the service, then pay on the fake's page."""
    from app.billing.checkout import start_checkout
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        started = start_checkout(plan_id, user_id, email)
    assert started.stripe_account_id == account
    return fake.complete_checkout(started.session_id, account, email=email)


def count(app, model, **filters: Any) -> int:
    """Rows of ``model`` in every tenant (the test looks from above)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from tenants.context import cross_tenant

    with app.app_context(), cross_tenant("test counts rows in every tenant"):
        stmt = select(func.count()).select_from(model).filter_by(**filters)
        return db.session.scalar(stmt)


def client_for(application, site):
    from tests.conftest import host_client

    return host_client(application, site.host)


@pytest.fixture
def fake_stripe():
    """A fresh fake Stripe per test (import this fixture into a test module)."""
    fake = start_stripe()
    yield fake
    fake.close()


@pytest.fixture
def billing_app(app, migrated, fake_stripe):
    """The test's empty database, in an app with Stripe configured against the fake."""
    application = stripe_app(migrated, fake_stripe)
    yield application
    dispose(application)


@pytest.fixture
def app(app, migrated, fake_stripe):
    """Override of conftest's ``app`` for modules whose tenants, clients and keys should all
    live in the Stripe-configured app (assign ``app = billing_support.app`` in the module)."""
    application = stripe_app(migrated, fake_stripe)
    yield application
    dispose(application)
