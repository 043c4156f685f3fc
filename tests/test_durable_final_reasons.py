"""Every unit of background work ends done, or failed with a reason after its attempts: the
periodic tasks (a run whose worker died) and the Stripe meter reports (a report Stripe keeps
refusing), which had no end before."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import select

from app import clock
from app.extensions import db
from jobs.models import PeriodicRun
from jobs.periodic import enqueue_due, note_run
from tenants.context import activate


def test_a_periodic_run_whose_worker_died_is_recorded_failed_at_the_next_slot(app):
    now = 1_800_000_000.0
    with app.app_context():
        assert "licensing.announce_expiries" in enqueue_due(now)
        clock.set_clock(lambda: datetime.fromtimestamp(now + 1, UTC))
        note_run("licensing.announce_expiries", "running")  # ... and its worker is killed
        # The next slots of the other tasks, and a slot of this one within the lease, leave
        # the run alone: it may still be working.
        enqueue_due(now + 15)
        assert db.session.get(PeriodicRun, "licensing.announce_expiries",
                              populate_existing=True).last_outcome == "running"
        # Its next slot (300 s later) is claimed past the job timeout? Not yet (600 s + 30 s).
        assert "licensing.announce_expiries" in enqueue_due(now + 300)
        assert db.session.get(PeriodicRun, "licensing.announce_expiries",
                              populate_existing=True).last_outcome == "running"
        assert "licensing.announce_expiries" in enqueue_due(now + 900)
        row = db.session.get(PeriodicRun, "licensing.announce_expiries",
                             populate_existing=True)
        assert (row.last_outcome, row.failures, row.runs) == ("failed", 1, 1)
        assert "worker stopped during the run" in row.last_error
        # A run that finished is never rewritten.
        clock.set_clock(lambda: datetime.fromtimestamp(now + 901, UTC))
        note_run("licensing.announce_expiries", "running")
        note_run("licensing.announce_expiries", "done")
        assert "licensing.announce_expiries" in enqueue_due(now + 3000)
        row = db.session.get(PeriodicRun, "licensing.announce_expiries",
                             populate_existing=True)
        assert (row.last_outcome, row.failures, row.last_error) == ("done", 1, None)


def _ledger_entry(user_id) -> uuid.UUID:
    """One charge on the usage ledger (what a finished execution writes)."""
    from app.billing import ledger

    execution = SimpleNamespace(
        id=uuid.uuid4(), caller_user_id=user_id, prompt_tokens=5, completion_tokens=5,
        cost_micros=1, agent_id=uuid.uuid4(), model="m", version_number=1,
        finished_at=clock.now(), source="api", license_id=None, api_key_id=None,
        started_at=clock.now())
    entry = ledger.record(execution, "succeeded")
    db.session.commit()
    return entry.id


def test_a_meter_report_ends_failed_with_its_reason_after_its_attempts(app, acme, globex,
                                                                       make_user):
    from app.billing import meters
    from app.billing.rebilling_models import MeterReport

    ann = make_user(acme, "ann@example.com")
    with app.app_context(), activate(acme.info):
        entry_id = _ledger_entry(ann)
        now = clock.now()
        report_id = None
        for attempt in range(1, meters.MAX_ATTEMPTS + 1):
            meters._record(entry_id, report_id, "reseller", "failed", "HTTP 400: refused", now)
            db.session.commit()
            row = db.session.scalars(select(MeterReport)).one()
            report_id = row.id
            if attempt < meters.MAX_ATTEMPTS:  # waiting for its next attempt
                assert row.status == "retrying" and row.next_attempt_at > now
        assert (row.status, row.attempts, row.next_attempt_at) == (
            "failed", meters.MAX_ATTEMPTS, None)
        assert row.last_error == f"gave up after {meters.MAX_ATTEMPTS} attempts: HTTP 400: refused"
    with app.app_context(), activate(globex.info):  # the other tenant sees none of it
        assert db.session.scalars(select(MeterReport)).all() == []
