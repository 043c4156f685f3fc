"""Stripe webhooks under pressure: concurrent first events for one subscription, an object
Stripe no longer has, and a burst from one IP past the shared per-IP budget."""

from __future__ import annotations

import contextlib
import threading

import pytest

from app.billing.models import StripeEvent, Subscription
from tests import billing_support
from tests.billing_support import WEBHOOK_PATH, add_plan, buy, connect, count, post_event, signed
from tests.conftest import POSTGRES, host_client

fake_stripe = billing_support.fake_stripe
app = billing_support.app


@pytest.fixture
def sold(app, platform, acme, globex, make_user, fake_stripe):
    """Acme sells a plan on its connected account; its customer has just paid (no event has
    arrived yet). Globex sells a look-alike plan to a look-alike customer."""
    acme_account = connect(app, acme, fake_stripe)
    connect(app, globex, fake_stripe)
    acme_plan, _ = add_plan(app, acme, fake_stripe)
    add_plan(app, globex, fake_stripe)
    acme_user = make_user(acme, "pat@customer.example")
    make_user(globex, "pat@customer.example")
    paid = buy(app, acme, fake_stripe, acme_plan, acme_user, "pat@customer.example",
               acme_account)
    return {"account": acme_account, "paid": paid, "user": acme_user}


def test_concurrent_first_events_for_one_subscription_upsert(
        app, platform, sold, fake_stripe, monkeypatch):
    """Two different events about one new subscription, applied at the same moment: both
    answer 200, one subscription row, both events recorded as processed."""
    import app.billing.webhooks as webhooks

    paid, account = sold["paid"], sold["account"]
    events = [fake_stripe.event("customer.subscription.created", paid["subscription"],
                                account=account),
              fake_stripe.event("invoice.paid", paid["invoice"], account=account),
              fake_stripe.event("checkout.session.completed", paid["session"],
                                account=account)]
    if POSTGRES:
        # Hold every event right before its subscription insert until all are there, so the
        # inserts race (SQLite serialises writers at the event's own insert instead).
        barrier = threading.Barrier(len(events), timeout=10)
        real = webhooks.apply_subscription

        def racing(*args, **kwargs):
            # A retry after losing the race passes alone (the barrier is broken by then).
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            return real(*args, **kwargs)

        monkeypatch.setattr(webhooks, "apply_subscription", racing)
    answers: list = []
    errors: list[BaseException] = []

    def deliver(event) -> None:
        try:
            body, headers = signed(event)
            answers.append(host_client(app, platform.host).post(WEBHOOK_PATH, data=body,
                                                                headers=headers))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert [a.status_code for a in answers] == [200] * len(events), [
        a.get_data(as_text=True) for a in answers]
    assert {a.get_json()["outcome"] for a in answers} == {"processed"}
    assert count(app, Subscription) == 1
    assert count(app, StripeEvent, outcome="processed") == len(events)


def test_an_object_stripe_no_longer_has_is_a_handled_outcome(app, platform, sold, fake_stripe):
    gone = dict(sold["paid"]["subscription"], id="sub_deleted_since")
    event = fake_stripe.event("customer.subscription.updated", gone, account=sold["account"])
    response = post_event(platform.client, event)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["outcome"] == "stripe_resource_missing"
    assert count(app, StripeEvent, outcome="stripe_resource_missing") == 1
    assert count(app, Subscription) == 0
    # Stripe's redelivery of it is a duplicate, not a second attempt.
    assert post_event(platform.client, event).get_json()["outcome"] == "duplicate"


def test_a_server_error_on_the_refetch_still_fails_so_stripe_retries(
        app, platform, sold, fake_stripe):
    event = fake_stripe.event("customer.subscription.updated", sold["paid"]["subscription"],
                              account=sold["account"])
    fake_stripe.fail_next("GET", "/v1/subscriptions", 500, 500, 500, 500)
    response = post_event(platform.client, event)
    assert response.status_code == 500
    assert count(app, StripeEvent) == 0  # nothing recorded: the redelivery applies it
    assert post_event(platform.client, event).get_json()["outcome"] == "processed"


def test_150_signed_events_from_one_ip_are_all_accepted(app, platform, sold, fake_stripe):
    client = platform.client
    # The shared per-IP budget (100/minute) is on: the same IP is refused elsewhere…
    statuses = {client.get("/api/v1/tenant").status_code for _ in range(101)}
    assert 429 in statuses
    # …but the webhook has its own budget: a burst of Stripe's signed events all land.
    answers = [post_event(client, fake_stripe.event("customer.created",
                                                    {"id": f"cus_{n}", "object": "customer"}))
               for n in range(150)]
    assert [a.status_code for a in answers] == [200] * 150
    assert {a.get_json()["outcome"] for a in answers} == {"ignored_type"}
