"""Automatic credit top-ups as durable work: the row decides, the job only carries it.

The charge that takes a customer's balance below the threshold claims the account's
``low_notified`` flag (notices.py) and, in the same transaction, opens one top-up row
(:func:`open_for`); its job is enqueued after the commit. A worker *claims* the row
(``running``, attempts + 1, a lease) in its own commit before calling Stripe, so a second
delivery finds nothing to claim; the saved card is charged with the row's id as Stripe's
idempotency key, so an attempt repeated after a crash (the lease passed, the sweep dispatched
it again) gets Stripe's first answer back instead of a second charge, and the credit's unique
Stripe reference credits it once.

Endings: ``succeeded`` (credited); ``canceled`` (``not_needed``: credits arrived another way
while it waited, the card is not charged); ``failed`` with a reason: a declined card
(``card_declined: ...``), a payment that needs the customer (``payment_requires_action``),
no saved card, top-ups turned off meanwhile, Stripe unreachable after every attempt, or
jobs lost too often (``dispatch_attempts_exhausted``). A failed top-up leaves the account
flagged low, so no other top-up starts before credits arrive some other way, and announces
``credits.top_up_failed`` (customer, amount, currency, reason) in the transaction that ends
the row ``failed``: stored once, with the ending, never without it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import and_, or_, select, update

from app import clock
from app.billing import pricing
from app.billing.rebilling_models import AutoTopUp, CustomerAccount
from app.extensions import db
from jobs.durable import (
    EXHAUSTED,
    Sweep,
    exhausted_message,
    recoverer,
    redispatch,
    revive_each,
)
from jobs.enqueue import enqueue, enqueue_after_commit

TASK = "billing.auto_top_up"
# The wait after each transient failure (Stripe unreachable); one attempt more than waits.
RETRY_DELAYS = (60, 300, 900)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# The Stripe client's own timeouts and retries stay well inside this.
CHARGE_LEASE = timedelta(seconds=120)
OPEN = ("queued", "running")
FINISHED = ("succeeded", "failed", "canceled")
_REASON = "the top-up recovery looks for top-ups whose job was lost, in every tenant"
FAILED_EVENT = "credits.top_up_failed"
STOPPED = "worker_stopped: the worker stopped during the charge"


def job_id_for(top_up_id: uuid.UUID | str, attempt: int) -> str:
    """One job id per attempt: a lost job's attempt is dispatched again under the same id."""
    return f"auto-top-up-{top_up_id}-{attempt}"


def idempotency_key(top_up_id: uuid.UUID | str) -> str:
    """Stripe's idempotency key for the charge: every attempt of one top-up sends the same."""
    return f"auto-top-up-{top_up_id}"


def open_for(account_id: uuid.UUID, user_id: uuid.UUID, amount_minor: int,
             balance_micro: int, currency: str) -> AutoTopUp | None:
    """Open the top-up of one threshold crossing in the charge's transaction, and enqueue its
    job once that commits. The caller claimed the crossing (the account's ``low_notified``,
    a conditional UPDATE that holds the account's row until the commit), so concurrent
    charges get here one at a time; None when a top-up is still open for the account (credits
    granted by hand while it waited cleared the flag): that one covers this crossing too."""
    if db.session.scalar(select(AutoTopUp.id).where(AutoTopUp.account_id == account_id,
                                                    AutoTopUp.status.in_(OPEN))):
        return None
    top_up = AutoTopUp(account_id=account_id, user_id=user_id, amount_minor=amount_minor,
                       balance_micro=balance_micro, currency=currency, status="queued")
    db.session.add(top_up)
    db.session.flush()
    enqueue_after_commit(db.session, TASK, str(top_up.id), job_id=job_id_for(top_up.id, 0))
    return top_up


def _lease() -> timedelta:
    return CHARGE_LEASE + timedelta(
        seconds=current_app.extensions["albedo.settings"].recovery_grace_seconds)


def claim(top_up_id: uuid.UUID) -> bool:
    """queued → running, once: a duplicate delivery of the job finds nothing."""
    now = clock.now()
    claimed = db.session.execute(
        update(AutoTopUp).where(AutoTopUp.id == top_up_id, AutoTopUp.status == "queued")
        .values(status="running", attempts=AutoTopUp.attempts + 1, dispatches=0,
                lease_until=now + _lease(), next_attempt_at=None)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return claimed == 1


def _recipients(top_up: AutoTopUp):
    """Who is owed the failure's event, read before the ending's first write (on SQLite
    that write holds the database's one write lock until the commit)."""
    from app.integrations.events import recipients

    return recipients((FAILED_EVENT,), owner_user_id=top_up.user_id)


def _announce_failure(top_up: AutoTopUp, reason: str, ahead=None) -> None:
    """``credits.top_up_failed``, in the transaction that ends the row ``failed`` (the
    caller commits both): the reseller's endpoints, and the customer's own, hear of it."""
    from app.integrations.events import emit

    code, _, message = reason.partition(": ")
    emit(FAILED_EVENT, {"top_up_id": str(top_up.id), "user_id": str(top_up.user_id),
                        "amount": top_up.amount_minor, "currency": top_up.currency,
                        "reason": code, "message": message[:500]},
         owner_user_id=top_up.user_id, ahead=ahead)


def _finish(top_up: AutoTopUp, status: str, reason: str | None = None) -> str:
    ahead = _recipients(top_up) if status == "failed" else None
    top_up.status = status
    top_up.reason = reason[:2000] if reason else None
    top_up.lease_until = None
    top_up.next_attempt_at = None
    top_up.finished_at = clock.now()
    if status == "failed":
        _announce_failure(top_up, top_up.reason or "failed", ahead)
    db.session.commit()
    return status


def _retry_or_fail(top_up: AutoTopUp, error: str) -> str:
    if top_up.attempts >= MAX_ATTEMPTS:
        return _finish(top_up, "failed", f"stripe_unavailable: gave up after "
                                         f"{top_up.attempts} attempts: {error}")
    delay = RETRY_DELAYS[max(top_up.attempts - 1, 0)]
    top_up.status = "queued"
    top_up.reason = error[:2000]
    top_up.lease_until = None
    top_up.next_attempt_at = clock.now() + timedelta(seconds=delay)
    top_up_id, attempt = top_up.id, top_up.attempts
    db.session.commit()
    # The quick path; the sweep dispatches the row when due should this job be lost.
    enqueue(TASK, str(top_up_id), job_id=job_id_for(top_up_id, attempt), delay_seconds=delay)
    return "queued"


def run(top_up_id: uuid.UUID) -> str:
    """The job's work: claim the top-up, charge the saved card once, credit it."""
    top_up = db.session.get(AutoTopUp, top_up_id)
    if top_up is None or top_up.status in FINISHED:
        db.session.rollback()
        return top_up.status if top_up else "missing"
    if not claim(top_up_id):
        return "skipped"
    top_up = db.session.get(AutoTopUp, top_up_id, populate_existing=True)
    account = db.session.get(CustomerAccount, top_up.account_id)
    if account is not None and account.credit_balance_micro >= \
            (account.auto_topup_below_minor or 0) * pricing.MICRO:
        # Credits arrived another way while it waited: the card is not charged.
        return _finish(top_up, "canceled", "not_needed: the balance is above the threshold")
    refused = _refusal(account)
    if refused:
        return _finish(top_up, "failed", refused)
    try:
        intent = _charge(top_up, account)
    except stripe.CardError as exc:
        code = exc.code or "card_error"
        return _finish(top_up, "failed", f"{code}: {exc.user_message or exc}")
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        return _retry_or_fail(top_up, f"Stripe unavailable: {exc}")
    except stripe.StripeError as exc:  # refused for good (an invalid customer, ...)
        return _finish(top_up, "failed", f"stripe_error: {exc}")
    top_up.payment_intent_id = intent["id"]
    if intent.get("status") != "succeeded":
        return _finish(top_up, "failed", f"payment_{intent.get('status') or 'failed'}: the "
                                         f"card needs the customer to complete the payment")
    from app.billing.credits import credit

    credit(top_up.user_id, top_up.amount_minor, source="auto", stripe_ref=intent["id"])
    return _finish(top_up, "succeeded")


def _refusal(account: CustomerAccount | None) -> str | None:
    """Why this account cannot be topped up now, or None."""
    from app.billing.config import stripe_config
    from app.billing.connect import connect_account

    if account is None or not account.credits_enabled or not account.auto_topup_amount_minor:
        return "auto_top_up_off: automatic top-ups were turned off meanwhile"
    if stripe_config() is None or connect_account() is None or not account.stripe_customer_id:
        return "no_payment_method: no saved card to charge"
    return None


def _charge(top_up: AutoTopUp, account: CustomerAccount) -> dict[str, Any]:
    from app.billing.connect import connect_account
    from app.billing.credits import CREDITS, PURPOSE_KEY
    from app.billing.stripe_client import client, on_account, plain

    connected = connect_account()
    return plain(client().v1.payment_intents.create(
        {"amount": top_up.amount_minor, "currency": top_up.currency,
         "customer": account.stripe_customer_id, "off_session": True, "confirm": True,
         "metadata": {PURPOSE_KEY: CREDITS, "user_id": str(top_up.user_id),
                      "auto_top_up_id": str(top_up.id)}},
        options=on_account(connected.stripe_account_id,
                           idempotency_key=idempotency_key(top_up.id))))


@recoverer("auto_top_ups")
def recover(sweep: Sweep) -> dict[str, int]:
    """Queued with a lost job (or due again), running past the lease (the worker died)."""
    due = select(AutoTopUp.id, AutoTopUp.tenant_id).where(or_(
        and_(AutoTopUp.status == "queued", AutoTopUp.next_attempt_at.is_(None),
             AutoTopUp.created_at < sweep.stale_before),
        and_(AutoTopUp.status == "queued", AutoTopUp.next_attempt_at <= sweep.now),
        and_(AutoTopUp.status == "running", AutoTopUp.lease_until < sweep.now)))
    return revive_each(due, _REASON, sweep, _revive)


def _revive(top_up_id: uuid.UUID, sweep: Sweep) -> str:
    top_up = db.session.get(AutoTopUp, top_up_id)
    if top_up is None or top_up.status in FINISHED:
        db.session.rollback()
        return "skipped"  # finished meanwhile
    if top_up.status == "running":
        if top_up.lease_until is None or top_up.lease_until >= sweep.now:
            db.session.rollback()
            return "skipped"
        # The worker died mid-charge: Stripe may have charged. The next attempt sends the
        # same idempotency key and so gets that charge back rather than making another.
        last = top_up.attempts >= MAX_ATTEMPTS
        ahead = _recipients(top_up) if last else None
        moved = db.session.execute(
            update(AutoTopUp).where(AutoTopUp.id == top_up_id, AutoTopUp.status == "running",
                                    AutoTopUp.attempts == top_up.attempts)
            .values(status="failed" if last else "queued", lease_until=None,
                    next_attempt_at=None if last else sweep.now,
                    finished_at=sweep.now if last else None,
                    reason=STOPPED)
            .execution_options(synchronize_session=False)).rowcount
        if moved and last:
            _announce_failure(top_up, STOPPED, ahead)
        db.session.commit()
        if not moved or last:
            return "failed" if moved else "skipped"
    else:
        db.session.rollback()
    waiting = AutoTopUp.status == "queued"
    result = redispatch(AutoTopUp, top_up_id, top_up.dispatches, TASK, str(top_up_id),
                        tenant_id=top_up.tenant_id,
                        job_id=job_id_for(top_up_id, top_up.attempts), still=(waiting,))
    if result != "exhausted":
        return result
    ahead = _recipients(top_up)
    reason = f"{EXHAUSTED}: {exhausted_message(top_up.dispatches)}"
    failed = db.session.execute(
        update(AutoTopUp).where(AutoTopUp.id == top_up_id, waiting,
                                AutoTopUp.dispatches == top_up.dispatches)
        .values(status="failed", next_attempt_at=None, finished_at=sweep.now, reason=reason)
        .execution_options(synchronize_session=False)).rowcount
    if failed:
        _announce_failure(top_up, reason, ahead)
    db.session.commit()
    return "failed" if failed else "skipped"
