"""Generation counters that tell a cached license snapshot it is out of date.

Each tenant and each license has a counter in Redis. Any committed change to a license or
its machines bumps the license's counter; a change to a policy, product or signing key, or
a customer's ban, bumps the tenant's (it may concern every license). The validation hot
path caches license snapshots per process together with the counters they were read
under, and its Redis script compares them: a change made by any process is seen by every
other at its next validation that asks Redis (within one sync window: see ``ledger``), and
by the process that made it at once.

Bumps happen after the commit (a session event, whatever code path wrote the rows), so a
validation can at worst use the old state for the instant between a commit and its bump.
If a bump is lost (Redis down at that moment), the snapshot's maximum age bounds the
staleness (see ``snapshot.MAX_AGE``).
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)



def tenant_key(tenant_id: uuid.UUID | str) -> str:
    return f"albedo:lic-gen:t:{tenant_id}"


def license_key(license_id: uuid.UUID | str) -> str:
    return f"albedo:lic-gen:l:{license_id}"


def _changed_keys(session: Session) -> set[str]:
    from sqlalchemy import inspect

    from app.auth.models import User
    from app.licensing.models import License, Machine, Policy, Product, SigningKey

    keys: set[str] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, License):
            # A new license has no snapshot anywhere (an unknown id is never cached): a bulk
            # issue of thousands bumps nothing.
            if obj not in session.new:
                keys.add(license_key(obj.id))
        elif isinstance(obj, Machine):
            keys.add(license_key(obj.license_id))
        elif isinstance(obj, Policy | Product | SigningKey):
            keys.add(tenant_key(obj.tenant_id))
        elif (isinstance(obj, User) and obj not in session.new
              and inspect(obj).attrs.banned_at.history.has_changes()):
            # A (un)ban changes the answer of every license the customer owns.
            keys.add(tenant_key(obj.tenant_id))
    return keys


def bump(keys: set[str]) -> None:
    """Increment these counters now (never raises: a lost bump only ages out)."""
    if not keys:
        return
    from app.redis import get_redis

    try:
        pipe = get_redis().pipeline(transaction=False)
        for key in sorted(keys):
            pipe.incr(key)
            pipe.expire(key, 7 * 24 * 3600)  # idle licenses do not keep counters forever
        pipe.execute()
    except Exception:
        log.warning("could not bump licensing generations %s", sorted(keys), exc_info=True)


def install() -> None:
    """Note licensing rows changed by a flush, bump at commit (every session)."""
    from app.commit_hooks import on_commit

    on_commit("licensing", _changed_keys, _bump_committed)


def _bump_committed(keys: set[str]) -> None:
    bump(keys)
    from app.licensing import ledger

    ledger.of_app().forget_checks()  # this process sees its own change at once
