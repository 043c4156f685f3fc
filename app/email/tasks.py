"""The delivery job and the emails' recovery. The row decides; the job only carries it.

An email is *claimed* (``sending``, attempts + 1, a lease) in its own commit before the SMTP
or SendGrid call, so a second delivery of the job finds nothing to claim. Its Message-ID is
derived from its id and its tenant's domain (backends.message_id_for), so every attempt of one
email carries the same Message-ID.

The window: a worker that dies after the server accepted the message and before ``sent`` is
committed leaves the row ``sending``. Nobody can know whether the server took it, so once the
lease has passed the recovery sweep sends it again (at least once), with the same Message-ID,
by which receiving servers and clients recognise the repeat. The window is the time between
the server's final 250 and our commit: milliseconds, unless the worker is killed right there.

Retries are scheduled on the row (``retrying`` with ``next_attempt_at``), carried by a delayed
job and, should that job be lost, dispatched by the sweep when due. After the last attempt the
email is ``failed`` with the reason in ``last_error``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, or_, select, update

from app import clock
from app.email.backends import backend_for
from app.email.models import OutboundEmail
from app.extensions import db
from jobs.durable import EXHAUSTED, Sweep, exhausted_message, recoverer, redispatch
from jobs.enqueue import enqueue
from jobs.queues import EMAILS
from jobs.registry import PermanentError, TransientError, task

TASK = "emails.deliver"
# The wait after each failed attempt; one attempt more than there are waits.
RETRY_DELAYS = (10, 60, 300, 900, 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# SMTP's own timeout is 15 s per step (connect, each command); a send that takes longer than
# this is presumed dead, on top of the recovery grace.
SEND_LEASE = timedelta(seconds=60)
_REASON = "the email recovery looks for emails whose job was lost, in every tenant"


def job_id_for(email_id: uuid.UUID | str, attempt: int) -> str:
    """One job id per attempt: a lost job's attempt is dispatched again under the same id."""
    return f"email-{email_id}-{attempt}"


def _lease() -> timedelta:
    return SEND_LEASE + timedelta(
        seconds=current_app.extensions["albedo.settings"].recovery_grace_seconds)


def claim(email_id: uuid.UUID) -> bool:
    """queued/retrying → sending, once: a duplicate delivery of the job finds nothing."""
    now = clock.now()
    claimed = db.session.execute(
        update(OutboundEmail).where(OutboundEmail.id == email_id,
                                    OutboundEmail.status.in_(("queued", "retrying")))
        .values(status="sending", attempts=OutboundEmail.attempts + 1, dispatches=0,
                lease_until=now + _lease(), next_attempt_at=None)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return claimed == 1


def _retry_or_fail(email: OutboundEmail, error: str) -> str:
    email.last_error = error[:2000]
    email.lease_until = None
    if email.attempts >= MAX_ATTEMPTS:
        email.status = "failed"
        email.last_error = f"gave up after {email.attempts} attempts: {error}"[:2000]
        db.session.commit()
        return "failed"
    delay = RETRY_DELAYS[max(email.attempts - 1, 0)]
    email.status = "retrying"
    email.next_attempt_at = clock.now() + timedelta(seconds=delay)
    email_id, attempt = email.id, email.attempts
    db.session.commit()
    # The quick path; the sweep dispatches the row when due should this job be lost.
    enqueue(TASK, str(email_id), job_id=job_id_for(email_id, attempt), delay_seconds=delay)
    return "retrying"


@task(TASK, queue=EMAILS, retry_intervals=())
def deliver(email_id: str) -> dict[str, str]:
    key = uuid.UUID(email_id)
    email = db.session.get(OutboundEmail, key)
    if email is None:
        raise PermanentError(f"email {email_id} does not exist in this tenant")
    if email.status in ("sent", "failed"):
        return {"status": email.status, "note": "already finished"}
    if not claim(key):
        return {"status": "skipped", "note": "another delivery has it"}
    email = db.session.get(OutboundEmail, key, populate_existing=True)
    backend = backend_for(current_app.extensions["albedo.settings"])
    email.backend = backend.name
    try:
        provider_id = backend.send(email)
    except TransientError as exc:
        return {"status": _retry_or_fail(email, str(exc))}
    except PermanentError as exc:
        email.status = "failed"
        email.lease_until = None
        email.last_error = str(exc)[:2000]
        db.session.commit()
        return {"status": "failed"}
    email.status = "sent"
    email.provider_message_id = provider_id
    email.sent_at = clock.now()
    email.lease_until = None
    email.last_error = None
    db.session.commit()
    return {"status": "sent", "backend": backend.name}


@recoverer("emails")
def recover(sweep: Sweep) -> dict[str, int]:
    """Queued with a lost job, retrying and due, sending past the lease (the worker died)."""
    from tenants.service import acting_as

    rows = db.session.execute(
        select(OutboundEmail.id, OutboundEmail.tenant_id).where(or_(
            and_(OutboundEmail.status == "queued",
                 OutboundEmail.created_at < sweep.stale_before),
            and_(OutboundEmail.status == "retrying",
                 # No time: a retry scheduled by RQ alone, before the row kept it.
                 or_(OutboundEmail.next_attempt_at.is_(None),
                     OutboundEmail.next_attempt_at <= sweep.now)),
            and_(OutboundEmail.status == "sending",
                 OutboundEmail.lease_until < sweep.now)))
        .limit(1000).execution_options(cross_tenant=_REASON)).all()
    db.session.rollback()
    outcome = {"dispatched": 0, "failed": 0, "skipped": 0}
    for email_id, tenant_id in rows:
        with acting_as(tenant_id) as found:
            if found:
                outcome[_revive(email_id, sweep)] += 1
    return outcome


def _revive(email_id: uuid.UUID, sweep: Sweep) -> str:
    email = db.session.get(OutboundEmail, email_id)
    if email is None or email.status in ("sent", "failed"):
        db.session.rollback()
        return "skipped"  # finished meanwhile
    if email.status == "sending":
        if email.lease_until is None or email.lease_until >= sweep.now:
            db.session.rollback()
            return "skipped"
        # The outcome is unknown: the server may have taken it. Sent again, same Message-ID.
        error = ("the worker stopped during the send; the server may have accepted it "
                 "(a resend carries the same Message-ID)")
        moved = db.session.execute(
            update(OutboundEmail).where(OutboundEmail.id == email_id,
                                        OutboundEmail.status == "sending",
                                        OutboundEmail.attempts == email.attempts)
            .values(status="failed" if email.attempts >= MAX_ATTEMPTS else "retrying",
                    lease_until=None, next_attempt_at=sweep.now, last_error=error)
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if not moved or email.attempts >= MAX_ATTEMPTS:
            return "failed" if moved else "skipped"
        status = "retrying"
    else:
        status = email.status
        db.session.rollback()
    waiting = OutboundEmail.status == status
    result = redispatch(OutboundEmail, email_id, email.dispatches, TASK, str(email_id),
                        tenant_id=email.tenant_id, job_id=job_id_for(email_id, email.attempts),
                        still=(waiting,))
    if result != "exhausted":
        return result
    # Its jobs kept getting lost: nothing was sent by these dispatches, the reason says so.
    failed = db.session.execute(
        update(OutboundEmail).where(OutboundEmail.id == email_id, waiting,
                                    OutboundEmail.dispatches == email.dispatches)
        .values(status="failed", next_attempt_at=None,
                last_error=f"{EXHAUSTED}: {exhausted_message(email.dispatches)}")
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return "failed" if failed else "skipped"
