"""Usage reported to Stripe Billing Meters with the official client against the stand-in:
on each reseller's connected account, idempotent across retries and resends, reversals
cancelled, wholesale on the platform's account, and a reconciliation that fills a gap."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import delete, select

from app import clock
from app.billing import ledger, meters
from app.billing.models import Subscription
from app.billing.rebilling_models import CustomerAccount, LedgerEntry, MeterReport
from app.extensions import db
from tenants.context import activate
from tests import billing_support
from tests.billing_support import connect, fake_stripe  # noqa: F401  (fixture)
from tests.rebilling_support import set_book

app = billing_support.app


def _execution(user_id, tokens: int = 1000) -> SimpleNamespace:
    """What the ledger reads of an execution (the agents engine's row in real runs)."""
    return SimpleNamespace(
        id=uuid.uuid4(), caller_user_id=user_id, prompt_tokens=tokens, completion_tokens=10,
        cost_micros=300, agent_id=uuid.uuid4(), model="gpt-4o-mini", version_number=1,
        finished_at=clock.now(), source="api", license_id=None, api_key_id=uuid.uuid4(),
        started_at=clock.now())


def _seller(app, site, fake, user_id) -> tuple[str, str]:
    """A connected reseller with a meter and a customer known to Stripe."""
    account = connect(app, site, fake)
    set_book(app, site, kind="tokens", input_per_million_minor=1000,
             output_per_million_minor=1000)
    customer = fake._new_customer({"email": "ann@example.com"}, account)["id"]
    with app.app_context(), activate(site.info):
        meters.create_meter("agent_usage")
        db.session.add(CustomerAccount(user_id=user_id, stripe_customer_id=customer))
        db.session.commit()
    return account, customer


def _charge(app, site, user_id, n: int) -> list[uuid.UUID]:
    with app.app_context(), activate(site.info):
        ids = [ledger.record(_execution(user_id, 1000 * (i + 1)), "succeeded").id
               for i in range(n)]
        db.session.commit()
        return ids


def _report(app, site) -> dict[str, int]:
    with app.app_context(), activate(site.info):
        return meters.report()


def test_meter_events_are_idempotent_per_account_and_reconciled(
        app, fake_stripe, platform, acme, globex, make_user):
    fake = fake_stripe
    ann, gus = make_user(acme, "ann@example.com"), make_user(globex, "ann@example.com")
    acme_account, acme_customer = _seller(app, acme, fake, ann)
    globex_account, _ = _seller(app, globex, fake, gus)
    acme_ids = _charge(app, acme, ann, 3)
    _charge(app, globex, gus, 2)

    # A 500 on the first send: the official client retries with the same Idempotency-Key.
    fake.fail_next("POST", "/v1/billing/meter_events", 500)
    assert _report(app, acme) == {"sent": 3, "skipped": 0, "failed": 0}
    events = fake.meter_events(acme_account)
    assert sorted(e["identifier"] for e in events) == sorted(str(i) for i in acme_ids)
    assert {e["payload"]["stripe_customer_id"] for e in events} == {acme_customer}
    # 1000..3000 input tokens + 10 output at 1000 minor per million: exact micro-minor units.
    assert sorted(int(e["payload"]["value"]) for e in events) == [
        1_010_000, 2_010_000, 3_010_000]
    posts = fake.calls_to("POST", "/v1/billing/meter_events")
    assert posts[0].status == 500 and posts[1].status == 200
    assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]
    assert all(c.headers.get("Stripe-Account") == acme_account for c in posts)
    # Nothing of Acme's reached Globex's account, and the reverse.
    assert fake.meter_events(globex_account) == []
    assert _report(app, globex)["sent"] == 2
    assert len(fake.meter_events(acme_account)) == 3
    assert _report(app, acme) == {"sent": 0, "skipped": 0, "failed": 0}  # nothing due

    # A crash after Stripe took the events but before we recorded it: sent again, refused
    # by Stripe as duplicates, recorded as delivered; Stripe still holds three.
    with app.app_context(), activate(acme.info):
        db.session.execute(delete(MeterReport))
        db.session.commit()
    assert _report(app, acme)["sent"] == 3
    assert len(fake.meter_events(acme_account)) == 3

    # A gap: Stripe lacks one event. The reconciliation sees the totals differ and fills it.
    fake.forget_meter_event(str(acme_ids[1]), acme_account)
    window = (clock.now() - timedelta(hours=1), clock.now() + timedelta(hours=1))
    with app.app_context(), activate(acme.info):
        (row,) = meters.reconcile(*window)
    assert (row["ledger"] - row["stripe"], row["resent"]) == (2_010_000, 1)
    assert len(fake.meter_events(acme_account)) == 3
    with app.app_context(), activate(acme.info):
        (row,) = meters.reconcile(*window)
    assert row["ledger"] == row["stripe"] and row["resent"] == 0

    # A reversal cancels its event on Stripe.
    with app.app_context(), activate(acme.info):
        ledger.reverse(acme_ids[0], "refund")
        db.session.commit()
    assert _report(app, acme)["sent"] == 1
    assert sorted(e["identifier"] for e in fake.meter_events(acme_account)) == sorted(
        str(i) for i in acme_ids[1:])


def test_wholesale_usage_is_metered_on_the_platforms_account(
        app, fake_stripe, platform, acme, make_user):
    fake = fake_stripe
    ann = make_user(acme, "ann@example.com")
    acme_account, _ = _seller(app, acme, fake, ann)
    set_book(app, platform, kind="execution", per_execution_minor=2)
    with app.app_context(), activate(platform.info):
        meters.create_meter("wholesale_usage")
        db.session.commit()
    reseller_customer = fake._new_customer({"email": "owner@acme.example"}, None)["id"]
    with app.app_context(), activate(acme.info):
        db.session.add(Subscription(stripe_subscription_id="sub_acme",
                                    stripe_customer_id=reseller_customer, status="active"))
        db.session.commit()
    (entry_id,) = _charge(app, acme, ann, 1)
    assert _report(app, acme)["sent"] == 2
    (wholesale,) = fake.meter_events(None)
    assert wholesale["identifier"] == f"{entry_id}-wholesale"
    assert wholesale["payload"] == {"stripe_customer_id": reseller_customer,
                                    "value": str(2_000_000)}
    assert len(fake.meter_events(acme_account)) == 1
    with app.app_context(), activate(acme.info):
        assert {r.target for r in db.session.scalars(select(MeterReport))} == {
            "reseller", "platform"}
        assert db.session.scalars(select(LedgerEntry.wholesale_micro)).one() == 2_000_000


def test_a_reversal_past_stripes_cancel_window_is_a_credit_and_reconciled(
        app, fake_stripe, platform, acme, globex, make_user):
    """Stripe cancels a meter event only within 24 hours of receiving it: a later reversal
    leaves the event and credits the customer with a negative invoice item, once, on the
    reseller's account; the reconciliation counts the event as due and re-issues a lost
    credit."""
    fake = fake_stripe
    ann, gus = make_user(acme, "ann@example.com"), make_user(globex, "ann@example.com")
    acme_account, acme_customer = _seller(app, acme, fake, ann)
    globex_account, globex_customer = _seller(app, globex, fake, gus)
    start = clock.now()
    moments = {"now": start}
    clock.set_clock(lambda: moments["now"])
    fake.clock = lambda: moments["now"].timestamp()
    try:
        acme_ids = _charge(app, acme, ann, 2)
        _charge(app, globex, gus, 1)
        assert _report(app, acme)["sent"] == 2 and _report(app, globex)["sent"] == 1

        # Within the window: the reversal cancels the event.
        moments["now"] = start + timedelta(hours=2)
        with app.app_context(), activate(acme.info):
            ledger.reverse(acme_ids[0], "refund")
            db.session.commit()
        assert _report(app, acme)["sent"] == 1
        assert [e["identifier"] for e in fake.meter_events(acme_account)] == [str(acme_ids[1])]

        # Past it (Stripe would refuse the cancel): a credit of the entry's amount instead.
        moments["now"] = start + timedelta(hours=25)
        with app.app_context(), activate(acme.info):
            reversal = ledger.reverse(acme_ids[1], "goodwill")
            db.session.commit()
            reversal_id = reversal.id
        assert _report(app, acme) == {"sent": 1, "skipped": 0, "failed": 0}
        assert fake.calls_to("POST", "/v1/billing/meter_event_adjustments")[-1].status == 200
        assert len(fake.calls_to("POST", "/v1/billing/meter_event_adjustments")) == 1
        assert [e["identifier"] for e in fake.meter_events(acme_account)] == [str(acme_ids[1])]
        items = fake._list("invoiceitem", {"customer": acme_customer}, acme_account)["data"]
        assert [(i["amount"], i["currency"], i["metadata"]) for i in items] == [
            (-2, "usd", {"albedo_reversal": str(reversal_id)})]  # 2,010,000 micro -> 2 cents
        assert fake._list("invoiceitem", {"customer": globex_customer},
                          globex_account)["data"] == []
        with app.app_context(), activate(acme.info):
            (row,) = db.session.scalars(select(MeterReport).where(
                MeterReport.ledger_entry_id == reversal_id)).all()
            assert row.status == "credited"

        # Reconciled: the meter holds the credited charge's event (no resend), and a credit
        # Stripe lost is issued again, once.
        window = (start - timedelta(hours=1), start + timedelta(hours=26))
        with app.app_context(), activate(acme.info):
            (row,) = meters.reconcile(*window)
        assert (row["ledger"], row["stripe"], row["resent"], row["credits_reissued"]) == (
            2_010_000, 2_010_000, 0, 0)
        with fake.lock:
            fake.store(acme_account).pop(items[0]["id"])
        with app.app_context(), activate(acme.info):
            (row,) = meters.reconcile(*window)
            (again,) = meters.reconcile(*window)
        assert (row["credits_reissued"], again["credits_reissued"]) == (1, 0)
        assert len(fake._list("invoiceitem", {"customer": acme_customer},
                              acme_account)["data"]) == 1
    finally:
        clock.set_clock(None)
