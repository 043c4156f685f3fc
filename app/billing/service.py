"""What the billing API and pages show a caller, in the caller's own terms.

The subject of billing: a customer (role USER) is billed for itself; a reseller (role
RESELLER) acts for its tenant, whose own subscription carries no user.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import select

from app.billing.config import stripe_config
from app.billing.limits import limits_for
from app.billing.models import Invoice, Subscription
from app.errors import ApiError
from app.extensions import db


def subject_of(role: str, user_id: uuid.UUID) -> uuid.UUID | None:
    if role == "USER":
        return user_id
    if role == "RESELLER":
        return None
    raise ApiError(403, "forbidden", "Platform operators have no subscription of their own.")


def latest_subscription(subject: uuid.UUID | None) -> Subscription | None:
    owner = Subscription.user_id.is_(None) if subject is None else Subscription.user_id == subject
    return db.session.scalars(select(Subscription).where(owner).order_by(
        Subscription.created_at.desc(), Subscription.id.desc())).first()


def billing_state(subject: uuid.UUID | None) -> dict[str, Any]:
    limits = asdict(limits_for(subject))
    limits["features"] = sorted(limits["features"])
    return {"billing_configured": stripe_config() is not None, "limits": limits,
            "subscription": latest_subscription(subject)}


def invoices_stmt(role: str, user_id: uuid.UUID):
    """A customer sees its own invoices; a reseller sees every invoice of its tenant."""
    stmt = select(Invoice)
    if role == "USER":
        stmt = stmt.where(Invoice.user_id == user_id)
    elif role != "RESELLER":
        raise ApiError(403, "forbidden", "Platform operators list revenue on platform pages.")
    return stmt
