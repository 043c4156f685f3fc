"""Bulk issuing: up to 10,000 licenses in a job that writes its progress on its row.

Durable (jobs/durable.py): a run *claims* the row (running, attempts + 1, a lease) and every
chunk's commit is fenced by that claim, so two runs never issue side by side. A run killed
mid-way leaves its licenses and its ``issued`` count committed chunk by chunk; once its lease
has passed, the recovery sweep starts another run, which resumes from the licenses that exist
(no duplicates), while the room for the rest stays reserved (queued/running rows reserve
``requested - issued``). After MAX_ATTEMPTS lost runs the issue fails with its reason, which
frees the room it had not used.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.api import idempotency
from app.auth import audit
from app.billing.limits import ensure_room
from app.errors import ApiError
from app.extensions import db
from app.licensing import service, signing
from app.licensing.models import BulkIssue, License, Policy
from jobs.enqueue import enqueue_after_commit
from tenants.context import activate, current

MAX_BULK = 10_000
CHUNK = 250  # licenses per transaction: progress moves visibly, a retry redoes little
MAX_ATTEMPTS = 3
# A chunk of 250 signatures takes well under a second; a run silent for this long (plus the
# recovery grace) is presumed dead.
CHUNK_LEASE = timedelta(seconds=120)
TASK = "licensing.bulk_issue"


def job_id_for(bulk_id: uuid.UUID | str, attempts: int = 0) -> str:
    return f"license-bulk-{bulk_id}" if not attempts else f"license-bulk-{bulk_id}-{attempts}"


def _lease_until():
    grace = current_app.extensions["albedo.settings"].recovery_grace_seconds
    return clock.now() + CHUNK_LEASE + timedelta(seconds=grace)


def start(policy: Policy, count: int, name_prefix: str = "",
          created_by_id: uuid.UUID | None = None,
          idempotency_key: str | None = None) -> BulkIssue:
    """Store the bulk issue (its room reserved) and queue its run. With an
    ``idempotency_key`` a retried request gets the issue the first one created (the same key
    with another request is a 422: app/api/idempotency.py)."""
    if not 1 <= count <= MAX_BULK:
        raise ApiError(422, "validation_failed", f"Issue between 1 and {MAX_BULK} licenses.",
                       details={"fields": {"count": f"1-{MAX_BULK}"}})
    key = idempotency.checked(idempotency_key)
    fingerprint = idempotency.fingerprint(str(policy.id), count, name_prefix.strip())
    mine = BulkIssue.created_by_id == created_by_id
    if key and (existing := idempotency.find(BulkIssue, mine, key, fingerprint)) is not None:
        return existing
    ensure_room("licenses", count=count)  # all or nothing: the room stays reserved until done
    bulk = BulkIssue(policy_id=policy.id, requested=count, name_prefix=name_prefix.strip(),
                     created_by_id=created_by_id, status="queued", idempotency_key=key,
                     idempotency_fingerprint=fingerprint if key else None)
    db.session.add(bulk)
    try:
        db.session.flush()
    except IntegrityError:  # the same key raced us: its issue is the answer
        db.session.rollback()
        existing = idempotency.find(BulkIssue, mine, key, fingerprint) if key else None
        if existing is None:
            raise
        return existing
    audit.record("licenses_bulk_issue_started", **audit.acting(), target_type="bulk_issue",
                 target_id=bulk.id, count=count, policy_id=str(policy.id))
    enqueue_after_commit(db.session, TASK, str(bulk.id), job_id=job_id_for(bulk.id))
    return bulk


def get(bulk_id: uuid.UUID) -> BulkIssue:
    bulk = db.session.get(BulkIssue, bulk_id)
    if bulk is None:
        raise ApiError(404, "bulk_issue_not_found", "No bulk issue has this id.")
    return bulk


def claim(bulk_id: uuid.UUID) -> int | None:
    """queued (or running past its lease) → running; the claim's attempt number, or None."""
    now = clock.now()
    moved = db.session.execute(
        update(BulkIssue).where(BulkIssue.id == bulk_id, or_(
            BulkIssue.status == "queued",
            and_(BulkIssue.status == "running", BulkIssue.lease_until < now)))
        .values(status="running", attempts=BulkIssue.attempts + 1, dispatches=0,
                lease_until=_lease_until())
        .execution_options(synchronize_session=False)).rowcount
    if not moved:
        db.session.commit()
        return None
    attempt = db.session.scalar(select(BulkIssue.attempts).where(BulkIssue.id == bulk_id))
    db.session.commit()
    return attempt


def _still_mine(bulk_id: uuid.UUID, attempt: int, **values) -> bool:
    """Write ``values`` on the row if this run still holds the claim (else another run took
    over after our lease passed, and what this transaction did must not be committed)."""
    return bool(db.session.execute(
        update(BulkIssue).where(BulkIssue.id == bulk_id, BulkIssue.status == "running",
                                BulkIssue.attempts == attempt)
        .values(**values).execution_options(synchronize_session=False)).rowcount)


def run(bulk_id: uuid.UUID) -> BulkIssue:
    """Issue what is still missing, CHUNK at a time. Idempotent: it counts what exists."""
    bulk = get(bulk_id)
    if bulk.status in ("done", "failed"):
        return bulk
    attempt = claim(bulk_id)
    if attempt is None:  # another run holds it (a duplicate delivery): leave it be
        return get(bulk_id)
    bulk = db.session.get(BulkIssue, bulk_id, populate_existing=True)
    policy = service.get_policy(bulk.policy_id)
    key = signing.signer()  # one signing key for the whole batch
    requested, prefix = bulk.requested, bulk.name_prefix
    issued = db.session.scalar(select(func.count()).select_from(License)
                               .where(License.bulk_issue_id == bulk_id)) or 0
    while issued < requested:
        for n in range(issued, min(issued + CHUNK, requested)):
            name = f"{prefix} {n + 1}".strip() if prefix else ""
            service.issue_license(policy, name=name, bulk_issue_id=bulk_id, key=key)
        issued = min(issued + CHUNK, requested)
        if not _still_mine(bulk_id, attempt, issued=issued, lease_until=_lease_until()):
            db.session.rollback()
            return get(bulk_id)
        db.session.commit()
    if _still_mine(bulk_id, attempt, issued=issued, status="done", lease_until=None,
                   finished_at=clock.now()):
        db.session.commit()
    else:
        db.session.rollback()
    return db.session.get(BulkIssue, bulk_id, populate_existing=True)


def release(bulk_id: uuid.UUID, error: str, final: bool) -> None:
    """After a run failed: back to queued for the retry, or failed with the reason."""
    db.session.execute(
        update(BulkIssue).where(BulkIssue.id == bulk_id,
                                BulkIssue.status.in_(("queued", "running")))
        .values(status="failed" if final else "queued", lease_until=None,
                error=error[:2000] if final else None,
                **({"finished_at": clock.now()} if final else {}))
        .execution_options(synchronize_session=False))
    db.session.commit()


def csv_lines(bulk: BulkIssue) -> Iterator[str]:
    """The issued licenses as CSV, streamed (10,000 rows need not sit in memory twice).

    The response body is iterated after the view returned, when the request's tenant may
    already be gone: the generator re-enters the tenant it was created for.
    """
    return _in_tenant(current(), bulk.id)


def _in_tenant(tenant, bulk_id: uuid.UUID) -> Iterator[str]:
    with activate(tenant):
        yield from _csv_rows(bulk_id)


def _csv_rows(bulk_id: uuid.UUID) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return value

    writer.writerow(["license_id", "key", "name", "expires_at", "status"])
    yield take()
    rows = db.session.execute(
        select(License.id, License.key, License.name, License.expires_at, License.status)
        .where(License.bulk_issue_id == bulk_id).order_by(License.created_at, License.id)
        .execution_options(yield_per=1000))
    for row in rows:
        writer.writerow([row.id, row.key, row.name,
                         row.expires_at.isoformat() if row.expires_at else "", row.status])
        yield take()
