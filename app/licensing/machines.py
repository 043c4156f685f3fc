"""Machines: activation with the seat lock, deactivation and heartbeats.

Seats: a policy's ``max_machines`` (node-locked policies hold exactly one). Machines that
missed their heartbeat are dead: they hold no seat, are removed when a new machine needs
the seat, and validate as HEARTBEAT_DEAD.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from app import clock
from app.errors import ApiError
from app.extensions import db
from app.licensing import service
from app.licensing.models import License, Machine, Policy


# These accept the ORM rows or a validation snapshot (same attribute names).
def seat_limit(policy: Policy) -> int | None:
    """Node-locked: one machine. Floating: ``max_machines`` (None: unlimited)."""
    return policy.max_machines if policy.floating else 1


def is_dead(machine: Machine, policy: Policy, now: datetime | None = None) -> bool:
    if not policy.heartbeat_interval_seconds:
        return False
    now = now or clock.now()
    return machine.last_heartbeat_at + timedelta(seconds=policy.heartbeat_interval_seconds) < now


def expiry_state(license_: License, now: datetime) -> str:
    """``current``, ``grace`` (past expiry, within the grace period) or ``expired``."""
    if license_.expires_at is None or now <= license_.expires_at:
        return "current"
    grace = timedelta(seconds=license_.policy.grace_period_seconds)
    return "grace" if now <= license_.expires_at + grace else "expired"


def require_usable(license_: License, now: datetime) -> None:
    if license_.status == "revoked":
        raise ApiError(403, "license_revoked", "This license has been revoked.")
    if license_.status == "suspended":
        raise ApiError(403, "license_suspended", "This license is suspended.")
    if expiry_state(license_, now) == "expired" and license_.policy.expiry_strategy == "restrict":
        raise ApiError(403, "license_expired", "This license has expired.")


def _lock(license_id: uuid.UUID) -> None:
    # SELECT … FOR UPDATE on PostgreSQL: concurrent activations of one license queue here, so
    # counting seats and inserting the machine happen one at a time. SQLite ignores it, but
    # SQLite serialises writers on the whole database anyway.
    db.session.execute(select(License.id).where(License.id == license_id).with_for_update())


def activate(license_: License, fingerprint: str, name: str = "",
             ip: str | None = None, cores: int | None = None) -> tuple[Machine, bool]:
    """Give ``fingerprint`` a seat; returns (machine, created). Idempotent per fingerprint."""
    fingerprint = (fingerprint or "").strip()
    if not fingerprint or len(fingerprint) > 255:
        raise ApiError(422, "validation_failed", "A fingerprint of 1-255 characters is needed.",
                       details={"fields": {"fingerprint": "1-255 characters"}})
    now = clock.now()
    require_usable(license_, now)
    _lock(license_.id)
    policy = license_.policy
    machines = list(db.session.scalars(
        select(Machine).where(Machine.license_id == license_.id)
        .execution_options(populate_existing=True)))
    existing = next((m for m in machines if m.fingerprint == fingerprint), None)
    if existing is not None and not is_dead(existing, policy, now):
        return existing, False
    dead = [m.id for m in machines if is_dead(m, policy, now)]
    if dead:
        # A dead machine's seat is free: remove it so the seat can be taken.
        db.session.execute(delete(Machine).where(Machine.id.in_(dead)))
        db.session.expire(license_, ["machines"])
    live = len(machines) - len(dead)
    limit = seat_limit(policy)
    if limit is not None and live >= limit:
        raise ApiError(409, "too_many_machines",
                       f"This license allows {limit} machine(s) and all seats are taken.",
                       details={"max_machines": limit})
    if policy.max_cores is not None:
        used = sum(m.cores or 0 for m in machines if m.id not in dead)
        if used + (cores or 0) > policy.max_cores:
            raise ApiError(409, "too_many_cores",
                           f"This license allows {policy.max_cores} cores in all and its "
                           f"machines already report {used}.",
                           details={"max_cores": policy.max_cores, "cores_used": used})
    machine = Machine(license_id=license_.id, fingerprint=fingerprint, name=(name or "")[:120],
                      ip=ip, last_heartbeat_at=now, cores=cores)
    db.session.add(machine)
    db.session.flush()
    from app.integrations.events import emit

    emit("machine.activated", {"machine_id": str(machine.id), "license_id": str(license_.id),
                               "fingerprint": fingerprint, "name": machine.name},
         owner_user_id=license_.owner_id)
    return machine, True


def get_machine_of(license_: License, machine_id: uuid.UUID) -> Machine:
    """The machine, if it belongs to this license (anything else is simply not found)."""
    machine = db.session.scalars(select(Machine).where(
        Machine.id == machine_id, Machine.license_id == license_.id)).first()
    if machine is None:
        raise ApiError(404, "machine_not_found", "No machine of this license has this id.")
    return machine


def deactivate(machine: Machine) -> None:
    db.session.delete(machine)


def heartbeat(machine: Machine) -> Machine:
    now = clock.now()
    license_ = machine.license
    require_usable(license_, now)
    if is_dead(machine, license_.policy, now):
        raise ApiError(409, "heartbeat_dead",
                       "This machine missed its heartbeat and lost its seat; activate it again.")
    machine.last_heartbeat_at = now
    if machine.first_heartbeat_at is None:
        machine.first_heartbeat_at = now
    return machine


def license_for_key(key: str) -> License:
    """License-key authentication for the machine endpoints: a valid, signed key of here."""
    from app.licensing.validation import resolve_key

    resolved = resolve_key(key)
    if resolved.license is None:
        raise ApiError(401, "invalid_license_key", "The license key is not valid here.",
                       details={"code": resolved.code})
    return service.get_license(resolved.license.id)
