"""Reporting the ledger to Stripe as Billing Meter events, and reconciling the two.

Two reports per ledger entry (``MeterReport``, one row each, written by this job):

* ``reseller``: what the customer owes its reseller (``billable_micro``), on the reseller's
  connected account (Stripe-Account header), to the meter named in the reseller's book;
* ``platform``: what the reseller owes the platform (``wholesale_micro``), on the platform's
  own account, to the meter named in the platform's book, for the reseller's Stripe customer.

A meter event's ``identifier`` is the ledger entry's id (plus ``-wholesale``): the client's
own retries reuse one Idempotency-Key, and a resend after a crash is refused by Stripe as a
duplicate, which here means "delivered". A reversal cancels the event it reverses (a meter
event adjustment). Values are micro-minor units; the Stripe price on the meter charges
0.000001 of a minor unit per unit (``unit_amount_decimal``), so Stripe rounds the invoice
total once. Entries are sent in batches by a periodic job; failures wait with backoff.
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
        if original is None or value_of(original, route.target) == 0:
            return "skipped"
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


def report(limit: int = BATCH) -> dict[str, int]:
    """Send the current tenant's due entries (a batch per target); counts by outcome."""
    now = clock.now()
    outcome = {"sent": 0, "skipped": 0, "failed": 0}
    for route in routes():
        batch = _due(route, now, limit)
        db.session.rollback()  # the reads' transaction ends before the network calls
        for entry, report_id in batch:
            try:
                result, error = send(entry, route).replace("duplicate", "sent"), None
            except stripe.StripeError as exc:
                result, error = "failed", str(exc)[:500]
                log.warning("meter event for %s failed: %s", entry.id, error)
            _record(entry.id, report_id, route.target, result, error, now)
            db.session.commit()
            outcome[result] += 1
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
        row.sent_at = now if result == "sent" else None
        row.next_attempt_at = None


def reconcile(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Compare Stripe's per-customer meter totals with the ledger over [since, until) and
    fill any gap: every entry of a customer whose totals differ is sent again (Stripe keeps
    what it has, as duplicates, and takes what it lacks). Returns one row per customer."""
    from app.billing.stripe_client import client, on_account

    found = []
    for route in routes():
        if route.target != "reseller" or not route.meter_id:
            continue
        rows = db.session.execute(
            select(LedgerEntry.customer_id, func.sum(LedgerEntry.billable_micro))
            .where(LedgerEntry.occurred_at >= since, LedgerEntry.occurred_at < until)
            .group_by(LedgerEntry.customer_id)).all()
        for customer_id, ledger_total in rows:
            sample = db.session.scalars(select(LedgerEntry).where(
                LedgerEntry.customer_id == customer_id).limit(1)).first()
            customer = customer_of(sample, route)
            if customer is None:
                continue
            summaries = client().v1.billing.meters.event_summaries.list(
                route.meter_id, {"customer": customer, "start_time": int(since.timestamp()),
                                 "end_time": int(until.timestamp())},
                options=on_account(route.account))
            stripe_total = sum(int(s["aggregated_value"]) for s in summaries.data)
            resent = 0
            if stripe_total != int(ledger_total or 0):
                entries = db.session.scalars(select(LedgerEntry).where(
                    LedgerEntry.customer_id == customer_id, LedgerEntry.kind == "charge",
                    LedgerEntry.occurred_at >= since, LedgerEntry.occurred_at < until)).all()
                for entry in entries:
                    if send(entry, route) == "sent":
                        resent += 1
            found.append({"customer_id": customer_id, "ledger": int(ledger_total or 0),
                          "stripe": stripe_total, "resent": resent})
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
