"""Rebilling jobs: report usage to Stripe's meters, automatic credit top-ups."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

# auto_top_ups also registers its recoverer (jobs/durable.py) when the tasks load.
from app.billing import auto_top_ups
from app.extensions import db
from jobs.queues import DEFAULT
from jobs.registry import task


@task("billing.report_usage", queue=DEFAULT, tenant_scoped=False, retry_intervals=(60, 300))
def report_usage_job() -> dict[str, Any]:
    """Every tenant with ledger entries: send what is due to Stripe (periodic, idempotent)."""
    from app.billing import meters
    from app.billing.rebilling_models import LedgerEntry
    from tenants.service import acting_as

    tenant_ids = db.session.scalars(
        select(LedgerEntry.tenant_id).distinct()
        .execution_options(cross_tenant="the meter job finds tenants with usage")).all()
    db.session.rollback()
    totals = {"sent": 0, "skipped": 0, "failed": 0}
    for tenant_id in tenant_ids:
        with acting_as(tenant_id) as found:
            if found:
                for key, value in meters.report().items():
                    totals[key] += value
    return totals


@task("billing.auto_top_up", queue=DEFAULT, retry_intervals=())
def auto_top_up_job(top_up_id: str) -> str:
    """Carry one automatic top-up (app/billing/auto_top_ups.py); its row keeps the retries."""
    return auto_top_ups.run(uuid.UUID(top_up_id))
