"""Reporting the ledger to Stripe as Billing Meter events, and reconciling the two.

Two reports per ledger entry (``MeterReport``, one row each, written by this job):

* ``reseller``: what the customer owes its reseller (``billable_micro``), on the reseller's
  connected account (Stripe-Account header), to the meter named in the reseller's book;
* ``platform``: what the reseller owes the platform (``wholesale_micro``), on the platform's
  own account, to the meter named in the platform's book, for the reseller's Stripe customer.

A meter event's ``identifier`` is the ledger entry's id (plus ``-wholesale``): the client's
own retries reuse one Idempotency-Key, and a resend after a crash is refused by Stripe as a
duplicate, which here means "delivered". A reversal cancels the event it reverses (a meter
event adjustment) while Stripe allows it, within 24 hours of the event reaching Stripe; past
that (``CANCEL_WINDOW``, an hour short of Stripe's limit so a retry cannot straddle it) the
event stays and the reversal is a credit instead: a negative invoice item for the same
customer on the same account, which the customer's next invoice deducts. Values are
micro-minor units; the Stripe price on the meter charges 0.000001 of a minor unit per unit
(``unit_amount_decimal``), so Stripe rounds the invoice total once. Entries are sent in
batches by a periodic job; failures wait with backoff.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import and_, func, select

from app import clock
from app.billing import pricing
from app.billing.rebilling_models import CustomerAccount, LedgerEntry, MeterReport
from app.extensions import db

log = logging.getLogger(__name__)
BATCH = 100
BACKOFF = (60, 300, 900, 3600, 3 * 3600)
# Then a report ends failed with its reason (about a day of tries; Stripe refuses meter
# events older than 35 days anyway). ``meters.reconcile`` still fills what the meter lacks.
MAX_ATTEMPTS = 12
TARGETS = ("reseller", "platform")
CANCEL_WINDOW = timedelta(hours=23)  # Stripe cancels meter events up to 24 h after receipt
CREDIT_KEY = "albedo_reversal"  # the invoice item's metadata: the reversal it credits


@dataclass(frozen=True)
class Route:
    """Where one target's events go: the account (None: the platform's), the meter's event
    name and meter id."""

    target: str
    account: str | None
    event_name: str
    meter_id: str | None


def routes() -> list[Route]:
    """The targets configured for the current (reseller) tenant."""
    from app.billing.config import stripe_config
    from app.billing.connect import connect_account
    from tenants.context import current

    if stripe_config() is None or current().is_platform:
        return []
    found = []
    book = pricing.load_book()
    connected = connect_account()
    if book.meter_event_name and connected is not None:
        found.append(Route("reseller", connected.stripe_account_id, book.meter_event_name,
                           book.stripe_meter_id))
    platform_id = pricing.platform_tenant_id()
    if platform_id is not None:
        wholesale = pricing.load_book(platform_id)
        if wholesale.meter_event_name:
            found.append(Route("platform", None, wholesale.meter_event_name,
                               wholesale.stripe_meter_id))
    return found


def identifier(entry_id: uuid.UUID, target: str) -> str:
    return str(entry_id) if target == "reseller" else f"{entry_id}-wholesale"


def customer_of(entry: LedgerEntry, route: Route) -> str | None:
    """The Stripe customer billed: the end customer on the reseller's account, the reseller
    itself on the platform's."""
    from app.billing.models import Subscription

    if route.target == "reseller":
        known = db.session.scalar(select(CustomerAccount.stripe_customer_id).where(
            CustomerAccount.user_id == entry.customer_id))
        owner = Subscription.user_id == entry.customer_id
        account = Subscription.stripe_account_id == route.account
    else:
        known = None
        owner = Subscription.user_id.is_(None)
        account = Subscription.stripe_account_id.is_(None)
    return known or db.session.scalar(
        select(Subscription.stripe_customer_id).where(owner, account)
        .order_by(Subscription.created_at.desc()).limit(1))


def value_of(entry: LedgerEntry, target: str) -> int:
    return entry.billable_micro if target == "reseller" else entry.wholesale_micro


def _due(route: Route, now: datetime, limit: int) -> list[tuple[LedgerEntry, Any]]:
    report = MeterReport.__table__.alias("r")
    stmt = (select(LedgerEntry, report.c.id)
            .outerjoin(report, and_(report.c.ledger_entry_id == LedgerEntry.id,
                                    report.c.target == route.target))
            .where((report.c.id.is_(None))
                   | (report.c.status.in_(("pending", "retrying", "failed"))
                      & (report.c.next_attempt_at <= now)))
            .order_by(LedgerEntry.created_at, LedgerEntry.id).limit(limit))
    return list(db.session.execute(stmt).all())


def _is_duplicate(error: stripe.StripeError) -> bool:
    # Stripe refuses an identifier it already holds (400, "An event already exists with
    # identifier …"): the event is there, which is what we wanted.
    return isinstance(error, stripe.InvalidRequestError) and "already exists with identifier" \
        in (error.user_message or str(error))


def send(entry: LedgerEntry, route: Route) -> str:
    """One entry's event on one route: sent, duplicate (Stripe had it), skipped; or raises."""
    from app.billing.stripe_client import client, on_account

    value = value_of(entry, route.target)
    options = on_account(route.account)
    if entry.kind == "reversal":
        original = db.session.get(LedgerEntry, entry.reverses_id)
        if original is None or value_of(original, route.target) <= 0:
            return "skipped"
        reported = db.session.scalar(select(MeterReport.sent_at).where(
            MeterReport.ledger_entry_id == original.id, MeterReport.target == route.target,
            MeterReport.status == "sent"))
        if reported is not None and clock.now() - reported >= CANCEL_WINDOW:
            return credit(entry, original, route)
        client().v1.billing.meter_event_adjustments.create(
            {"event_name": route.event_name, "type": "cancel",
             "cancel": {"identifier": identifier(original.id, route.target)}},
            options=options)
        return "sent"
    if value <= 0:
        return "skipped"  # nothing to invoice (included usage, paid from credits)
    customer = customer_of(entry, route)
    if customer is None:
        return "skipped"  # no Stripe customer to invoice: nothing sold through Stripe
    try:
        client().v1.billing.meter_events.create(
            {"event_name": route.event_name, "identifier": identifier(entry.id, route.target),
             "timestamp": int(entry.occurred_at.timestamp()),
             "payload": {"stripe_customer_id": customer, "value": str(value)}},
            options=options)
    except stripe.StripeError as error:
        if _is_duplicate(error):
            return "duplicate"  # delivered before (a resend after a crash)
        raise
    return "sent"


def credit(reversal: LedgerEntry, original: LedgerEntry, route: Route) -> str:
    """A reversal past the cancel window: credit the customer what the original's event
    will invoice, as a negative invoice item on the same account (once: an item already
    carrying the reversal's identifier is the credit)."""
    from app.billing.stripe_client import client, on_account

    customer = customer_of(original, route)
    if customer is None:
        return "skipped"
    key = identifier(reversal.id, route.target)
    if find_credit(customer, key, route) is not None:
        return "credited"
    currency = original.currency if route.target == "reseller" else original.wholesale_currency
    client().v1.invoice_items.create(
        {"customer": customer, "currency": currency,
         # The meter invoices micro-minor units and Stripe rounds the invoice once; a credit
         # is whole minor units, rounded by the one rule (docs/rebilling.md).
         "amount": -pricing.to_minor(value_of(original, route.target)),
         "description": f"Usage correction: {reversal.reason or 'reversal'}"[:500],
         "metadata": {CREDIT_KEY: key}},
        options=on_account(route.account, idempotency_key=f"albedo-credit-{key}"))
    return "credited"


def find_credit(customer: str, key: str, route: Route) -> dict[str, Any] | None:
    """The invoice item crediting reversal ``key`` for ``customer``, if Stripe has it."""
    from app.billing.stripe_client import client, on_account, plain

    items = client().v1.invoice_items.list({"customer": customer, "limit": 100},
                                           options=on_account(route.account))
    for item in items.auto_paging_iter():
        if (plain(item).get("metadata") or {}).get(CREDIT_KEY) == key:
            return plain(item)
    return None


def report(limit: int = BATCH) -> dict[str, int]:
    """Send the current tenant's due entries (a batch per target); counts by outcome."""
    now = clock.now()
    outcome = {"sent": 0, "skipped": 0, "failed": 0}
    for route in routes():
        batch = _due(route, now, limit)
        db.session.rollback()  # the reads' transaction ends before the network calls
        for entry, report_id in batch:
            try:
                # "credited": a reversal past the cancel window, recorded as such (the
                # reconciliation checks the credit) and counted as sent.
                result, error = send(entry, route).replace("duplicate", "sent"), None
            except stripe.StripeError as exc:
                result, error = "failed", str(exc)[:500]
                log.warning("meter event for %s failed: %s", entry.id, error)
            _record(entry.id, report_id, route.target, result, error, now)
            db.session.commit()
            outcome[result.replace("credited", "sent")] += 1
    return outcome


def _record(entry_id: uuid.UUID, report_id: Any, target: str, result: str,
            error: str | None, now: datetime) -> None:
    row = db.session.get(MeterReport, report_id) if report_id else None
    if row is None:
        row = MeterReport(ledger_entry_id=entry_id, target=target, attempts=0)
        db.session.add(row)
    row.attempts += 1
    row.status = result
    row.last_error = error
    if result == "failed" and row.attempts >= MAX_ATTEMPTS:  # final: no next attempt
        row.next_attempt_at = None
        row.last_error = f"gave up after {row.attempts} attempts: {error}"[:2000]
    elif result == "failed":
        row.status = "retrying"
        row.next_attempt_at = now + timedelta(
            seconds=BACKOFF[min(row.attempts - 1, len(BACKOFF) - 1)])
    else:
        row.sent_at = now if result in ("sent", "credited") else None
        row.next_attempt_at = None


def _meter_should_hold(customer_id: uuid.UUID, since: datetime, until: datetime,
                       target: str) -> int:
    """What the customer's meter events in [since, until) should add up to: its charges'
    billable amounts, less those whose reversal cancelled the event (a reversal that came
    as a credit leaves its event in place)."""
    reversal = LedgerEntry.__table__.alias("reversal")
    cancel = MeterReport.__table__.alias("cancel")
    cancelled = (select(reversal.c.id)
                 .join(cancel, and_(cancel.c.ledger_entry_id == reversal.c.id,
                                    cancel.c.target == target, cancel.c.status == "sent"))
                 .where(reversal.c.reverses_id == LedgerEntry.id).exists())
    return int(db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.billable_micro), 0))
        .where(LedgerEntry.customer_id == customer_id, LedgerEntry.kind == "charge",
               LedgerEntry.occurred_at >= since, LedgerEntry.occurred_at < until,
               ~cancelled)) or 0)


def _credits_to_check(customer_id: uuid.UUID, since: datetime, until: datetime,
                      target: str) -> list[LedgerEntry]:
    return list(db.session.scalars(
        select(LedgerEntry).join(MeterReport, and_(
            MeterReport.ledger_entry_id == LedgerEntry.id, MeterReport.target == target,
            MeterReport.status == "credited"))
        .where(LedgerEntry.customer_id == customer_id, LedgerEntry.kind == "reversal",
               LedgerEntry.occurred_at >= since, LedgerEntry.occurred_at < until)))


def reconcile(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Compare Stripe's per-customer meter totals with what the ledger says the meter should
    hold over [since, until) and fill any gap: every entry of a customer whose totals differ
    is sent again (Stripe keeps what it has, as duplicates, and takes what it lacks). Each
    reversal credited in the window (past the cancel window) must have its invoice item on
    Stripe; a missing one is issued again. Returns one row per customer."""
    from app.billing.stripe_client import client, on_account

    found = []
    for route in routes():
        if route.target != "reseller" or not route.meter_id:
            continue
        customer_ids = db.session.scalars(
            select(LedgerEntry.customer_id).distinct()
            .where(LedgerEntry.occurred_at >= since, LedgerEntry.occurred_at < until)).all()
        for customer_id in customer_ids:
            sample = db.session.scalars(select(LedgerEntry).where(
                LedgerEntry.customer_id == customer_id).limit(1)).first()
            customer = customer_of(sample, route)
            if customer is None:
                continue
            ledger_total = _meter_should_hold(customer_id, since, until, route.target)
            summaries = client().v1.billing.meters.event_summaries.list(
                route.meter_id, {"customer": customer, "start_time": int(since.timestamp()),
                                 "end_time": int(until.timestamp())},
                options=on_account(route.account))
            stripe_total = sum(int(s["aggregated_value"]) for s in summaries.data)
            resent = 0
            if stripe_total != ledger_total:
                entries = db.session.scalars(select(LedgerEntry).where(
                    LedgerEntry.customer_id == customer_id, LedgerEntry.kind == "charge",
                    LedgerEntry.occurred_at >= since, LedgerEntry.occurred_at < until)).all()
                for entry in entries:
                    if send(entry, route) == "sent":
                        resent += 1
            credits_reissued = 0
            for reversal in _credits_to_check(customer_id, since, until, route.target):
                if find_credit(customer, identifier(reversal.id, route.target), route) is None:
                    original = db.session.get(LedgerEntry, reversal.reverses_id)
                    credit(reversal, original, route)
                    credits_reissued += 1
            found.append({"customer_id": customer_id, "ledger": ledger_total,
                          "stripe": stripe_total, "resent": resent,
                          "credits_reissued": credits_reissued})
    return found


def create_meter(event_name: str, display_name: str = "Usage") -> str:
    """Create the current tenant's Billing Meter (on its connected account; the platform's
    on its own) and name it in the tenant's price book; returns the meter id."""
    from app.billing.config import require_stripe
    from app.billing.connect import payout_account
    from app.billing.price_book import update_book
    from app.billing.stripe_client import client, on_account, stripe_failure
    from tenants.context import current

    require_stripe()
    account = None if current().is_platform else payout_account().stripe_account_id
    try:
        meter = client().v1.billing.meters.create(
            {"display_name": display_name, "event_name": event_name,
             "default_aggregation": {"formula": "sum"}},
            options=on_account(account, idempotency_key=f"albedo-meter-{current().id}-"
                                                        f"{event_name}"))
    except stripe.StripeError as exc:
        raise stripe_failure(exc) from exc
    update_book(meter_event_name=event_name, stripe_meter_id=meter["id"])
    return meter["id"]
