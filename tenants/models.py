"""Tenant and Domain: the platform-level tables that tenant resolution reads.

These two are not tenant-scoped: the Host header is resolved to a tenant before any tenant
is known. Every other table carries tenant_id through :class:`tenants.isolation.TenantScoped`.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models import IdMixin, TimestampMixin, UTCDateTime

TENANT_KINDS = ("platform", "reseller")
TENANT_STATUSES = ("active", "suspended")
DEFAULT_PRIMARY_COLOR = "#4f46e5"
DEFAULT_ACCENT_COLOR = "#0ea5e9"


class Tenant(IdMixin, TimestampMixin, db.Model):
    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint("kind IN ('platform', 'reseller')", name="kind"),
        CheckConstraint("status IN ('active', 'suspended')", name="status"),
    )

    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="reseller")
    slug: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    # Branding: what the tenant's pages, emails and license keys show instead of "Albedo".
    display_name: Mapped[str] = mapped_column(String(120), nullable=False)
    logo_url: Mapped[str | None] = mapped_column(String(500))
    favicon_url: Mapped[str | None] = mapped_column(String(500))
    primary_color: Mapped[str] = mapped_column(String(7), nullable=False,
                                               default=DEFAULT_PRIMARY_COLOR)
    accent_color: Mapped[str] = mapped_column(String(7), nullable=False,
                                              default=DEFAULT_ACCENT_COLOR)
    support_email: Mapped[str | None] = mapped_column(String(254))
    license_key_prefix: Mapped[str] = mapped_column(String(12), nullable=False)
    signup_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    domains: Mapped[list[Domain]] = relationship(back_populates="tenant",
                                                 cascade="all, delete-orphan")


class Domain(IdMixin, TimestampMixin, db.Model):
    """A custom hostname a reseller serves its dashboard on, once verified."""

    __tablename__ = "domains"
    __table_args__ = (
        # At most one primary domain per tenant.
        Index("uq_domains_primary_per_tenant", "tenant_id", unique=True,
              sqlite_where=text("is_primary"), postgresql_where=text("is_primary")),
        # PostgreSQL only (migration 0022): SQLite adds a CHECK to an existing table only by
        # copying the table, not worth it for the quick start (only tenants.domains writes it).
        CheckConstraint("last_check_code IN ('no_record', 'wrong_value', 'timeout', "
                        "'lookup_failed')", name="last_check_code"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    hostname: Mapped[str] = mapped_column(String(253), nullable=False, unique=True)
    is_primary: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verification_token: Mapped[str] = mapped_column(
        String(64), nullable=False, default=lambda: secrets.token_urlsafe(24))
    # The last DNS check of a pending domain ("Verify now", the operator's "Check DNS" or
    # the background re-check) and what kept it from verifying (tenants.verification's
    # codes; None: it verified, or was never checked).
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_check_code: Mapped[str | None] = mapped_column(String(16))

    tenant: Mapped[Tenant] = relationship(back_populates="domains")

    @property
    def verified(self) -> bool:
        return self.verified_at is not None
