"""Billing jobs."""

from __future__ import annotations

from typing import Any

import stripe

from app.billing.reconcile import reconcile
from jobs.queues import DEFAULT
from jobs.registry import TransientError, task


@task("billing.reconcile", queue=DEFAULT, tenant_scoped=False, retry_intervals=(60, 300, 900))
def reconcile_job(since_hours: int = 72) -> dict[str, Any]:
    """Replay missed Stripe events and re-read live subscriptions (platform-wide).

    Run it on a schedule (``flask billing reconcile --enqueue`` from cron every 15 minutes);
    it is idempotent, so overlapping runs are harmless.
    """
    try:
        return reconcile(since_hours)
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise TransientError(f"Stripe unavailable during reconciliation: {exc}") from exc
