"""Durable work's columns: the periodic tasks' rows (which slot each was last enqueued for,
and how its run ended) and the dispatch count every re-dispatchable unit carries.

Platform-level (no tenant): the periodic tasks are cross-tenant sweeps.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models import UTCDateTime


class PeriodicRun(db.Model):
    """One periodic task. ``next_due_at`` is the claim: a worker that moves it forward with a
    conditional UPDATE owns the slot, so each slot is enqueued once however many workers
    tick, and nothing about it lives only in Redis."""

    __tablename__ = "periodic_runs"

    task: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_due_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # running, done, failed; the reason of the last failure stays until the next success.
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Dispatched:
    """A unit of durable work the recovery sweep may dispatch again (jobs/durable.py).

    ``dispatches`` counts the sweep's re-dispatches since a worker last claimed the unit (each
    claim sets it back to 0): a job lost again and again (a Redis that keeps restarting empty,
    a job refused by every worker) ends the unit ``failed`` after ALBEDO_MAX_DISPATCHES,
    instead of being dispatched for ever. A job that waits on its queue is live, not lost,
    and is not counted.
    """

    dispatches: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                            server_default="0")
