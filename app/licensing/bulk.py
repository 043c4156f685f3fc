"""Bulk issuing: up to 10,000 licenses in a job that writes its progress on its row."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator

from sqlalchemy import func, select

from app import clock
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


def start(policy: Policy, count: int, name_prefix: str = "",
          created_by_id: uuid.UUID | None = None) -> BulkIssue:
    if not 1 <= count <= MAX_BULK:
        raise ApiError(422, "validation_failed", f"Issue between 1 and {MAX_BULK} licenses.",
                       details={"fields": {"count": f"1-{MAX_BULK}"}})
    ensure_room("licenses", count=count)  # all or nothing: the room stays reserved until done
    bulk = BulkIssue(policy_id=policy.id, requested=count, name_prefix=name_prefix.strip(),
                     created_by_id=created_by_id, status="queued")
    db.session.add(bulk)
    db.session.flush()
    audit.record("licenses_bulk_issue_started", **audit.acting(), target_type="bulk_issue",
                 target_id=bulk.id, count=count, policy_id=str(policy.id))
    enqueue_after_commit(db.session, "licensing.bulk_issue", str(bulk.id),
                         job_id=f"license-bulk-{bulk.id}")
    return bulk


def get(bulk_id: uuid.UUID) -> BulkIssue:
    bulk = db.session.get(BulkIssue, bulk_id)
    if bulk is None:
        raise ApiError(404, "bulk_issue_not_found", "No bulk issue has this id.")
    return bulk


def run(bulk_id: uuid.UUID) -> BulkIssue:
    """Issue what is still missing, CHUNK at a time. Idempotent: it counts what exists."""
    bulk = get(bulk_id)
    if bulk.status == "done":
        return bulk
    policy = service.get_policy(bulk.policy_id)
    key = signing.signer()  # one signing key for the whole batch
    issued = db.session.scalar(select(func.count()).select_from(License)
                               .where(License.bulk_issue_id == bulk.id)) or 0
    bulk.status, bulk.issued = "running", issued
    db.session.commit()
    while issued < bulk.requested:
        for n in range(issued, min(issued + CHUNK, bulk.requested)):
            name = f"{bulk.name_prefix} {n + 1}".strip() if bulk.name_prefix else ""
            service.issue_license(policy, name=name, bulk_issue_id=bulk.id, key=key)
        issued = min(issued + CHUNK, bulk.requested)
        bulk.issued = issued
        db.session.commit()
    bulk.status = "done"
    bulk.finished_at = clock.now()
    db.session.commit()
    return bulk


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
