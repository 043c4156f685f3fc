"""The delivery job. Idempotent: an email already sent is not sent again."""

from __future__ import annotations

import uuid

from flask import current_app
from rq import get_current_job

from app import clock
from app.email.backends import backend_for
from app.email.models import OutboundEmail
from app.extensions import db
from jobs.queues import EMAILS
from jobs.registry import PermanentError, TransientError, task


def _last_try() -> bool:
    job = get_current_job()
    return job is None or not job.retries_left


@task("emails.deliver", queue=EMAILS, retry_intervals=(10, 60, 300, 900, 3600))
def deliver(email_id: str) -> dict[str, str]:
    email = db.session.get(OutboundEmail, uuid.UUID(email_id))
    if email is None:
        raise PermanentError(f"email {email_id} does not exist in this tenant")
    if email.status == "sent":
        return {"status": "sent", "note": "already delivered"}
    backend = backend_for(current_app.extensions["albedo.settings"])
    email.attempts += 1
    email.backend = backend.name
    try:
        email.provider_message_id = backend.send(email)
    except TransientError as exc:
        email.status = "failed" if _last_try() else "retrying"
        email.last_error = str(exc)[:2000]
        db.session.commit()
        raise
    except PermanentError as exc:
        email.status = "failed"
        email.last_error = str(exc)[:2000]
        db.session.commit()
        raise
    email.status = "sent"
    email.sent_at = clock.now()
    email.last_error = None
    db.session.commit()
    return {"status": "sent", "backend": backend.name}
