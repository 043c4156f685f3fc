"""Prepaid credits bought through Stripe Checkout (credited once), automatic top-ups, and
credits.low; two tenants with look-alike customers."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from sqlalchemy import select

from app import clock
from app.billing import credits, ledger
from app.billing.rebilling_models import CreditTopUp, CustomerAccount
from app.extensions import db
from app.integrations.models import WebhookEvent
from tenants.context import activate
from tests import billing_support
from tests.billing_support import connect, fake_stripe, post_event  # noqa: F401  (fixture)
from tests.rebilling_support import set_book

app = billing_support.app


def _balance(app, site, user_id) -> int:
    with app.app_context(), activate(site.info):
        return db.session.scalars(select(CustomerAccount.credit_balance_micro).where(
            CustomerAccount.user_id == user_id)).one()


def test_a_checkout_top_up_is_credited_once_to_the_right_customer(
        app, fake_stripe, acme, globex, make_user, api_caller):
    fake = fake_stripe
    account = connect(app, acme, fake)
    connect(app, globex, fake)
    set_book(app, acme, "eur")
    set_book(app, globex, "eur")
    ann = api_caller(acme, email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")
    answer = acme.client.post("/api/v1/billing/credits/checkout", json={"amount": 2500},
                              headers=ann.headers)
    assert answer.status_code == 201, answer.get_json()
    session_id = answer.get_json()["session_id"]
    created = fake.calls_to("POST", "/v1/checkout/sessions")[-1]
    assert created.headers["Stripe-Account"] == account
    assert created.params["mode"] == "payment"
    paid = fake.complete_payment(session_id, account)
    event = fake.event("checkout.session.completed", paid, account=account)
    first = post_event(acme.client, event)
    assert first.status_code == 200 and first.get_json()["outcome"] == "processed"
    # A replayed event, and the same session in a new event: credited once.
    assert post_event(acme.client, event).get_json()["outcome"] == "duplicate"
    again = fake.event("checkout.session.completed", paid, account=account)
    assert post_event(acme.client, again).get_json()["outcome"] == "processed"
    assert _balance(app, acme, ann.user_id) == 2500 * 10**6
    with app.app_context(), activate(acme.info):
        assert len(db.session.scalars(select(CreditTopUp)).all()) == 1
    mine = acme.client.get("/api/v1/billing/spending", headers=ann.headers).get_json()
    assert (mine["credit_balance"], mine["currency"]) == (2500, "eur")
    theirs = globex.client.get("/api/v1/billing/spending", headers=gus.headers).get_json()
    assert theirs["credit_balance"] == 0


def test_credits_low_is_announced_once_and_the_saved_card_tops_up(
        app, fake_stripe, acme, make_user):
    fake = fake_stripe
    account = connect(app, acme, fake)
    set_book(app, acme, kind="execution", per_execution_minor=100)
    ann = make_user(acme, "ann@example.com")
    customer = fake._new_customer({"email": "ann@example.com"}, account)["id"]
    with app.app_context(), activate(acme.info):
        credits.update_settings(ann, {"credits_enabled": True, "auto_topup_below": 250,
                                      "auto_topup_amount": 1000})
        credits.grant(ann, 400)
        db.session.scalars(select(CustomerAccount)).one().stripe_customer_id = customer
        db.session.commit()
        for _ in range(3):  # 400 → 300 → 200 (low) → 100 (still low: announced once)
            execution = SimpleNamespace(
                id=uuid.uuid4(), caller_user_id=ann, prompt_tokens=5, completion_tokens=5,
                cost_micros=1, agent_id=uuid.uuid4(), model="m", version_number=1,
                finished_at=clock.now(), source="api", license_id=None, api_key_id=None,
                started_at=clock.now())
            from app.billing import spending

            spending.admit(spending.prepare(ann, execution.agent_id, "m", "hi", "", 10),
                           execution.id)
            ledger.on_execution_finished(execution, "succeeded")()
            db.session.commit()
        low = db.session.scalars(select(WebhookEvent).where(
            WebhookEvent.type == "credits.low")).all()
        assert [e.data["balance"] for e in low] == [200]
        assert credits.auto_top_up(ann) == "credited"
        db.session.commit()
        assert credits.auto_top_up(ann) == "not_needed"
    assert _balance(app, acme, ann) == 1100 * 10**6
    intent = fake.calls_to("POST", "/v1/payment_intents")
    assert len(intent) == 1 and intent[0].headers["Stripe-Account"] == account
