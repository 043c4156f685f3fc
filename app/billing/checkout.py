"""Starting a purchase: a Stripe Checkout session in subscription mode, and the portal.

Who sells: a reseller buys one of the platform's plans on the platform's Stripe account
(``user_id`` None); a customer buys one of its reseller's plans on the reseller's connected
account, the platform taking its application fee. The tenant and customer travel in
client_reference_id and metadata, which is how the webhook routes the result back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import select

from app.billing.config import require_stripe
from app.billing.connect import payout_account
from app.billing.limits import entitled_subscription
from app.billing.models import Plan, Subscription
from app.billing.plans import ensure_sellable
from app.billing.stripe_client import client, on_account, stripe_failure
from app.billing.sync import TENANT_KEY, USER_KEY
from app.errors import ApiError
from app.extensions import db
from tenants.context import current
from tenants.models import Tenant
from tenants.urls import absolute_url


@dataclass(frozen=True)
class CheckoutStarted:
    session_id: str
    url: str
    stripe_account_id: str | None


def _platform_plan(plan_id: uuid.UUID) -> Plan | None:
    platform_id = select(Tenant.id).where(Tenant.kind == "platform").scalar_subquery()
    return db.session.scalars(
        select(Plan).where(Plan.id == plan_id, Plan.tenant_id == platform_id)
        .execution_options(cross_tenant="a reseller buys one of the platform's plans")).first()


def _plan_to_buy(plan_id: uuid.UUID, user_id: uuid.UUID | None) -> Plan:
    tenant = current()
    if user_id is None and not tenant.is_platform:
        plan = _platform_plan(plan_id)
    else:
        plan = db.session.scalars(select(Plan).where(Plan.id == plan_id)).first()
    return ensure_sellable(plan)


def _known_customer(user_id: uuid.UUID | None, account: str | None) -> str | None:
    owner = Subscription.user_id.is_(None) if user_id is None else Subscription.user_id == user_id
    account_match = (Subscription.stripe_account_id.is_(None) if account is None
                     else Subscription.stripe_account_id == account)
    return db.session.scalars(select(Subscription.stripe_customer_id).where(
        owner, account_match).order_by(Subscription.created_at.desc())).first()


def start_checkout(plan_id: uuid.UUID, user_id: uuid.UUID | None,
                   email: str | None) -> CheckoutStarted:
    config = require_stripe()
    tenant = current()
    plan = _plan_to_buy(plan_id, user_id)
    if entitled_subscription(user_id) is not None:
        raise ApiError(409, "already_subscribed",
                       "There is already an active subscription; change plans in the billing "
                       "portal instead.")
    account = None
    if user_id is not None and not tenant.is_platform:
        account = payout_account().stripe_account_id
    metadata = {TENANT_KEY: str(tenant.id)}
    if user_id is not None:
        metadata[USER_KEY] = str(user_id)
    subscription_data: dict[str, Any] = {"metadata": metadata}
    if account and config.application_fee_percent:
        subscription_data["application_fee_percent"] = float(config.application_fee_percent)
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
        "client_reference_id": f"{tenant.id}:{user_id or 'tenant'}",
        "metadata": metadata,
        "subscription_data": subscription_data,
        # Always the tenant's primary domain, never the request's Host.
        "success_url": absolute_url("/billing?checkout=success&session_id={CHECKOUT_SESSION_ID}"),
        "cancel_url": absolute_url("/billing?checkout=canceled"),
    }
    customer = _known_customer(user_id, account)
    if customer:
        params["customer"] = customer
    elif email:
        params["customer_email"] = email
    try:
        session = client().v1.checkout.sessions.create(params, options=on_account(account))
    except stripe.StripeError as exc:
        raise stripe_failure(exc) from exc
    return CheckoutStarted(session_id=session["id"], url=session["url"],
                           stripe_account_id=account)


def start_portal(user_id: uuid.UUID | None) -> str:
    """A Stripe billing portal session where the subscriber changes or cancels its plan."""
    require_stripe()
    owner = Subscription.user_id.is_(None) if user_id is None else Subscription.user_id == user_id
    row = db.session.scalars(select(Subscription).where(owner)
                             .order_by(Subscription.created_at.desc())).first()
    if row is None:
        raise ApiError(409, "no_subscription",
                       "There is no subscription to manage yet; choose a plan first.")
    try:
        session = client().v1.billing_portal.sessions.create(
            {"customer": row.stripe_customer_id, "return_url": absolute_url("/billing")},
            options=on_account(row.stripe_account_id))
    except stripe.StripeError as exc:
        raise stripe_failure(exc) from exc
    return session["url"]
