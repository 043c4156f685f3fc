"""Integrations data: stored events, webhook endpoints, deliveries with their attempts, and
REST-hook subscriptions (Zapier, n8n).

An event is stored before anything is sent, and every receiver gets its own delivery row
holding the retry state (``next_attempt_at``). The database, not Redis, is the source of truth
for what is still owed: a lost job or a receiver that is down for hours costs time, never an
event.
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
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models import IdMixin, TimestampMixin, UTCDateTime
from jobs.models import Dispatched
from tenants.isolation import TenantScoped

DELIVERY_STATUSES = ("pending", "sending", "succeeded", "failed", "cancelled")


class WebhookEvent(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """Something that happened in a tenant, stored once, fanned out to every receiver."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_tenant_type_created", "tenant_id", "type",
                            "created_at"),)

    type: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # The customer the event concerns: their own endpoints and hooks receive it too.
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # "Send a test event" rows: delivered to one endpoint, never offered as samples.
    is_test: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    @property
    def public_id(self) -> str:
        return f"evt_{self.id.hex}"


class WebhookEndpoint(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A URL that receives signed events: reseller-level (no owner) or a customer's own."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    description: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    # Empty list: every event type.
    event_types: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    # During a rotation the old secret keeps signing (a second signature) until it expires.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # First failure since the last success; 5 days of that and the endpoint is disabled.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def public_id(self) -> str:
        return f"ep_{self.id.hex}"


class RestHook(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A REST-hook subscription (Zapier, n8n): one event type to one target URL."""

    __tablename__ = "rest_hooks"

    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    target_url: Mapped[str] = mapped_column(String(2048), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    # Reseller subscriptions receive the whole tenant's events, a customer's only their own.
    tenant_wide: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class WebhookDelivery(IdMixin, TenantScoped, TimestampMixin, Dispatched, db.Model):
    """One event owed to one receiver (an endpoint or a REST hook), with its retry state."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'succeeded', 'failed', 'cancelled')",
                        name="status"),
        UniqueConstraint("event_id", "endpoint_id"),
        UniqueConstraint("event_id", "hook_id"),
        # The dispatcher's sweep: what is due, across tenants.
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_tenant_created", "tenant_id", "created_at"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False, index=True)
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    hook_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("rest_hooks.id", ondelete="SET NULL"), index=True)
    # A snapshot: the log still says where it went after a hook is deleted.
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Attempts since the delivery was (re)started: a manual replay gets a fresh schedule.
    run_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While "sending": a worker that dies mid-request leaves this behind; the sweep retakes it.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    event: Mapped[WebhookEvent] = relationship(lazy="joined")
    attempts: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="delivery", order_by="WebhookAttempt.number",
        cascade="all, delete-orphan")

    @property
    def webhook_id(self) -> str:
        """The Standard Webhooks message id: one per delivery, the same on every retry."""
        return f"msg_{self.id.hex}"


class WebhookAttempt(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """One HTTP try of a delivery: what came back and how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False,
        index=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    succeeded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempts")
