"""What a validation needs to know about a license, cached per process.

A snapshot is the license's state (status, expiry), its policy and product, and its
machines' fingerprints and heartbeats: plain frozen data, so deciding a validation from it
needs no database. Time-dependent answers (expired, in grace, heartbeat dead) are computed
from it at each validation, never cached.

Entries carry the generation counters they were read under (``freshness``); the hot path's
Redis script says when they changed. ``MAX_AGE`` bounds how long an entry is trusted even
if a bump was lost, and the cache holds at most ``MAX_ENTRIES`` licenses per process.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.licensing.models import License, Machine

MAX_AGE = 30.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class PolicyView:
    expiry_strategy: str
    grace_period_seconds: int
    max_machines: int | None
    floating: bool
    heartbeat_interval_seconds: int | None
    max_executions_per_period: int | None
    execution_period_seconds: int
    fingerprint_required: bool
    require_heartbeat: bool = False
    check_in_interval_seconds: int | None = None
    max_cores: int | None = None


@dataclass(frozen=True)
class ProductView:
    code: str
    entitlements: tuple[str, ...]


@dataclass(frozen=True)
class MachineView:
    fingerprint: str
    last_heartbeat_at: datetime
    cores: int | None = None
    heartbeat_started: bool = True


@dataclass(frozen=True)
class LicenseSnapshot:
    """Attribute names match the ORM rows, so the policy helpers accept either."""

    id: uuid.UUID
    status: str
    expires_at: datetime | None
    policy: PolicyView
    product: ProductView
    machines: tuple[MachineView, ...]
    policy_id: uuid.UUID | None = None
    # Product's, policy's and license's entitlements together, sorted.
    entitlements: tuple[str, ...] = ()
    created_at: datetime | None = None
    last_check_in_at: datetime | None = None
    owner_banned: bool = False


def load(license_id: uuid.UUID) -> LicenseSnapshot | None:
    """Read a license of the current tenant (two queries, three with an owner), or None if
    it has none such."""
    from app.auth.models import User

    license_ = db.session.get(License, license_id)
    if license_ is None:
        return None
    policy, product = license_.policy, license_.product
    machines = db.session.execute(
        select(Machine.fingerprint, Machine.last_heartbeat_at, Machine.cores,
               Machine.first_heartbeat_at)
        .where(Machine.license_id == license_id).order_by(Machine.created_at)).all()
    banned = license_.owner_id is not None and db.session.scalars(
        select(User.banned_at).where(User.id == license_.owner_id)).first() is not None
    return LicenseSnapshot(
        id=license_.id, status=license_.status, expires_at=license_.expires_at,
        policy=PolicyView(
            expiry_strategy=policy.expiry_strategy,
            grace_period_seconds=policy.grace_period_seconds, max_machines=policy.max_machines,
            floating=policy.floating, heartbeat_interval_seconds=policy.heartbeat_interval_seconds,
            max_executions_per_period=policy.max_executions_per_period,
            execution_period_seconds=policy.execution_period_seconds,
            fingerprint_required=policy.fingerprint_required,
            require_heartbeat=policy.require_heartbeat,
            check_in_interval_seconds=policy.check_in_interval_seconds,
            max_cores=policy.max_cores),
        product=ProductView(code=product.code, entitlements=tuple(product.entitlements or ())),
        machines=tuple(MachineView(fp, beat, cores, first is not None)
                       for fp, beat, cores, first in machines),
        policy_id=license_.policy_id, entitlements=entitlements_of(license_),
        created_at=license_.created_at, last_check_in_at=license_.last_check_in_at,
        owner_banned=banned)


def entitlements_of(license_: License) -> tuple[str, ...]:
    """A license's entitlements: its product's, its policy's and its own."""
    return tuple(sorted({*(license_.product.entitlements or ()),
                         *(license_.policy.entitlements or ()),
                         *(license_.entitlements or ())}))


@dataclass(frozen=True)
class Entry:
    snapshot: LicenseSnapshot
    generations: tuple[str, str]  # (tenant's, license's) when it was read
    read_at: float


class SnapshotCache:
    """A bounded LRU of snapshots keyed by (tenant, license)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE) -> None:
        self._entries: OrderedDict[tuple[uuid.UUID, uuid.UUID], Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries, self.max_age = max_entries, max_age

    def get(self, tenant_id: uuid.UUID, license_id: uuid.UUID) -> Entry | None:
        key = (tenant_id, license_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.monotonic() - entry.read_at > self.max_age:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, tenant_id: uuid.UUID, snapshot: LicenseSnapshot,
            generations: tuple[str, str]) -> Entry:
        entry = Entry(snapshot, generations, time.monotonic())
        with self._lock:
            self._entries[(tenant_id, snapshot.id)] = entry
            self._entries.move_to_end((tenant_id, snapshot.id))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry

    def forget(self, tenant_id: uuid.UUID, license_id: uuid.UUID) -> None:
        with self._lock:
            self._entries.pop((tenant_id, license_id), None)


def cache() -> SnapshotCache:
    return current_app.extensions.setdefault("albedo.license_snapshots", SnapshotCache())
