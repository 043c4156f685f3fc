"""A task that reports which tenant it ran for: `flask albedo ping-worker` uses it to show
that a worker is up and restores tenant context."""

from __future__ import annotations

import os

from jobs.queues import DEFAULT
from jobs.registry import task
from tenants.context import current


@task("diagnostics.whoami", queue=DEFAULT, retry_intervals=())
def whoami() -> dict[str, str | int]:
    tenant = current()
    return {"tenant_id": str(tenant.id), "tenant_slug": tenant.slug, "pid": os.getpid()}
