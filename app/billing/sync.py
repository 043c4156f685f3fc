"""Stripe → database: subscriptions and invoices, always from a fresh read of Stripe.

Events can arrive late, twice or out of order, so nothing here trusts an event's payload:
every sync retrieves the object and writes what Stripe says now. Any order of events
therefore ends in Stripe's current state.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app import clock
from app.billing.models import Invoice, Subscription
from app.billing.stripe_client import client, on_account, plain
from app.extensions import db

TENANT_KEY = "albedo_tenant_id"
USER_KEY = "albedo_user_id"


def from_timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def _get(obj: Any, key: str, default: Any = None) -> Any:
    try:
        value = obj[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def object_id(value: Any) -> str | None:
    """An expandable field: either an id string or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    return _get(value, "id")


def routing_metadata(obj: Any) -> dict[str, str]:
    """The albedo_* metadata we put on every object we create through Checkout."""
    metadata = dict(_get(obj, "metadata", {}) or {})
    details = _get(_get(obj, "parent", {}), "subscription_details", {})
    for key, value in dict(_get(details, "metadata", {}) or {}).items():
        metadata.setdefault(key, value)
    return {k: str(v) for k, v in metadata.items() if k in (TENANT_KEY, USER_KEY)}


def user_from_metadata(metadata: dict[str, str]) -> uuid.UUID | None:
    raw = metadata.get(USER_KEY)
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


def retrieve_subscription(subscription_id: str, account: str | None) -> Any:
    return plain(client().v1.subscriptions.retrieve(subscription_id,
                                                   options=on_account(account)))


def retrieve_invoice(invoice_id: str, account: str | None) -> Any:
    return plain(client().v1.invoices.retrieve(invoice_id, options=on_account(account)))


def apply_subscription(remote: Any, account: str | None,
                       user_id: uuid.UUID | None) -> Subscription:
    """Write Stripe's view of a subscription into the current tenant."""
    row = db.session.scalars(select(Subscription).where(
        Subscription.stripe_subscription_id == remote["id"])).first()
    if row is None:
        row = Subscription(stripe_subscription_id=remote["id"], user_id=user_id)
        db.session.add(row)
    before = _state(row)
    items = _get(_get(remote, "items", {}), "data", []) or []
    first = items[0] if items else {}
    row.stripe_customer_id = object_id(_get(remote, "customer")) or ""
    row.stripe_account_id = account
    row.stripe_price_id = object_id(_get(first, "price"))
    row.status = _get(remote, "status", "incomplete")
    # Since API 2025-03-31 the period lives on the items, not the subscription.
    row.current_period_end = from_timestamp(_get(first, "current_period_end")
                                            or _get(remote, "current_period_end"))
    row.cancel_at_period_end = bool(_get(remote, "cancel_at_period_end", False))
    row.canceled_at = from_timestamp(_get(remote, "canceled_at"))
    row.synced_at = clock.now()
    db.session.flush()
    if _state(row) != before:
        _emit_updated(row)
    return row


def _state(row: Subscription) -> tuple:
    return (row.status, row.stripe_price_id, row.current_period_end, row.cancel_at_period_end,
            row.canceled_at)


def _emit_updated(row: Subscription) -> None:
    """subscription.updated, only when Stripe's view actually changed: a replayed or
    re-synced subscription that is already up to date says nothing."""
    from app.integrations.events import emit

    emit("subscription.updated", {
        "subscription_id": str(row.id), "user_id": str(row.user_id) if row.user_id else None,
        "status": row.status, "stripe_price_id": row.stripe_price_id,
        "current_period_end": row.current_period_end,
        "cancel_at_period_end": row.cancel_at_period_end}, owner_user_id=row.user_id)


def sync_subscription(subscription_id: str, account: str | None,
                      user_id: uuid.UUID | None) -> Subscription:
    return apply_subscription(retrieve_subscription(subscription_id, account), account, user_id)


def invoice_subscription_id(remote: Any) -> str | None:
    details = _get(_get(remote, "parent", {}), "subscription_details", {})
    return object_id(_get(details, "subscription")) or object_id(_get(remote, "subscription"))


def apply_invoice(remote: Any, account: str | None, user_id: uuid.UUID | None) -> Invoice:
    row = db.session.scalars(select(Invoice).where(
        Invoice.stripe_invoice_id == remote["id"])).first()
    if row is None:
        row = Invoice(stripe_invoice_id=remote["id"], user_id=user_id)
        db.session.add(row)
    row.stripe_subscription_id = invoice_subscription_id(remote)
    row.stripe_account_id = account
    row.number = _get(remote, "number")
    row.status = _get(remote, "status", "draft")
    row.amount_due = int(_get(remote, "amount_due", 0))
    row.amount_paid = int(_get(remote, "amount_paid", 0))
    row.currency = str(_get(remote, "currency", "usd")).lower()
    row.hosted_invoice_url = _get(remote, "hosted_invoice_url")
    row.invoice_pdf = _get(remote, "invoice_pdf")
    row.customer_email = _get(remote, "customer_email")
    row.issued_at = from_timestamp(_get(remote, "created"))
    db.session.flush()
    return row
