"""Billing tables: plans, subscriptions, invoices, Connect accounts and received Stripe events.

Two billing relationships share these tables. The platform tenant's plans are sold to
resellers; a reseller's own subscription lives in the reseller's tenant with ``user_id``
NULL. Each reseller's plans are sold to its customers; their subscriptions carry the
customer's ``user_id``. Money is integer minor units plus an ISO currency code.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models import IdMixin, TimestampMixin, UTCDateTime
from tenants.isolation import TenantScoped

PLAN_INTERVALS = ("month", "year")
# Stripe statuses in which the subscriber gets the plan's limits. past_due keeps them while
# Stripe retries the card (its dunning decides when the subscription ends).
ENTITLED_STATUSES = ("active", "trialing", "past_due")


class Plan(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """What a tenant sells: the platform's plans for resellers, a reseller's for customers."""

    __tablename__ = "billing_plans"
    __table_args__ = (
        UniqueConstraint("tenant_id", "stripe_price_id"),
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint("interval IN ('month', 'year')", name="interval"),
        CheckConstraint("amount_minor >= 0", name="amount"),
        # One default (free) plan per tenant at most.
        Index("uq_billing_plans_default_per_tenant", "tenant_id", unique=True,
              sqlite_where=text("is_default"), postgresql_where=text("is_default")),
    )

    code: Mapped[str] = mapped_column(String(40), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    # NULL for the free plan, which is never sold through Stripe.
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    interval: Mapped[str] = mapped_column(String(8), nullable=False, default="month")
    amount_minor: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="usd")
    # Limits: NULL means unlimited.
    executions_per_month: Mapped[int | None] = mapped_column(Integer)
    agents: Mapped[int | None] = mapped_column(Integer)
    customers: Mapped[int | None] = mapped_column(Integer)
    licenses: Mapped[int | None] = mapped_column(Integer)
    api_keys: Mapped[int | None] = mapped_column(Integer)
    features: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Subscription(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A subscription as Stripe last reported it (Stripe is the source of truth)."""

    __tablename__ = "billing_subscriptions"

    stripe_subscription_id: Mapped[str] = mapped_column(String(255), nullable=False,
                                                        unique=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    # The reseller's connected account for customer subscriptions; NULL on the platform's.
    stripe_account_id: Mapped[str | None] = mapped_column(String(255))
    # NULL: the tenant's own subscription to the platform.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), index=True)
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def entitled(self) -> bool:
        return self.status in ENTITLED_STATUSES


class Invoice(IdMixin, TenantScoped, TimestampMixin, db.Model):
    __tablename__ = "billing_invoices"

    stripe_invoice_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_account_id: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), index=True)
    number: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    amount_due: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    amount_paid: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(1000))
    invoice_pdf: Mapped[str | None] = mapped_column(String(1000))
    customer_email: Mapped[str | None] = mapped_column(String(254))
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConnectAccount(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A reseller's own Stripe account, where its customers' payments land."""

    __tablename__ = "billing_connect_accounts"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    stripe_account_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    charges_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    details_submitted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StripeEvent(IdMixin, db.Model):
    """Every Stripe event received, once. Platform-level: stored before it is routed.

    The unique Stripe id is the idempotency lock: the row is inserted first, in the same
    transaction as the event's effects, so a replay or a concurrent duplicate conflicts
    and changes nothing.
    """

    __tablename__ = "billing_stripe_events"

    stripe_event_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    stripe_account_id: Mapped[str | None] = mapped_column(String(255))
    # The tenant the event was routed to; NULL when it was acknowledged and ignored.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="webhook")
    stripe_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
