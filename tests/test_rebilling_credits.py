"""Prepaid credits bought through Stripe Checkout (credited once), automatic top-ups, and
credits.low; two tenants with look-alike customers."""

from __future__ import annotations

from sqlalchemy import select

from app.billing.rebilling_models import AutoTopUp, CreditTopUp, CustomerAccount
from app.extensions import db
from app.integrations.models import WebhookEvent
from tenants.context import activate
from tests import billing_support
from tests.billing_support import connect, fake_stripe, post_event  # noqa: F401  (fixture)
from tests.jobs_helpers import run_jobs
from tests.rebilling_support import charge_once, set_book, topped_up_customer

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
    ann, _card, account = topped_up_customer(app, acme, fake, make_user, balance=400)
    for _ in range(3):  # 400 → 300 → 200 (low) → 100 (still low: announced once)
        charge_once(app, acme, ann)
    with app.app_context(), activate(acme.info):
        low = db.session.scalars(select(WebhookEvent).where(
            WebhookEvent.type == "credits.low")).all()
        assert [e.data["balance"] for e in low] == [200]
    run_jobs(app, "default")  # the top-up opened by the crossing (app/billing/auto_top_ups.py)
    run_jobs(app, "default")  # nothing left: its job was carried once
    with app.app_context(), activate(acme.info):
        assert [t.status for t in db.session.scalars(select(AutoTopUp))] == ["succeeded"]
    assert _balance(app, acme, ann) == 1100 * 10**6
    intent = fake.calls_to("POST", "/v1/payment_intents")
    assert len(intent) == 1 and intent[0].headers["Stripe-Account"] == account
