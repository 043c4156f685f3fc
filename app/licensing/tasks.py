"""Licensing jobs: the validation counters flush and bulk issuing."""

from __future__ import annotations

import uuid
from datetime import datetime

from rq import get_current_job
from sqlalchemy import select

from app.extensions import db
from app.licensing import counters
from app.licensing.models import License, ValidationRecord
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
    for entry in entries:
        license_id = uuid.UUID(entry["l"]) if entry.get("l") else None
        db.session.add(ValidationRecord(
            license_id=license_id if license_id in licenses else None, code=entry["c"],
            fingerprint=entry.get("f"), ip=entry.get("ip"),
            validated_at=datetime.fromisoformat(entry["t"])))
    db.session.commit()
    counters.forget_batch(tenant_id, batch_id)
    return {"licenses": len(licenses), "log_entries": len(entries)}
