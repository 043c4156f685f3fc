"""What the platform operator dismissed from the system page's failed units.

A failed email or execution is history its tenant can still read; "discard" must not rewrite
it. Dismissing records that the operator has dealt with it, so the page stops listing it.
A platform table: no tenant_id (the unit's own row carries its tenant).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app import clock
from app.extensions import db
from app.models import IdMixin, UTCDateTime


class Dismissal(IdMixin, db.Model):
    __tablename__ = "ops_dismissals"
    __table_args__ = (UniqueConstraint("kind", "unit_id"),)

    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    unit_id: Mapped[str] = mapped_column(String(64), nullable=False)
    dismissed_by: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    dismissed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                   default=clock.now)
