"""Agents, their immutable versions, executions, conversations and quota counters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models import IdMixin, TimestampMixin, UTCDateTime
from jobs.models import Dispatched
from tenants.isolation import TenantScoped

AGENT_STATUSES = ("active", "archived")
EXECUTION_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


class Agent(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """An agent owned by an end customer, or a reseller's template offered to its customers."""

    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "slug"),
        CheckConstraint("status IN ('active', 'archived')", name="status"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    is_template: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    slug: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    # The number of the published version (None: not runnable yet). A number rather than a
    # foreign key keeps agents <-> versions free of a cycle; (agent_id, number) is unique.
    published_version: Mapped[int | None] = mapped_column(Integer)


class AgentVersion(IdMixin, TenantScoped, db.Model):
    """One immutable configuration of an agent. Edits create a new version."""

    __tablename__ = "agent_versions"
    __table_args__ = (UniqueConstraint("agent_id", "number"),)

    agent_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    model: Mapped[str] = mapped_column(String(100), nullable=False)
    system_prompt: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # [{"name", "type": string|integer|number|boolean, "default", "required"}]
    variables: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    temperature: Mapped[float] = mapped_column(Float, nullable=False, default=0.7)
    max_output_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=1024)
    # [{"type": "http", "name", "description", "url"}]
    tools: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class VersionImmutableError(RuntimeError):
    """A saved agent version never changes: create a new one."""


@event.listens_for(AgentVersion, "before_update")
def _refuse_version_update(mapper, connection, target) -> None:
    raise VersionImmutableError("agent versions are immutable; create a new version")


class Conversation(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A multi-turn thread with one agent; executions with its id continue it."""

    __tablename__ = "agent_conversations"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False, default="")


class Message(IdMixin, TenantScoped, db.Model):
    __tablename__ = "agent_messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role"),
        Index("ix_agent_messages_conversation_created", "conversation_id", "created_at"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agent_conversations.id", ondelete="CASCADE"), nullable=False)
    execution_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Execution(IdMixin, TenantScoped, TimestampMixin, Dispatched, db.Model):
    """One run of one agent version, from the queue to its outcome (the row users see)."""

    __tablename__ = "agent_executions"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', "
                        "'timed_out')", name="status"),
        # An Idempotency-Key names one execution per caller (NULL keys never collide).
        UniqueConstraint("tenant_id", "caller_user_id", "idempotency_key",
                         name="uq_agent_executions_idempotency"),
        Index("ix_agent_executions_tenant_created", "tenant_id", "created_at"),
        Index("ix_agent_executions_status_started", "status", "started_at"),
        # The recovery sweep's scan for queued executions whose job was lost.
        Index("ix_agent_executions_status_created", "status", "created_at"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True)
    version_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agent_versions.id", ondelete="CASCADE"), nullable=False)
    version_number: Mapped[int] = mapped_column(Integer, nullable=False)
    model: Mapped[str] = mapped_column(String(100), nullable=False)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("agent_conversations.id", ondelete="SET NULL"))
    # The caller: always a user (for API keys, the key's owner), plus the key or license used.
    caller_user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    license_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="api")
    input: Mapped[str] = mapped_column(Text, nullable=False)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    output: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Millionths of a US dollar (integer minor units; one execution costs fractions of a cent).
    cost_micros: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="USD")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # SHA-256 of the request that used the key: the same key with another request is refused.
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_token_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queue_wait_ms: Mapped[int | None] = mapped_column(Integer)
    run_ms: Mapped[int | None] = mapped_column(Integer)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class ProviderSetting(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A tenant's own provider key (encrypted at rest, bound to the tenant) and base URL."""

    __tablename__ = "agent_provider_settings"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    base_url: Mapped[str | None] = mapped_column(String(500))


class QuotaCounter(IdMixin, TenantScoped, db.Model):
    """Executions started in one period for one scope (user, API key, license).

    Incremented with a conditional UPDATE in the transaction that creates the execution, so
    the check and the count are one atomic step and roll back together.
    """

    __tablename__ = "agent_quota_counters"
    __table_args__ = (UniqueConstraint("tenant_id", "scope", "period"),)

    scope: Mapped[str] = mapped_column(String(80), nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)  # "2026-11"
    used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
