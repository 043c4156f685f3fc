"""Users: each belongs to one tenant; the same email may exist in two tenants."""

from __future__ import annotations

import uuid
from datetime import datetime

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
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.extensions import db
from app.models import IdMixin, TimestampMixin, UTCDateTime
from tenants.isolation import TenantScoped

ROLES = ("ADMIN", "RESELLER", "USER")


class User(IdMixin, TenantScoped, TimestampMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        CheckConstraint("role IN ('ADMIN', 'RESELLER', 'USER')", name="role"),
    )

    email: Mapped[str] = mapped_column(String(254), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="USER")
    # NULL for accounts that only sign in through OAuth.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped on password change: sessions carrying an older value are logged out.
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Set when the reseller bans this customer: its licenses validate as BANNED.
    banned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # flask-login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class RefreshToken(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A refresh token, by hash only. Tokens descended from one sign-in share a family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_tenant_family", "tenant_id", "family_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """An API key: shown once, stored as a hash, found by its public prefix."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant_user", "tenant_id", "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    # The visible part ("ak_3f9c2a1b"): identifies the key in lists and locates its row.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    last_four: Mapped[str] = mapped_column(String(4), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(IdMixin, TenantScoped, db.Model):
    """Append-only: rows are inserted, never updated or deleted (a trigger enforces it)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_created", "tenant_id", "created_at"),)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                 default=clock.now)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_label: Mapped[str] = mapped_column(String(254), nullable=False, default="")
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)


OAUTH_PROVIDERS = ("google", "github")


class OAuthIdentity(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A provider account (Google ``sub``, GitHub user id) linked to one user of one tenant.

    Unique per tenant, not globally: the same Google account signing in at two resellers is
    two separate customers, each reseller's own.
    """

    __tablename__ = "oauth_identities"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "subject"),
        Index("ix_oauth_identities_tenant_user", "tenant_id", "user_id"),
        CheckConstraint("provider IN ('google', 'github')", name="provider"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    # The provider's stable id; emails change, this does not.
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    email: Mapped[str | None] = mapped_column(String(254))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TenantOAuthProvider(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A tenant's own OAuth app for one provider: the consent screen shows the reseller's
    name, never the platform's. The client secret is stored encrypted (app.secrets_box)."""

    __tablename__ = "tenant_oauth_providers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider"),
        CheckConstraint("provider IN ('google', 'github')", name="provider"),
    )

    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    client_id: Mapped[str] = mapped_column(String(255), nullable=False)
    client_secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


INVITATION_ROLES = ("RESELLER", "USER")


class Invitation(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """An invitation to join a tenant: a single-use, expiring set-password link.

    Only the SHA-256 of the link's token is stored (like API keys): a database reader cannot
    accept someone else's invitation. Re-sending replaces the hash, so an older link dies.
    """

    __tablename__ = "invitations"
    __table_args__ = (
        Index("ix_invitations_tenant_email", "tenant_id", "email"),
        CheckConstraint("role IN ('RESELLER', 'USER')", name="role"),
    )

    email: Mapped[str] = mapped_column(String(254), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    send_count: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # NULL when the platform operator invited (the operator is no user of this tenant).
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    invited_by_label: Mapped[str] = mapped_column(String(254), nullable=False, default="")
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def state(self, now: datetime) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "pending"
