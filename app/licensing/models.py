"""Licensing tables. Every one is tenant-scoped: a reseller's keys, products and licenses."""

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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models import IdMixin, TimestampMixin, UTCDateTime
from jobs.models import Dispatched
from tenants.isolation import TenantScoped

LICENSE_STATUSES = ("active", "suspended", "revoked")
EXPIRY_STRATEGIES = ("restrict", "allow")
BULK_STATUSES = ("queued", "running", "done", "failed")


class SigningKey(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """One Ed25519 key of a reseller. The newest unretired key signs; all unretired verify."""

    __tablename__ = "license_signing_keys"
    __table_args__ = (UniqueConstraint("kid"),)

    kid: Mapped[str] = mapped_column(String(16), nullable=False)  # hex of 8 random bytes
    public_key: Mapped[str] = mapped_column(String(64), nullable=False)  # base64url, raw 32 B
    # secrets_box blob bound to this tenant and purpose "license-signing-key:<kid>".
    private_key_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


class Product(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """What a license unlocks: a named bundle of agents and entitlements."""

    __tablename__ = "license_products"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    name: Mapped[str] = mapped_column(String(120), nullable=False)
    # The product scope an embedded agent names when it validates (``product`` in the body).
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    agent_ids: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    entitlements: Mapped[list] = mapped_column(JSON, nullable=False, default=list)


class Policy(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """How licenses of a product behave: duration, expiry, machines, heartbeats, usage."""

    __tablename__ = "license_policies"
    __table_args__ = (
        CheckConstraint("expiry_strategy IN ('restrict', 'allow')", name="expiry_strategy"),
        CheckConstraint("max_machines IS NULL OR max_machines >= 1", name="max_machines"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("license_products.id", ondelete="RESTRICT"), nullable=False,
        index=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    duration_days: Mapped[int | None] = mapped_column(Integer)  # None: perpetual
    # restrict: an expired license is refused; allow: it validates, flagged ``expired``.
    expiry_strategy: Mapped[str] = mapped_column(String(16), nullable=False, default="restrict")
    grace_period_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_machines: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    # Node-locked: a seat belongs to one machine until deactivated. Floating: seats are
    # shared and only live (heartbeating) machines hold one.
    floating: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    heartbeat_interval_seconds: Mapped[int | None] = mapped_column(Integer)
    max_executions_per_period: Mapped[int | None] = mapped_column(Integer)
    execution_period_seconds: Mapped[int] = mapped_column(Integer, nullable=False,
                                                          default=30 * 24 * 3600)
    fingerprint_required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Granted to every license of the policy (with its product's and the license's own).
    entitlements: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    # Machines must send a first heartbeat before they validate (HEARTBEAT_NOT_STARTED).
    require_heartbeat: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Licenses must check in at least this often (OVERDUE otherwise); None: never.
    check_in_interval_seconds: Mapped[int | None] = mapped_column(Integer)
    # The cores all live machines of a license may report together; None: unlimited.
    max_cores: Mapped[int | None] = mapped_column(Integer)

    product: Mapped[Product] = relationship(lazy="joined")


class License(IdMixin, TenantScoped, TimestampMixin, db.Model):
    __tablename__ = "licenses"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended', 'revoked')", name="status"),
        Index("ix_licenses_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_licenses_expires_at", "expires_at"),
    )

    policy_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("license_policies.id", ondelete="RESTRICT"), nullable=False,
        index=True)
    product_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("license_products.id", ondelete="RESTRICT"), nullable=False,
        index=True)
    # The key as issued. Not a password: it is signed, meant to be shown to its holder and
    # verifiable offline; suspending or revoking the license is how access is withdrawn.
    key: Mapped[str] = mapped_column(String(200), nullable=False)
    kid: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A customer the reseller sold to before they had an account; claimed on sign-up.
    customer_email: Mapped[str | None] = mapped_column(String(254), index=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), index=True)
    bulk_issue_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("license_bulk_issues.id", ondelete="SET NULL"), index=True)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Written by the counters flush job, never on the validation hot path.
    validation_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When license.expired was emitted for the current expiry (the periodic expiry scan sets
    # it; a renewal or extension clears it so that the new expiry is announced in its turn).
    expiry_announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Entitlements of this license alone (its product's and policy's come on top).
    entitlements: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    last_check_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    policy: Mapped[Policy] = relationship(lazy="joined")
    product: Mapped[Product] = relationship(lazy="joined")
    machines: Mapped[list[Machine]] = relationship(
        back_populates="license", cascade="all, delete-orphan", order_by="Machine.created_at")


class Machine(IdMixin, TenantScoped, TimestampMixin, db.Model):
    """A device holding a seat of a license, identified by its fingerprint."""

    __tablename__ = "license_machines"
    __table_args__ = (UniqueConstraint("license_id", "fingerprint"),)

    license_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("licenses.id", ondelete="CASCADE"), nullable=False, index=True)
    fingerprint: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    ip: Mapped[str | None] = mapped_column(String(64))
    last_heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                        default=clock.now)
    # None until the machine's first heartbeat (activation is not one).
    first_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cores: Mapped[int | None] = mapped_column(Integer)  # as reported at activation

    license: Mapped[License] = relationship(back_populates="machines")


class BulkIssue(IdMixin, TenantScoped, TimestampMixin, Dispatched, db.Model):
    """A request to issue many licenses at once; the job writes its progress here."""

    __tablename__ = "license_bulk_issues"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        CheckConstraint("requested >= 1 AND requested <= 10000", name="requested"),
        # An Idempotency-Key names one bulk issue per caller (NULL keys never collide).
        Index("uq_license_bulk_issues_idempotency", "tenant_id", "created_by_id",
              "idempotency_key", unique=True),
    )

    policy_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("license_policies.id", ondelete="RESTRICT"), nullable=False)
    requested: Mapped[int] = mapped_column(Integer, nullable=False)
    issued: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    name_prefix: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    error: Mapped[str | None] = mapped_column(Text)
    # Runs that claimed it; a run whose lease passed (its worker died) is resumed by the
    # recovery sweep, and after MAX_ATTEMPTS the issue fails with its reason in ``error``.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                          server_default="0")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    # app/api/idempotency.py: the key and a SHA-256 of the request that used it.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def progress(self) -> float:
        return self.issued / self.requested if self.requested else 0.0


class ValidationRecord(IdMixin, TenantScoped, db.Model):
    """The validation log: written in batches by the counters flush job, not per request."""

    __tablename__ = "license_validations"
    __table_args__ = (Index("ix_license_validations_tenant_at", "tenant_id", "validated_at"),)

    license_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("licenses.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(40), nullable=False)
    fingerprint: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))
    validated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
