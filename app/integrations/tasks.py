"""Jobs on the `webhooks` queue: one delivery attempt, and the sweep that re-queues whatever
is due. Neither uses RQ's own retries: the schedule lives on the delivery row."""

from __future__ import annotations

import uuid

from app.integrations import delivery
from jobs.durable import Sweep, recoverer
from jobs.queues import WEBHOOKS
from jobs.registry import task


@task("integrations.deliver", queue=WEBHOOKS, retry_intervals=(), timeout=60)
def deliver(delivery_id: str) -> dict[str, str]:
    return {"outcome": delivery.attempt(uuid.UUID(delivery_id))}


@task("integrations.dispatch_due", queue=WEBHOOKS, tenant_scoped=False, retry_intervals=())
def dispatch_due() -> dict[str, int]:
    return {"queued": delivery.dispatch_due()}


@recoverer("webhook_deliveries")
def recover(sweep: Sweep) -> dict[str, int]:
    """The deliveries' schedule lives on their rows: what is due (or sending past its lease)
    is queued again by the one recovery sweep."""
    return delivery.recover_due()
