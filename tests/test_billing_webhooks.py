"""Stripe webhooks: signatures, exactly-once effects, routing, order independence, retries."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime

import pytest

from app import clock
from app.billing.models import Invoice, StripeEvent, Subscription
from app.email.models import OutboundEmail
from tests import billing_support
from tests.billing_support import (
    PREVIOUS_SECRET,
    WEBHOOK_PATH,
    add_plan,
    buy,
    connect,
    count,
    post_event,
    signed,
)
from tests.conftest import host_client

# Shared fixtures (pytest finds fixtures by module attribute).
fake_stripe = billing_support.fake_stripe
app = billing_support.app


@pytest.fixture
def sold(app, platform, acme, globex, make_user, fake_stripe):
    """Acme and Globex each sell a look-alike Pro plan to a look-alike customer; Acme's
    customer has paid on Acme's connected account."""
    acme_account = connect(app, acme, fake_stripe)
    globex_account = connect(app, globex, fake_stripe)
    acme_plan, _ = add_plan(app, acme, fake_stripe, agents=10)
    globex_plan, _ = add_plan(app, globex, fake_stripe, agents=10)
    acme_user = make_user(acme, "pat@customer.example")
    globex_user = make_user(globex, "pat@customer.example")
    paid = buy(app, acme, fake_stripe, acme_plan, acme_user, "pat@customer.example",
               acme_account)
    return {"acme_account": acme_account, "globex_account": globex_account,
            "acme_user": acme_user, "globex_user": globex_user, "paid": paid,
            "globex_plan": globex_plan}


def _freeze_clock() -> int:
    """Stop the app's clock on a whole second, so ±300/301 s are exact."""
    now = int(time.time())
    clock.set_clock(lambda: datetime.fromtimestamp(now, tz=UTC))
    return now


def _emails(app, template: str) -> int:
    return count(app, OutboundEmail, template=template)


def test_the_same_event_posted_100_times_has_one_effect_and_one_email(
        app, platform, sold, fake_stripe):
    paid = sold["paid"]
    event = fake_stripe.event("invoice.paid", paid["invoice"], account=sold["acme_account"])
    outcomes = [post_event(platform.client, event).get_json()["outcome"] for _ in range(100)]
    assert outcomes[0] == "processed"
    assert set(outcomes[1:]) == {"duplicate"}
    assert count(app, StripeEvent) == 1
    assert count(app, Invoice) == 1
    assert count(app, Subscription) == 1
    assert _emails(app, "billing_payment_succeeded") == 1


def test_the_same_event_from_10_threads_has_one_effect_and_one_email(
        app, platform, sold, fake_stripe):
    paid = sold["paid"]
    event = fake_stripe.event("invoice.paid", paid["invoice"], account=sold["acme_account"])
    body, headers = signed(event)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        client = host_client(app, platform.host)
        try:
            for _ in range(10):
                response = client.post(WEBHOOK_PATH, data=body, headers=headers)
                assert response.status_code == 200, response.get_data(as_text=True)
                outcomes.append(response.get_json()["outcome"])
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(outcomes) == 100
    assert outcomes.count("processed") == 1
    assert count(app, StripeEvent) == 1
    assert count(app, Invoice) == 1
    assert _emails(app, "billing_payment_succeeded") == 1


@pytest.mark.parametrize("case", ["tampered", "wrong_secret", "missing_header", "too_old",
                                  "too_new", "garbage_header"])
def test_bad_signatures_answer_400_and_store_nothing(app, platform, sold, fake_stripe, case):
    event = fake_stripe.event("invoice.paid", sold["paid"]["invoice"],
                              account=sold["acme_account"])
    now = _freeze_clock()
    body, headers = signed(event, timestamp={"too_old": now - 301,
                                             "too_new": now + 301}.get(case, now))
    if case == "tampered":
        body = body.replace(b'"invoice.paid"', b'"invoice.payment_failed"')
    elif case == "wrong_secret":
        body, headers = signed(event, secret="whsec_someone_else")
    elif case == "missing_header":
        headers.pop("Stripe-Signature")
    elif case == "garbage_header":
        headers["Stripe-Signature"] = "t=abc,v1=zz"
    response = platform.client.post(WEBHOOK_PATH, data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in (
        "invalid_signature", "missing_signature", "signature_expired")
    assert count(app, StripeEvent) == 0
    assert count(app, Invoice) == 0
    assert _emails(app, "billing_payment_succeeded") == 0


def test_previous_secret_and_edges_of_the_tolerance_are_accepted(
        app, platform, sold, fake_stripe):
    now = _freeze_clock()
    for offset, secret in ((-300, PREVIOUS_SECRET), (300, None)):
        event = fake_stripe.event("invoice.paid", sold["paid"]["invoice"],
                                  account=sold["acme_account"])
        kwargs = {"timestamp": now + offset}
        if secret:
            kwargs["secret"] = secret
        response = post_event(platform.client, event, **kwargs)
        assert response.status_code == 200, response.get_data(as_text=True)
    assert count(app, StripeEvent) == 2


SUBSCRIPTION_EVENTS = ("customer.subscription.created", "customer.subscription.updated",
                       "customer.subscription.deleted")


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_subscription_events_in_any_order_end_in_stripes_state(
        app, platform, acme, sold, fake_stripe, order):
    from app.billing.limits import entitled_subscription
    from tenants.context import activate

    account = sold["acme_account"]
    sub = sold["paid"]["subscription"]
    # The history Stripe went through: created (active), updated (past_due), deleted.
    snapshots = [dict(sub, status="active"), dict(sub, status="past_due"),
                 dict(sub, status="canceled")]
    fake_stripe.update_subscription(sub["id"], account, status="canceled")
    events = [fake_stripe.event(SUBSCRIPTION_EVENTS[i], snapshots[i], account=account)
              for i in range(3)]
    for i in order:
        assert post_event(platform.client, events[i]).status_code == 200
    with app.app_context(), activate(acme.info):
        from sqlalchemy import select

        from app.extensions import db

        row = db.session.scalars(select(Subscription)).one()
        assert row.status == "canceled"
        assert entitled_subscription(sold["acme_user"]) is None


def test_a_connect_event_reaches_the_right_reseller_only(
        app, platform, acme, globex, sold, fake_stripe):
    from sqlalchemy import select

    from app.extensions import db
    from tenants.context import activate

    event = fake_stripe.event("checkout.session.completed", sold["paid"]["session"],
                              account=sold["acme_account"])
    assert post_event(platform.client, event).get_json()["outcome"] == "processed"
    with app.app_context(), activate(acme.info):
        rows = db.session.scalars(select(Subscription)).all()
        assert [r.user_id for r in rows] == [sold["acme_user"]]
        assert rows[0].stripe_account_id == sold["acme_account"]
    with app.app_context(), activate(globex.info):
        assert db.session.scalars(select(Subscription)).all() == []


def test_an_event_claiming_another_resellers_tenant_is_ignored(
        app, platform, globex, sold, fake_stripe):
    # Acme's checkout replayed as if from Globex's account: the object is not on Globex's
    # account, and even its metadata names Acme, so nothing lands anywhere.
    paid = sold["paid"]
    sub = fake_stripe.create_subscription(
        "cus_x", fake_stripe.add_price(), sold["globex_account"],
        metadata=paid["subscription"]["metadata"])
    event = fake_stripe.event("customer.subscription.created", sub,
                              account=sold["globex_account"])
    assert post_event(platform.client, event).get_json()["outcome"] == "ignored_unrouted"
    assert count(app, Subscription) == 0


def test_an_unknown_connected_account_is_acknowledged_and_ignored(
        app, platform, sold, fake_stripe):
    event = fake_stripe.event("invoice.paid", sold["paid"]["invoice"], account="acct_unknown")
    response = post_event(platform.client, event)
    assert response.status_code == 200
    assert response.get_json()["outcome"] == "ignored_unknown_account"
    assert count(app, Invoice) == 0
    assert count(app, StripeEvent, outcome="ignored_unknown_account") == 1


def test_payment_failed_email_goes_out_in_the_resellers_branding(
        app, platform, acme, sold, fake_stripe):
    account = sold["acme_account"]
    failed = fake_stripe.create_invoice(sold["paid"]["subscription"]["id"], account,
                                        status="open", email="pat@customer.example")
    event = fake_stripe.event("invoice.payment_failed", failed, account=account)
    assert post_event(platform.client, event).get_json()["outcome"] == "processed"
    from sqlalchemy import select

    from app.extensions import db
    from tenants.context import activate

    with app.app_context(), activate(acme.info):
        email = db.session.scalars(select(OutboundEmail)).one()
        assert email.template == "billing_payment_failed"
        assert email.to_address == "pat@customer.example"
        assert email.from_name == "Acme Agents"
        assert "19.00 USD" in email.text_body
        assert "Albedo" not in email.html_body + email.text_body + email.subject
        assert failed["hosted_invoice_url"] in email.text_body


def test_reconciliation_replays_missed_events_once_and_resyncs_subscriptions(
        app, platform, acme, globex, sold, fake_stripe):
    from sqlalchemy import select

    from app.extensions import db
    from jobs.enqueue import enqueue
    from jobs.worker import run_worker
    from tenants.context import activate

    account = sold["acme_account"]
    # The first webhook got through; the invoice.paid one was lost.
    delivered = fake_stripe.event("checkout.session.completed", sold["paid"]["session"],
                                  account=account)
    assert post_event(platform.client, delivered).get_json()["outcome"] == "processed"
    fake_stripe.event("invoice.paid", sold["paid"]["invoice"], account=account)
    # Globex's look-alike event on its own account must stay Globex's business (none here).
    fake_stripe.update_subscription(sold["paid"]["subscription"]["id"], account,
                                    status="past_due")

    with app.app_context():
        enqueue("billing.reconcile", 72, tenant_id=None)
    run_worker(app, ["default", "emails"], burst=True, simple=True)
    with app.app_context():
        enqueue("billing.reconcile", 72, tenant_id=None, job_id="second-run")
    run_worker(app, ["default", "emails"], burst=True, simple=True)

    assert count(app, StripeEvent) == 2
    assert count(app, StripeEvent, source="reconcile") == 1
    assert count(app, Invoice) == 1
    assert _emails(app, "billing_payment_succeeded") == 1
    with app.app_context(), activate(acme.info):
        assert db.session.scalars(select(Subscription.status)).one() == "past_due"
    with app.app_context(), activate(globex.info):
        assert db.session.scalars(select(Subscription)).all() == []
        assert db.session.scalars(select(Invoice)).all() == []
