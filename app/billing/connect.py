"""Stripe Connect: a reseller's own Stripe account, where its customers' payments land.

The platform creates an Express account for the reseller and sends it through Stripe's
hosted onboarding (Account Links). Its customers' subscriptions are then created on that
account, with the platform's application fee percent.
"""

from __future__ import annotations

from typing import Any

import stripe
from sqlalchemy import select

from app import clock
from app.billing.config import require_stripe
from app.billing.models import ConnectAccount
from app.billing.stripe_client import client, plain, stripe_failure
from app.errors import ApiError
from app.extensions import db
from tenants.context import current
from tenants.urls import absolute_url


def connect_account() -> ConnectAccount | None:
    return db.session.scalars(select(ConnectAccount)).first()


def apply_account(row: ConnectAccount, remote: Any) -> ConnectAccount:
    row.charges_enabled = bool(remote.get("charges_enabled"))
    row.payouts_enabled = bool(remote.get("payouts_enabled"))
    row.details_submitted = bool(remote.get("details_submitted"))
    row.synced_at = clock.now()
    return row


def start_onboarding() -> str:
    """The Stripe-hosted onboarding URL for the current reseller (its account made once)."""
    require_stripe()
    tenant = current()
    if tenant.is_platform:
        raise ApiError(409, "connect_not_for_platform",
                       "The platform is paid on its own Stripe account; Connect is for "
                       "resellers.")
    row = connect_account()
    try:
        if row is None:
            remote = client().v1.accounts.create(
                {"type": "express", "email": tenant.support_email or None,
                 "metadata": {"albedo_tenant_id": str(tenant.id)}}
                if tenant.support_email else
                {"type": "express", "metadata": {"albedo_tenant_id": str(tenant.id)}},
                options={"idempotency_key": f"albedo-connect-{tenant.id}"})
            row = apply_account(ConnectAccount(stripe_account_id=remote["id"]), plain(remote))
            db.session.add(row)
            from app.auth import audit

            audit.record("payouts_onboarding_started", **audit.acting(), target_type="tenant",
                         target_id=tenant.id)
            db.session.flush()
        link = client().v1.account_links.create({
            "account": row.stripe_account_id, "type": "account_onboarding",
            "refresh_url": absolute_url("/billing/connect/refresh"),
            "return_url": absolute_url("/billing/connect/return")})
    except stripe.StripeError as exc:
        raise stripe_failure(exc) from exc
    return link["url"]


def refresh_account() -> ConnectAccount | None:
    """Re-read the reseller's account from Stripe (after onboarding, or on account.updated)."""
    row = connect_account()
    if row is None:
        return None
    try:
        remote = plain(client().v1.accounts.retrieve(row.stripe_account_id))
    except stripe.StripeError as exc:
        raise stripe_failure(exc) from exc
    return apply_account(row, remote)


def payout_account() -> ConnectAccount:
    """The connected account a customer payment goes to; it must be able to take charges."""
    row = connect_account()
    if row is None or not row.charges_enabled:
        raise ApiError(409, "reseller_not_connected",
                       "This seller has not finished connecting its Stripe account, so it "
                       "cannot take payments yet.")
    return row
