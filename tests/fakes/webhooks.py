"""Helpers for driving the webhook pipeline in tests: an app that lets exactly the given
local receivers through the SSRF guard, a controllable clock, and draining the queues."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from app import clock, create_app


@contextmanager
def app_allowing(settings, *ports: int) -> Iterator[object]:
    """The app with ALBEDO_SSRF_ALLOW naming these 127.0.0.1 ports, and nothing else."""
    allow = ",".join(f"127.0.0.1:{port}" for port in ports)
    application = create_app(settings.with_overrides(
        extra={**settings.extra, "ALBEDO_SSRF_ALLOW": allow}))
    try:
        yield application
    finally:
        with application.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()


class ControlledClock:
    """app.clock driven by the test: time moves only when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        clock.set_clock(lambda: self.now)

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        return when


def drain(application, queues: tuple[str, ...] = ("webhooks", "emails")) -> None:
    """Run every queued job (a real RQ worker, in-process) until the queues are empty."""
    from jobs.worker import run_worker

    run_worker(application, list(queues), burst=True, simple=True)


def sweep_and_drain(application) -> int:
    """What production's periodic sweep does: queue what is due, then run it."""
    from app.integrations.delivery import dispatch_due

    with application.app_context():
        queued = dispatch_due()
    drain(application)
    return queued
