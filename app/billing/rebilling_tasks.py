"""Rebilling jobs: report usage to Stripe's meters, automatic credit top-ups."""

from __future__ import annotations

from typing import Any

import stripe
from sqlalchemy import select

from app.extensions import db
from jobs.queues import DEFAULT
from jobs.registry import TransientError, task


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


@task("billing.auto_top_up", queue=DEFAULT, retry_intervals=(60, 300, 900))
def auto_top_up_job(user_id: str) -> str:
    import uuid

    from app.billing import credits

    try:
        outcome = credits.auto_top_up(uuid.UUID(user_id))
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise TransientError(f"Stripe unavailable for an automatic top-up: {exc}") from exc
    db.session.commit()
    return outcome
