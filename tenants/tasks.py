"""Background work of the tenants package: pending custom domains checked in DNS."""

from __future__ import annotations

from jobs.registry import task


@task("tenants.recheck_domains", tenant_scoped=False, retry_intervals=())
def recheck_domains() -> dict[str, int]:
    """Verify the pending custom domains whose TXT record is now published (periodic): a
    reseller who published the record need not come back to press "Verify now"."""
    from tenants.domains import recheck_pending

    return {"verified": recheck_pending()}
