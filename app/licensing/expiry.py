"""license.expired: announced once per expiry by a periodic scan across tenants.

A license expires by the clock, not by an action, so no request is there to emit the event.
The scan (``licensing.announce_expiries``, every ``SCAN_EVERY`` seconds from the workers'
ticker) finds licenses whose expiry has passed and was not announced yet, emits the event in
each license's tenant and marks the row in the same transaction: a crash between the two
leaves the license unmarked and the next scan announces it, never twice. Renewing or
extending a license clears the mark, so the new expiry is announced when it comes.

Revoked licenses are not announced (revocation was the news). A suspended license that
expires is: its expiry is a fact the reseller's integrations may act on.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from app import clock
from app.extensions import db
from app.licensing.models import License

SCAN_EVERY = 300
BATCH = 500  # licenses per transaction: a backlog of thousands never holds one long lock
_REASON = "the expiry scan looks at every tenant's licenses"


def _due(now: datetime, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    return list(db.session.execute(
        select(License.id, License.tenant_id).where(
            License.expires_at.is_not(None), License.expires_at <= now,
            License.expiry_announced_at.is_(None), License.status != "revoked")
        .order_by(License.expires_at, License.id).limit(limit)
        .execution_options(cross_tenant=_REASON)).all())


def announce_expiries(now: datetime | None = None) -> int:
    """Emit license.expired for every expiry that passed unannounced; returns how many."""
    from app.licensing.service import emit_license_event
    from tenants.service import acting_as

    now = now or clock.now()
    announced = 0
    while True:
        rows = _due(now, BATCH)
        db.session.rollback()
        if not rows:
            return announced
        by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
        for license_id, tenant_id in rows:
            by_tenant.setdefault(tenant_id, []).append(license_id)
        before = announced
        for tenant_id, ids in by_tenant.items():
            with acting_as(tenant_id) as found:
                if not found:
                    continue
                for license_ in db.session.scalars(select(License).where(License.id.in_(ids))):
                    # Re-checked inside the tenant: a renewal may have landed since the scan.
                    if (license_.expiry_announced_at is None and license_.expires_at is not None
                            and license_.expires_at <= now and license_.status != "revoked"):
                        license_.expiry_announced_at = now
                        emit_license_event("license.expired", license_,
                                           expired_at=license_.expires_at)
                        announced += 1
                db.session.commit()
        if len(rows) < BATCH or announced == before:
            return announced  # the last batch, or one that cannot make progress
