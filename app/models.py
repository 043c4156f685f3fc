"""Column types and mixins shared by every feature's models."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, TypeDecorator, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app import clock


class UTCDateTime(TypeDecorator):
    """Timezone-aware in and out on every database (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: use app.clock.now()")
        return value

    def process_result_value(self, value, dialect):
        return clock.aware(value)


def new_id() -> uuid.UUID:
    # Random ids: sequential ones would let one tenant count another's rows.
    return uuid.uuid4()


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now,
                                                 onupdate=clock.now, nullable=False)
