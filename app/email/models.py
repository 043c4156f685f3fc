from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models import IdMixin, TimestampMixin, UTCDateTime
from jobs.models import Dispatched
from tenants.isolation import TenantScoped

# queued → sending (claimed, the send is under way) → sent; or → retrying (next_attempt_at)
# → sending …; or → failed with last_error after its attempts.
EMAIL_STATUSES = ("queued", "sending", "retrying", "sent", "failed")


class OutboundEmail(IdMixin, TenantScoped, TimestampMixin, Dispatched, db.Model):
    """One email as rendered and sent; with the outbox backend, this row *is* the delivery."""

    __tablename__ = "emails"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'sending', 'retrying', 'sent', 'failed')",
                        name="status"),
        Index("ix_emails_tenant_created", "tenant_id", "created_at"),
        # The recovery sweep's scan: unfinished emails by state.
        Index("ix_emails_status", "status"),
    )

    template: Mapped[str] = mapped_column(String(64), nullable=False)
    to_address: Mapped[str] = mapped_column(String(254), nullable=False)
    from_name: Mapped[str] = mapped_column(String(120), nullable=False)
    from_address: Mapped[str] = mapped_column(String(254), nullable=False)
    reply_to: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    html_body: Mapped[str] = mapped_column(Text, nullable=False)
    text_body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    backend: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a retrying email is due again; the recovery sweep dispatches it then.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While ``sending``: past this, the worker that claimed it is presumed dead.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
