"""A customer's spending settings and prepaid credits: limits, top-ups, automatic top-ups.

Credits are bought in the seller's currency through Stripe Checkout (payment mode, on the
reseller's connected account) and credited once, when Stripe confirms the payment: the
top-up row's unique Stripe reference makes a replayed confirmation change nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import stripe
from sqlalchemy import select, update

from app import clock
from app.billing import pricing, reports, spending
from app.billing.rebilling_models import CreditTopUp, CustomerAccount
from app.errors import ApiError
from app.extensions import db

PURPOSE_KEY = "albedo_purpose"
CREDITS = "credits"


def _customer(user_id: uuid.UUID | str):
    from app.auth.models import User

    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        key = None
    user = db.session.get(User, key) if key else None
    if user is None or user.role != "USER":
        raise ApiError(404, "customer_not_found", "No such customer.")
    return user


def ensure_account(user_id: uuid.UUID) -> CustomerAccount:
    account = spending.account_of(user_id)
    if account is None:
        account = CustomerAccount(user_id=user_id)
        db.session.add(account)
        db.session.flush()
    return account


def describe(user_id: uuid.UUID) -> dict[str, Any]:
    """What the customer (and its seller) sees: this month's spend, limit and credits."""
    book = pricing.load_book()
    account = spending.account_of(user_id)
    totals = reports.customer_totals(user_id, spending.period_of(clock.now()))
    return {"user_id": user_id, "currency": book.currency, "period": totals["period"],
            "spent": totals["spent"], "included": totals["included"],
            "billable": totals["billable"],
            "spending_limit": account.spending_limit_minor if account else None,
            "limit_mode": account.limit_mode if account else "soft",
            "credits_enabled": bool(account and account.credits_enabled),
            "credit_balance": pricing.to_minor(account.credit_balance_micro) if account else 0,
            "auto_topup_below": account.auto_topup_below_minor if account else None,
            "auto_topup_amount": account.auto_topup_amount_minor if account else None}


def update_settings(user_id: uuid.UUID | str, changes: dict[str, Any]) -> dict[str, Any]:
    """The seller sets a customer's limit (soft or hard), credits and automatic top-up."""
    user = _customer(user_id)
    account = ensure_account(user.id)
    if "spending_limit" in changes:
        account.spending_limit_minor = changes["spending_limit"]
    if "limit_mode" in changes:
        account.limit_mode = changes["limit_mode"]
    if "credits_enabled" in changes:
        account.credits_enabled = bool(changes["credits_enabled"])
    if "auto_topup_below" in changes:
        account.auto_topup_below_minor = changes["auto_topup_below"]
    if "auto_topup_amount" in changes:
        account.auto_topup_amount_minor = changes["auto_topup_amount"]
    db.session.flush()
    return describe(user.id)


def credit(user_id: uuid.UUID, amount_minor: int, *, source: str,
           stripe_ref: str | None = None) -> bool:
    """Add ``amount_minor`` of credits once per ``stripe_ref``; False for a repeat."""
    if stripe_ref and db.session.scalar(select(CreditTopUp.id).where(
            CreditTopUp.stripe_ref == stripe_ref)):
        return False
    ensure_account(user_id)
    now = clock.now()
    db.session.add(CreditTopUp(user_id=user_id, amount_minor=amount_minor,
                               currency=pricing.load_book().currency, source=source,
                               stripe_ref=stripe_ref, status="paid", credited_at=now))
    db.session.execute(
        update(CustomerAccount).where(CustomerAccount.user_id == user_id)
        .values(credit_balance_micro=CustomerAccount.credit_balance_micro
                + amount_minor * pricing.MICRO, low_notified=False)
        .execution_options(synchronize_session=False))
    db.session.flush()  # the unique stripe_ref refuses a concurrent repeat here
    return True


def grant(user_id: uuid.UUID | str, amount_minor: int) -> dict[str, Any]:
    """The seller adds credits by hand (a goodwill credit, a payment taken elsewhere)."""
    from app.auth import audit
    from app.billing.money import format_money

    user = _customer(user_id)
    credit(user.id, amount_minor, source="manual")
    audit.record("credits_granted", **audit.acting(), target_type="user", target_id=user.id,
                 email=user.email, amount=format_money(amount_minor,
                                                       pricing.load_book().currency))
    return describe(user.id)


def start_top_up(user_id: uuid.UUID, amount_minor: int, email: str | None) -> dict[str, str]:
    """A Checkout session (payment mode) for ``amount_minor`` of credits."""
    from app.billing.config import require_stripe
    from app.billing.connect import payout_account
    from app.billing.stripe_client import client, on_account, stripe_failure
    from app.billing.sync import TENANT_KEY, USER_KEY
    from tenants.context import current
    from tenants.urls import absolute_url

    require_stripe()
    account = payout_account().stripe_account_id
    book = pricing.load_book()
    metadata = {TENANT_KEY: str(current().id), USER_KEY: str(user_id), PURPOSE_KEY: CREDITS}
    params: dict[str, Any] = {
        "mode": "payment", "metadata": metadata,
        "line_items": [{"quantity": 1, "price_data": {
            "currency": book.currency, "unit_amount": amount_minor,
            "product_data": {"name": "Prepaid credits"}}}],
        "payment_intent_data": {"metadata": metadata, "setup_future_usage": "off_session"},
        "success_url": absolute_url("/billing/usage?top_up=success"),
        "cancel_url": absolute_url("/billing/usage?top_up=canceled")}
    if email:
        params["customer_email"] = email
    try:
        session = client().v1.checkout.sessions.create(params, options=on_account(account))
    except stripe.StripeError as exc:
        raise stripe_failure(exc) from exc
    return {"url": session["url"], "session_id": session["id"]}


def apply_checkout(session: dict[str, Any]) -> bool:
    """Credit a paid top-up Checkout session (in its tenant); True when it was one."""
    metadata = session.get("metadata") or {}
    if session.get("mode") != "payment" or metadata.get(PURPOSE_KEY) != CREDITS:
        return False
    if session.get("payment_status") != "paid":
        return True
    from app.billing.sync import USER_KEY

    try:
        user_id = _customer(metadata.get(USER_KEY, "")).id
    except ApiError:
        return True  # not a customer of this tenant: nothing to credit
    if (session.get("currency") or "").lower() != pricing.load_book().currency:
        return True  # the book's currency changed meanwhile: credits are never converted
    customer = session.get("customer")
    credit(user_id, int(session.get("amount_total") or 0), source="checkout",
           stripe_ref=str(session["id"]))
    if customer:
        account = ensure_account(user_id)
        account.stripe_customer_id = customer if isinstance(customer, str) else customer["id"]
    return True


def apply_checkout_event(event: dict[str, Any], account: str | None,
                         connected: Any) -> tuple[str, uuid.UUID | None] | None:
    """A ``checkout.session.completed`` for a credits top-up: re-read the session from
    Stripe and credit it in the reseller's tenant. None when the session is not a top-up
    (the webhook's subscription handling takes it)."""
    from app.billing.stripe_client import client, on_account, plain
    from app.billing.sync import object_id
    from app.billing.tenancy import acting_for
    from tenants.models import Tenant
    from tenants.service import info_for

    obj = (event.get("data") or {}).get("object") or {}
    if obj.get("mode") != "payment" or (obj.get("metadata") or {}).get(PURPOSE_KEY) != CREDITS:
        return None
    if connected is None:
        return "ignored_unrouted", None  # top-ups are paid to a reseller's account
    session = plain(client().v1.checkout.sessions.retrieve(object_id(obj),
                                                           options=on_account(account)))
    tenant = db.session.get(Tenant, connected.tenant_id)
    if tenant is None:
        return "ignored_unrouted", None
    with acting_for(info_for(tenant)):
        apply_checkout(session)
    return "processed", tenant.id
