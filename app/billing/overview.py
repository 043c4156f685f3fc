"""What the billing pages show each role (queries only; views.py stays thin)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.auth.models import User
from app.billing.models import Invoice, Plan, Subscription
from app.billing.plans import list_plans
from app.extensions import db
from tenants.models import Tenant


def platform_plans() -> list[Plan]:
    platform_id = select(Tenant.id).where(Tenant.kind == "platform").scalar_subquery()
    return list(db.session.scalars(
        select(Plan).where(Plan.tenant_id == platform_id, Plan.active.is_(True))
        .order_by(Plan.amount_minor, Plan.code)
        .execution_options(cross_tenant="resellers choose among the platform's plans")))


def customer_subscriptions() -> list[tuple[Subscription, str | None]]:
    """The reseller's customers and their subscriptions (its whole tenant)."""
    return list(db.session.execute(
        select(Subscription, User.email).outerjoin(User, User.id == Subscription.user_id)
        .where(Subscription.user_id.is_not(None))
        .order_by(Subscription.created_at.desc()).limit(200)).all())


def invoices(user_id: Any | None, limit: int = 50) -> list[Invoice]:
    stmt = select(Invoice)
    if user_id is not None:
        stmt = stmt.where(Invoice.user_id == user_id)
    else:
        stmt = stmt.where(Invoice.user_id.is_(None))
    return list(db.session.scalars(stmt.order_by(Invoice.created_at.desc()).limit(limit)))


def platform_overview() -> dict[str, Any]:
    """Resellers' subscriptions to the platform and what they paid, by currency."""
    reason = "the platform operator watches resellers' subscriptions and revenue"
    subscriptions = db.session.execute(
        select(Subscription, Tenant.display_name).join(Tenant, Tenant.id == Subscription.tenant_id)
        .where(Subscription.user_id.is_(None))
        .order_by(Subscription.created_at.desc()).limit(200)
        .execution_options(cross_tenant=reason)).all()
    revenue = db.session.execute(
        select(Invoice.currency, func.sum(Invoice.amount_paid))
        .where(Invoice.user_id.is_(None), Invoice.stripe_account_id.is_(None),
               Invoice.status == "paid")
        .group_by(Invoice.currency).order_by(Invoice.currency)
        .execution_options(cross_tenant=reason)).all()
    return {"plans": list_plans(include_inactive=True), "subscriptions": subscriptions,
            "revenue": [(currency, int(total or 0)) for currency, total in revenue]}
