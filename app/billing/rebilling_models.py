"""Rebilling tables: price books, the usage ledger, spending and credits, meter reports.

Units (docs/rebilling.md): prices a person types are integer *minor* units of the book's
currency (cents, yen); everything computed per execution is integer *micro-minor* units
(millionths of a minor unit, the ``*_micro`` columns), so a few hundred tokens at a
fraction of a cent are recorded exactly and only totals are rounded, by one function
(``app.billing.pricing.round_money``). Multipliers are integer basis points (10000 = 1x).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models import IdMixin, TimestampMixin, UTCDateTime
from jobs.models import Dispatched
from tenants.isolation import TenantScoped

PRICE_KINDS = ("tokens", "execution", "markup")
ENTRY_KINDS = ("charge", "reversal")
LIMIT_MODES = ("soft", "hard")


class PriceBook(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A tenant's currency and Stripe meter: a reseller's retail book, the platform's
    wholesale book. Its prices are :class:`Price` rows."""

    __tablename__ = "billing_price_books"
    __table_args__ = (UniqueConstraint("tenant_id"),
                      CheckConstraint("usd_rate_ppm > 0", name="usd_rate"))

    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="usd")
    # Units of ``currency`` one US dollar buys, in millionths (EUR 0.92 -> 920000): turns the
    # provider's cost (US dollars) into the book's currency for markup prices.
    usd_rate_ppm: Mapped[int] = mapped_column(BigInteger, nullable=False, default=1_000_000)
    # The Billing Meter usage is reported to (on the reseller's connected account, or the
    # platform's own account for wholesale).
    stripe_meter_id: Mapped[str | None] = mapped_column(String(255))
    meter_event_name: Mapped[str | None] = mapped_column(String(100))


class Price(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """One price of a book, for an agent, a model, or the default (``selector``).

    ``audience`` is ``all`` in a reseller's book; in the platform's book a wholesale price
    may name one reseller (``reseller:<tenant id>``) and then wins over ``all``.
    """

    __tablename__ = "billing_prices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "audience", "selector"),
        CheckConstraint("kind IN ('tokens', 'execution', 'markup')", name="kind"),
        CheckConstraint("coalesce(input_per_million_minor, 0) >= 0 AND "
                        "coalesce(output_per_million_minor, 0) >= 0 AND "
                        "coalesce(per_execution_minor, 0) >= 0 AND "
                        "coalesce(markup_bp, 0) >= 0", name="not_negative"),
    )

    audience: Mapped[str] = mapped_column(String(60), nullable=False, default="all")
    # "default", "agent:<uuid>" or "model:<name>": one key so uniqueness needs no NULLs.
    selector: Mapped[str] = mapped_column(String(120), nullable=False)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    model: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    input_per_million_minor: Mapped[int | None] = mapped_column(Integer)
    output_per_million_minor: Mapped[int | None] = mapped_column(Integer)
    per_execution_minor: Mapped[int | None] = mapped_column(Integer)
    markup_bp: Mapped[int | None] = mapped_column(Integer)


class LedgerEntry(IdMixin, TenantScoped, db.Model):
    """One charged unit of usage (an execution), or the reversal of one. Never updated."""

    __tablename__ = "billing_usage_ledger"
    __table_args__ = (
        CheckConstraint("kind IN ('charge', 'reversal')", name="kind"),
        # Exactly one charge per execution, whoever writes it and however often.
        Index("uq_billing_usage_ledger_charge", "tenant_id", "execution_id", unique=True,
              sqlite_where=text("kind = 'charge'"), postgresql_where=text("kind = 'charge'")),
        UniqueConstraint("reverses_id"),
        Index("ix_billing_usage_ledger_tenant_created", "tenant_id", "created_at"),
        Index("ix_billing_usage_ledger_customer_period", "tenant_id", "customer_id", "period"),
    )

    kind: Mapped[str] = mapped_column(String(12), nullable=False, default="charge")
    execution_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("billing_usage_ledger.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    # The credential the execution ran under: api_key, license, widget_key, or session.
    credential_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    credential_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    version_number: Mapped[int] = mapped_column(Integer, nullable=False)
    model: Mapped[str] = mapped_column(String(100), nullable=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    # Provider cost in micro-minor US dollars (millionths of a cent).
    provider_cost_micro: Mapped[int] = mapped_column(BigInteger, nullable=False)
    wholesale_micro: Mapped[int] = mapped_column(BigInteger, nullable=False)
    wholesale_currency: Mapped[str] = mapped_column(String(3), nullable=False)
    retail_micro: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Of the retail price: covered by the plan's included usage, paid from prepaid credits,
    # and what is left to invoice (at the plan's overage price).
    included_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    credits_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    billable_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)  # "2026-12", UTC
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)


class LedgerImmutableError(RuntimeError):
    """A ledger entry never changes: write a reversing entry."""


@event.listens_for(LedgerEntry, "before_update")
def _refuse_entry_update(mapper, connection, target) -> None:
    raise LedgerImmutableError("ledger entries are immutable; write a reversal")


class MeterReport(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """The Stripe side of a ledger entry: its meter event (or, for a reversal, the
    cancellation of one), on the reseller's account or on the platform's (wholesale)."""

    __tablename__ = "billing_meter_reports"
    __table_args__ = (
        UniqueConstraint("ledger_entry_id", "target"),
        CheckConstraint("target IN ('reseller', 'platform')", name="target"),
        Index("ix_billing_meter_reports_due", "status", "next_attempt_at"),
    )

    ledger_entry_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("billing_usage_ledger.id", ondelete="CASCADE"), nullable=False)
    target: Mapped[str] = mapped_column(String(10), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class CustomerAccount(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A customer's spending limit and prepaid credits."""

    __tablename__ = "billing_customer_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        CheckConstraint("limit_mode IN ('soft', 'hard')", name="limit_mode"),
        CheckConstraint("credit_balance_micro >= 0", name="balance"),
        CheckConstraint("credit_held_micro >= 0", name="held"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    spending_limit_minor: Mapped[int | None] = mapped_column(BigInteger)
    limit_mode: Mapped[str] = mapped_column(String(4), nullable=False, default="soft")
    credits_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    credit_balance_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    credit_held_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    auto_topup_below_minor: Mapped[int | None] = mapped_column(BigInteger)
    auto_topup_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    low_notified: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))


class SpendPeriod(IdMixin, TenantScoped, db.Model):
    """A customer's retail spend in one month: settled, held by running executions, and the
    highest threshold already announced (so each is announced once)."""

    __tablename__ = "billing_spend_periods"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id", "period"),)

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    spent_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    held_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    notified_pct: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class UsageHold(IdMixin, TenantScoped, db.Model):
    """What an execution reserved when it started (against a hard limit and/or credits),
    released when it is settled."""

    __tablename__ = "billing_usage_holds"
    __table_args__ = (UniqueConstraint("tenant_id", "execution_id"),)

    execution_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    limit_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    credits_micro: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CreditTopUp(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A purchase of prepaid credits (Checkout, or an automatic top-up), credited once."""

    __tablename__ = "billing_credit_topups"
    __table_args__ = (UniqueConstraint("stripe_ref"),
                      CheckConstraint("amount_minor > 0", name="amount"))

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    source: Mapped[str] = mapped_column(String(12), nullable=False)  # checkout, auto, manual
    stripe_ref: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AutoTopUp(IdMixin, TenantScoped, TimestampMixin, Dispatched, db.Model):
    """One automatic top-up: a unit of durable work (jobs/durable.py), written in the
    transaction of the charge that took the balance below the threshold and carried to a
    worker by a job. The row decides: a lost job is dispatched again by the recovery sweep,
    and the saved card is charged under this row's id as Stripe's idempotency key, so a
    repeated attempt never charges twice. At most one is open per account (the partial
    unique index): two charges crossing the threshold together top up once."""

    __tablename__ = "billing_auto_topups"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')",
                        name="status"),
        CheckConstraint("amount_minor > 0", name="amount"),
        Index("uq_billing_auto_topups_open", "account_id", unique=True,
              sqlite_where=text("status IN ('queued', 'running')"),
              postgresql_where=text("status IN ('queued', 'running')")),
        # The recovery sweep's scan: unfinished top-ups by state.
        Index("ix_billing_auto_topups_status", "status"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("billing_customer_accounts.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # The balance (micro-minor units) after the charge that crossed the threshold.
    balance_micro: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # While queued after a transient failure: when it is due again.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While running: past this, the worker that claimed it is presumed dead.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    # Why it failed (``card_declined: ...``), or the last transient error while retrying.
    reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PlanUsage(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """The usage a plan includes each month, and the price of usage beyond it."""

    __tablename__ = "billing_plan_usage"
    __table_args__ = (UniqueConstraint("plan_id"),
                      CheckConstraint("included_minor >= 0 AND overage_bp >= 0",
                                      name="not_negative"))

    plan_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("billing_plans.id", ondelete="CASCADE"), nullable=False)
    included_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Usage past the included amount is invoiced at this share of its list price.
    overage_bp: Mapped[int] = mapped_column(Integer, nullable=False, default=10_000)
