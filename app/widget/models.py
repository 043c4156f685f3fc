"""Widget keys, and what a widget did with them: visitors' conversations and executions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models import IdMixin, TimestampMixin, UTCDateTime
from tenants.isolation import TenantScoped


class WidgetKey(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A publishable key (``pk_…``): safe in a web page, bound to one agent, one owner (the
    customer whose usage it is, or a reseller's staff member) and a list of allowed origins.

    Not a secret: what it allows is bounded by its origins, its rate limits and its monthly
    cap, and by the short-lived token a page exchanges it for. Revoking it ends every token
    at once, since each use of a token reads the key.
    """

    __tablename__ = "widget_keys"
    __table_args__ = (UniqueConstraint("key"),)

    key: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    agent_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True)
    # Whose usage and quota the executions count against (and whose conversations they are).
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # ["https://shop.example", "http://localhost:8080"]: scheme, host and port, exactly.
    allowed_origins: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # name, primary_color, accent_color, logo_url, greeting, placeholder (all optional).
    appearance: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    monthly_cap: Mapped[int | None] = mapped_column(Integer)
    # License-gated: a token only for a license key that validates VALID.
    requires_license: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None


class WidgetConversation(IdMixin, TenantScoped, db.Model):
    """A visitor's thread with a key's agent: the same visitor id continues it."""

    __tablename__ = "widget_conversations"
    __table_args__ = (UniqueConstraint("widget_key_id", "visitor_id"),)

    widget_key_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("widget_keys.id", ondelete="CASCADE"), nullable=False)
    visitor_id: Mapped[str] = mapped_column(String(64), nullable=False)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agent_conversations.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WidgetExecution(IdMixin, TenantScoped, db.Model):
    """The widget key an execution ran with: its credential, as api_key_id is for API keys."""

    __tablename__ = "widget_executions"
    __table_args__ = (UniqueConstraint("execution_id"),)

    execution_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agent_executions.id", ondelete="CASCADE"), nullable=False)
    widget_key_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("widget_keys.id", ondelete="CASCADE"), nullable=False, index=True)
    visitor_id: Mapped[str] = mapped_column(String(64), nullable=False)
    origin: Mapped[str | None] = mapped_column(String(255))
    license_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
