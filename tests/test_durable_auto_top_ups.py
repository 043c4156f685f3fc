"""Automatic credit top-ups as durable work (app/billing/auto_top_ups.py), against the local
Stripe stand-in through the official client, with two tenants whose customers look alike:
a job lost with Redis is dispatched again by the sweep, a worker that died mid-charge does not
charge twice, a declined card ends failed with its reason, and two charges crossing the
threshold together top up once."""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta

from sqlalchemy import select

from app import clock
from app.billing import auto_top_ups, credits
from app.billing.rebilling_models import AutoTopUp, CustomerAccount
from app.extensions import db
from app.integrations.models import WebhookEvent
from jobs.durable import recover
from tenants.context import activate
from tests import billing_support
from tests.jobs_helpers import run_jobs
from tests.rebilling_support import charge_once, topped_up_customer

app = billing_support.app
fake_stripe = billing_support.fake_stripe


def _later(seconds: float) -> None:
    moment = clock.now() + timedelta(seconds=seconds)
    clock.set_clock(lambda: moment)


def _top_ups(app, site) -> list[AutoTopUp]:
    with app.app_context(), activate(site.info):
        rows = db.session.scalars(select(AutoTopUp).order_by(AutoTopUp.created_at)).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def _balance(app, site) -> int:
    with app.app_context(), activate(site.info):
        return db.session.scalars(select(CustomerAccount.credit_balance_micro)).one() // 10**6


def _intents(fake, site_account: str) -> list[dict]:
    return [o for o in fake.store(site_account).values() if o.get("object") == "payment_intent"]


def test_a_top_up_whose_job_was_lost_is_dispatched_again_by_the_sweep(
        app, fake_stripe, acme, globex, make_user, redis_client):
    fake = fake_stripe
    ann, _, acme_account = topped_up_customer(app, acme, fake, make_user)
    gus, _, _ = topped_up_customer(app, globex, fake, make_user, balance=900)
    charge_once(app, acme, ann)  # 300 → 200: below 250, the top-up row is written with it
    charge_once(app, globex, gus)  # 900 → 800: not low, no top-up
    [top_up] = _top_ups(app, acme)
    assert (top_up.status, top_up.amount_minor, top_up.attempts) == ("queued", 1000, 0)
    assert _top_ups(app, globex) == []
    redis_client.flushdb()  # Redis restarted empty: the job is gone, the row is not
    with app.app_context():
        assert recover()["auto_top_ups"]["dispatched"] == 0  # within the grace period
        _later(31)
        assert recover()["auto_top_ups"] == {"dispatched": 1, "failed": 0, "skipped": 0}
        assert recover()["auto_top_ups"]["dispatched"] == 0  # its job is live now
    run_jobs(app, "default")
    [top_up] = _top_ups(app, acme)
    assert (top_up.status, top_up.attempts, top_up.reason) == ("succeeded", 1, None)
    assert _balance(app, acme) == 1200 and _balance(app, globex) == 800
    [intent] = _intents(fake, acme_account)
    assert intent["id"] == top_up.payment_intent_id
    [call] = fake.calls_to("POST", "/v1/payment_intents")
    assert call.headers["Idempotency-Key"] == f"auto-top-up-{top_up.id}"
    assert call.headers["Stripe-Account"] == acme_account
    with app.app_context():
        _later(3600)
        assert recover()["auto_top_ups"] == {"dispatched": 0, "failed": 0, "skipped": 0}


def test_a_worker_that_died_mid_charge_does_not_charge_twice(
        app, fake_stripe, acme, globex, make_user):
    fake = fake_stripe
    ann, _, acme_account = topped_up_customer(app, acme, fake, make_user)
    topped_up_customer(app, globex, fake, make_user)
    charge_once(app, acme, ann)
    [top_up] = _top_ups(app, acme)
    # A worker claims it and charges the card, then dies before its commit.
    with app.app_context(), activate(acme.info):
        assert auto_top_ups.claim(top_up.id)
        row = db.session.get(AutoTopUp, top_up.id)
        auto_top_ups._charge(row, db.session.get(CustomerAccount, row.account_id))
        db.session.rollback()
    run_jobs(app, "default")  # the job delivered meanwhile finds it running: nothing to do
    assert _top_ups(app, acme)[0].status == "running"
    with app.app_context():
        _later(auto_top_ups.CHARGE_LEASE.total_seconds() + 31)
        assert recover()["auto_top_ups"]["dispatched"] == 1
    run_jobs(app, "default")
    [top_up] = _top_ups(app, acme)
    assert (top_up.status, top_up.attempts) == ("succeeded", 2)
    # Stripe answered the second attempt with the first charge (same idempotency key).
    assert len(_intents(fake, acme_account)) == 1
    assert _balance(app, acme) == 1200
    assert _balance(app, globex) == 300


def test_a_declined_card_ends_the_top_up_failed_with_its_reason(
        app, fake_stripe, acme, globex, make_user):
    fake = fake_stripe
    ann, card, _ = topped_up_customer(app, acme, fake, make_user)
    gus, _, _ = topped_up_customer(app, globex, fake, make_user)
    fake.declining.add(card)
    charge_once(app, acme, ann)
    charge_once(app, globex, gus)
    run_jobs(app, "default")
    [declined] = _top_ups(app, acme)
    assert declined.status == "failed" and declined.finished_at is not None
    assert declined.reason.startswith("card_declined: ")
    assert _balance(app, acme) == 200  # nothing credited
    [paid] = _top_ups(app, globex)  # the look-alike in the other tenant is unaffected
    assert paid.status == "succeeded" and _balance(app, globex) == 1200
    with app.app_context():
        _later(3600)
        assert recover()["auto_top_ups"] == {"dispatched": 0, "failed": 0, "skipped": 0}
    # Still low and flagged: a further charge does not start another top-up on that card.
    charge_once(app, acme, ann)
    assert len(_top_ups(app, acme)) == 1


def _listening(app, site, make_user) -> None:
    """A reseller-level webhook endpoint for every event type (its deliveries are owed)."""
    from app.integrations.models import WebhookEndpoint

    owner = make_user(site, "owner@example.com", role="RESELLER")
    with app.app_context(), activate(site.info):
        db.session.add(WebhookEndpoint(url=f"https://hooks.{site.info.slug}.example/in",
                                       event_types=[], created_by_user_id=owner,
                                       secret_encrypted="not-used-here"))
        db.session.commit()


def _failure_events(app, site) -> list[tuple[dict, int]]:
    """The tenant's credits.top_up_failed events, each with how many deliveries it is owed."""
    from sqlalchemy import func

    from app.integrations.models import WebhookDelivery

    with app.app_context(), activate(site.info):
        return [(e.data, db.session.scalar(select(func.count()).select_from(WebhookDelivery)
                                           .where(WebhookDelivery.event_id == e.id)))
                for e in db.session.scalars(select(WebhookEvent).where(
                    WebhookEvent.type == auto_top_ups.FAILED_EVENT))]


def test_a_declined_top_up_is_announced_once_to_its_own_reseller(
        app, fake_stripe, acme, globex, make_user):
    fake = fake_stripe
    ann, card, _ = topped_up_customer(app, acme, fake, make_user)
    gus, _, _ = topped_up_customer(app, globex, fake, make_user)  # a look-alike that pays
    for site in (acme, globex):
        _listening(app, site, make_user)
    fake.declining.add(card)
    charge_once(app, acme, ann)
    charge_once(app, globex, gus)
    assert _failure_events(app, acme) == []  # nothing announced before the row ends
    run_jobs(app, "default")
    [declined] = _top_ups(app, acme)
    assert declined.status == "failed"
    [(data, owed)] = _failure_events(app, acme)
    assert data == {"top_up_id": str(declined.id), "user_id": str(ann), "amount": 1000,
                    "currency": "usd", "reason": "card_declined",
                    "message": "Your card was declined."}
    assert owed == 1  # the reseller's endpoint
    assert _failure_events(app, globex) == []  # its customer's top-up succeeded
    # Once: the job delivered again, a later sweep, another low charge add nothing.
    with app.app_context(), activate(acme.info):
        assert auto_top_ups.run(declined.id) == "failed"
        _later(3600)
    with app.app_context():
        recover()
    charge_once(app, acme, ann)
    run_jobs(app, "default")
    assert len(_failure_events(app, acme)) == 1 and _failure_events(app, globex) == []


def test_a_top_up_whose_jobs_keep_getting_lost_is_announced_once_when_it_fails(
        app, fake_stripe, acme, globex, make_user, redis_client):
    settings = app.extensions["albedo.settings"]
    app.extensions["albedo.settings"] = settings.with_overrides(max_dispatches=1)
    ann, _, _ = topped_up_customer(app, acme, fake_stripe, make_user)
    topped_up_customer(app, globex, fake_stripe, make_user)
    for site in (acme, globex):
        _listening(app, site, make_user)
    charge_once(app, acme, ann)
    with app.app_context():
        for _ in range(2):  # the first loss is dispatched again; the second ends it
            redis_client.flushdb()
            _later(31)
            outcome = recover()["auto_top_ups"]
    assert outcome == {"dispatched": 0, "failed": 1, "skipped": 0}
    [failed] = _top_ups(app, acme)
    assert failed.status == "failed" and failed.reason.startswith("dispatch_attempts_exhausted")
    [(data, owed)] = _failure_events(app, acme)
    assert (data["top_up_id"], data["user_id"], data["reason"], owed) == (
        str(failed.id), str(ann), "dispatch_attempts_exhausted", 1)
    with app.app_context():
        _later(3600)
        recover()
    assert len(_failure_events(app, acme)) == 1 and _failure_events(app, globex) == []
    assert fake_stripe.calls_to("POST", "/v1/payment_intents") == []


def test_two_charges_crossing_the_threshold_together_top_up_once(
        app, fake_stripe, acme, globex, make_user):
    fake = fake_stripe
    ann, _, _ = topped_up_customer(app, acme, fake, make_user)
    topped_up_customer(app, globex, fake, make_user)
    both_charged = threading.Barrier(2, timeout=30)
    failures: list[BaseException] = []

    def charge():
        try:
            # Both have read the account (balance 300, not flagged) before either writes.
            charge_once(app, acme, ann, before_write=lambda: _wait(both_charged))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=charge) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert _balance(app, acme) == 100  # both charges were made
    assert len(_top_ups(app, acme)) == 1
    with app.app_context(), activate(acme.info):
        low = db.session.scalars(select(WebhookEvent).where(
            WebhookEvent.type == "credits.low")).all()
        assert len(low) == 1
    # Credits granted by hand clear the flag while the top-up still waits: the next
    # crossing finds it open and does not open another.
    with app.app_context(), activate(acme.info):
        credits.grant(ann, 50)
        db.session.commit()
    charge_once(app, acme, ann)
    assert len(_top_ups(app, acme)) == 1
    run_jobs(app, "default")
    assert [t.status for t in _top_ups(app, acme)] == ["succeeded"]
    assert len(fake.calls_to("POST", "/v1/payment_intents")) == 1
    assert _balance(app, acme) == 1050
    assert _top_ups(app, globex) == []


def _wait(barrier: threading.Barrier) -> None:
    """Wait until the other charge has read the account too."""
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(5)


def test_a_top_up_no_longer_needed_is_canceled_without_charging(
        app, fake_stripe, acme, globex, make_user):
    fake = fake_stripe
    ann, _, _ = topped_up_customer(app, acme, fake, make_user)
    gus, _, globex_account = topped_up_customer(app, globex, fake, make_user)
    charge_once(app, acme, ann)
    charge_once(app, globex, gus)
    with app.app_context(), activate(acme.info):
        credits.grant(ann, 1000)  # credits arrived another way while the top-up waited
        db.session.commit()
    run_jobs(app, "default")
    [canceled] = _top_ups(app, acme)
    assert (canceled.status, canceled.reason.split(":")[0]) == ("canceled", "not_needed")
    assert _balance(app, acme) == 1200
    [paid] = _top_ups(app, globex)
    assert paid.status == "succeeded" and _balance(app, globex) == 1200
    [call] = fake.calls_to("POST", "/v1/payment_intents")
    assert call.headers["Stripe-Account"] == globex_account
