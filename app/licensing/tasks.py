"""Licensing jobs: the validation counters flush and bulk issuing."""

from __future__ import annotations

import uuid
from datetime import datetime

from rq import get_current_job
from sqlalchemy import select

from app.api import idempotency
from app.extensions import db
from app.licensing import counters
from app.licensing.models import License, ValidationRecord
from app.ops.metrics import record_license_validations
from jobs.durable import EXHAUSTED, Sweep, exhausted_message, recoverer, redispatch
from jobs.registry import task
from tenants.context import current_id


@task("licensing.flush_validations", retry_intervals=(5, 30, 120))
def flush_validations() -> dict[str, int]:
    """Move Redis validation counters and log entries onto rows (one transaction)."""
    tenant_id = current_id()
    assert tenant_id is not None  # tenant-scoped task: the runner restored it
    job = get_current_job()
    batch_id = job.id if job is not None else uuid.uuid4().hex
    counts, last, entries = counters.drain(tenant_id, batch_id)
    ids = {uuid.UUID(k) for k in counts} | {uuid.UUID(k) for k in last}
    licenses = {lic.id: lic for lic in db.session.scalars(
        select(License).where(License.id.in_(ids)))} if ids else {}
    for key, count in counts.items():
        license_ = licenses.get(uuid.UUID(key))
        if license_ is not None:
            license_.validation_count += count
    for key, moment in last.items():
        license_ = licenses.get(uuid.UUID(key))
        when = datetime.fromisoformat(moment)
        if license_ is not None and (license_.last_validated_at is None
                                     or when > license_.last_validated_at):
            license_.last_validated_at = when
    failures: dict[tuple[uuid.UUID, str], list[dict]] = {}
    for entry in entries:
        license_id = uuid.UUID(entry["l"]) if entry.get("l") else None
        known = license_id if license_id in licenses else None
        db.session.add(ValidationRecord(
            license_id=known, code=entry["c"],
            fingerprint=entry.get("f"), ip=entry.get("ip"),
            validated_at=datetime.fromisoformat(entry["t"])))
        if known is not None and entry["c"] != "VALID":
            failures.setdefault((known, entry["c"]), []).append(entry)
    _announce_failures(licenses, failures)
    db.session.commit()
    record_license_validations(entry["c"] for entry in entries)  # Prometheus, by code
    counters.forget_batch(tenant_id, batch_id)
    return {"licenses": len(licenses), "log_entries": len(entries)}


def _announce_failures(licenses: dict[uuid.UUID, License],
                       failures: dict[tuple[uuid.UUID, str], list[dict]]) -> None:
    # One event per (license, code) per batch: an agent retrying in a loop must not turn
    # into a flood of webhooks. Emitted in the flush's transaction, so a retried flush
    # (same batch) emits nothing twice.
    from app.licensing.service import emit_license_event

    for (license_id, code), rows in failures.items():
        moments = sorted(row["t"] for row in rows)
        last_fingerprint = next((row.get("f") for row in reversed(rows) if row.get("f")), None)
        emit_license_event("license.validation_failed", licenses[license_id],
                           reason=code.lower(), code=code, count=len(rows),
                           fingerprint=last_fingerprint, first_at=moments[0],
                           last_at=moments[-1])


@task("licensing.announce_expiries", tenant_scoped=False, retry_intervals=())
def announce_expiries_task() -> dict[str, int]:
    """license.expired for every expiry that passed since the last scan (periodic)."""
    from app.licensing.expiry import announce_expiries

    return {"announced": announce_expiries()}


@task("licensing.bulk_issue", retry_intervals=(10, 60, 300), timeout=1800)
def bulk_issue(bulk_id: str) -> dict[str, int]:
    """Issue a bulk request's licenses; on a final failure the row says why."""
    from app.licensing import bulk

    try:
        row = bulk.run(uuid.UUID(bulk_id))
    except Exception as exc:
        db.session.rollback()
        job = get_current_job()
        bulk.release(uuid.UUID(bulk_id), str(exc), final=job is None or not job.retries_left)
        raise
    return {"issued": row.issued}


@recoverer("bulk_issues")
def recover_bulk_issues(sweep: Sweep) -> dict[str, int]:
    """Bulk issues queued with a lost job, or running past their lease (the worker died):
    dispatched again (the run resumes from the licenses that exist), or failed after
    bulk.MAX_ATTEMPTS runs, or after ALBEDO_MAX_DISPATCHES lost jobs in a row, which frees
    the room they had reserved."""
    from sqlalchemy import and_, or_

    from app.licensing import bulk
    from app.licensing.models import BulkIssue
    from tenants.service import acting_as

    due = or_(and_(BulkIssue.status == "queued", BulkIssue.updated_at < sweep.stale_before),
              and_(BulkIssue.status == "running", BulkIssue.lease_until < sweep.now))
    rows = db.session.execute(
        select(BulkIssue.id, BulkIssue.tenant_id).where(due)
        .execution_options(cross_tenant="the recovery sweep resumes lost bulk issues of every "
                                        "tenant")).all()
    db.session.rollback()
    outcome = {"dispatched": 0, "failed": 0}
    for bulk_id, tenant_id in rows:
        with acting_as(tenant_id) as found:
            row = db.session.get(BulkIssue, bulk_id) if found else None
            if row is None:
                continue
            if row.status == "running" and row.attempts >= bulk.MAX_ATTEMPTS:
                outcome["failed"] += _fail_bulk(row, sweep, f"the worker stopped {row.attempts} "
                                                f"times before it finished")
                continue
            attempts, dispatches = row.attempts, row.dispatches
            db.session.rollback()
            result = redispatch(BulkIssue, bulk_id, dispatches, bulk.TASK, str(bulk_id),
                                tenant_id=tenant_id, job_id=bulk.job_id_for(bulk_id, attempts),
                                still=(due,))
            if result == "exhausted":
                row = db.session.get(BulkIssue, bulk_id)
                outcome["failed"] += _fail_bulk(
                    row, sweep, f"{EXHAUSTED}: {exhausted_message(dispatches)}")
            elif result == "dispatched":
                outcome["dispatched"] += 1
    outcome["keys_forgotten"] = idempotency.forget_expired(BulkIssue, sweep.now)
    db.session.commit()
    return outcome


def _fail_bulk(row, sweep: Sweep, reason: str) -> int:
    """End a bulk issue failed with ``reason`` unless a run claimed it meanwhile; its unused
    room is freed with it (only queued/running issues reserve room)."""
    from sqlalchemy import update

    from app.licensing.models import BulkIssue

    failed = db.session.execute(
        update(BulkIssue).where(BulkIssue.id == row.id, BulkIssue.status == row.status,
                                BulkIssue.attempts == row.attempts,
                                BulkIssue.dispatches == row.dispatches)
        .values(status="failed", lease_until=None, finished_at=sweep.now,
                error=f"{reason}; {row.issued} of {row.requested} issued")
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return failed
