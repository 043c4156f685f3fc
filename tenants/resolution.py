"""Host → tenant, through a small TTL cache that a change anywhere invalidates.

Rules:
* the platform domain (``ALBEDO_PLATFORM_DOMAIN``) is the platform tenant;
* ``<slug>.<platform domain>`` is reseller ``slug``;
* any other hostname must be a *verified* :class:`Domain` row;
* anything else is unknown (the caller answers 404; there is no default tenant).

The cache holds frozen :class:`TenantInfo` snapshots, misses included (so random Host headers
cannot hammer the database). Each process keeps its own cache; a Redis counter, bumped when a
tenant or domain changes, invalidates every process's cache within a second.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tenants.context import TenantInfo
from tenants.models import Domain, Tenant

log = logging.getLogger(__name__)

GENERATION_KEY = "albedo:tenant-cache:generation"
_GENERATION_CHECK_EVERY = 1.0
_MAX_ENTRIES = 10_000


def snapshot(tenant: Tenant, platform_domain: str, primary_host: str | None = None) -> TenantInfo:
    if primary_host is None:
        primary_host = primary_host_for(tenant, platform_domain)
    return TenantInfo(
        id=tenant.id, slug=tenant.slug, kind=tenant.kind, status=tenant.status,
        name=tenant.name, display_name=tenant.display_name, logo_url=tenant.logo_url,
        primary_color=tenant.primary_color, accent_color=tenant.accent_color,
        support_email=tenant.support_email, license_key_prefix=tenant.license_key_prefix,
        primary_host=primary_host, signup_enabled=tenant.signup_enabled,
        favicon_url=tenant.favicon_url,
    )


def primary_host_for(tenant: Tenant, platform_domain: str) -> str:
    """A verified primary custom domain if there is one, else the platform-given host."""
    for domain in tenant.domains:
        if domain.is_primary and domain.verified:
            return domain.hostname
    if tenant.kind == "platform":
        return platform_domain
    return f"{tenant.slug}.{platform_domain}"


class TenantResolver:
    def __init__(self, session_factory: Callable[[], Session], platform_domain: str,
                 ttl: float, redis_getter: Callable[[], object] | None = None):
        self._session_factory = session_factory
        self._platform_domain = platform_domain
        self._suffix = "." + platform_domain
        self._ttl = ttl
        self._redis_getter = redis_getter
        self._cache: OrderedDict[str, tuple[float, int, TenantInfo | None]] = OrderedDict()
        # By id, for jobs (jobs.runner): the same TTL and invalidation as by host.
        self._by_id: OrderedDict[uuid.UUID, tuple[float, int, TenantInfo | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self._generation_checked = 0.0
        self._redis_warned = False

    def resolve(self, host: str) -> TenantInfo | None:
        """The tenant serving ``host`` (already normalised), or None."""
        return self._cached(self._cache, host, self._load, keep_miss=True)

    def by_id(self, tenant_id: uuid.UUID) -> TenantInfo | None:
        """The tenant with ``tenant_id``, or None when there is none (a miss is not kept: a
        job names a tenant that existed when it was enqueued).

        A worker restores each job's tenant from its id; loading the row and its domains for
        every job cost a transaction of its own per job (bench/execution_pipeline.py), for a
        snapshot that requests already take from this cache.
        """
        return self._cached(self._by_id, tenant_id, self._load_by_id, keep_miss=False)

    def _cached(self, cache: OrderedDict, key: Hashable,
                load: Callable[[Any], TenantInfo | None], keep_miss: bool) -> TenantInfo | None:
        now = time.monotonic()
        generation = self._current_generation(now)
        entry = cache.get(key)
        if entry is not None and entry[0] > now and entry[1] == generation:
            return entry[2]
        info = load(key)
        if info is not None or keep_miss:
            with self._lock:
                cache[key] = (now + self._ttl, generation, info)
                cache.move_to_end(key)
                while len(cache) > _MAX_ENTRIES:
                    cache.popitem(last=False)
        return info

    def invalidate(self) -> None:
        """Forget everything here, and tell the other processes through Redis."""
        with self._lock:
            self._cache.clear()
            self._by_id.clear()
        redis = self._redis()
        if redis is not None:
            try:
                redis.incr(GENERATION_KEY)
            except Exception:  # Redis down: other processes fall back to the TTL
                log.warning("could not publish tenant cache invalidation", exc_info=True)
        self._generation_checked = 0.0

    def observe_generation(self, value: int) -> bool:
        """Adopt a generation read elsewhere (the rate budgets' round trip reads it with every
        request's budgets); True when it moved, so that entries read before are reloaded."""
        moved = value != self._generation
        self._generation = value
        self._generation_checked = time.monotonic()
        return moved

    def _redis(self):
        return self._redis_getter() if self._redis_getter else None

    def _current_generation(self, now: float) -> int:
        if now - self._generation_checked < _GENERATION_CHECK_EVERY:
            return self._generation
        self._generation_checked = now
        redis = self._redis()
        if redis is None:
            return self._generation
        try:
            self._generation = int(redis.get(GENERATION_KEY) or 0)
            self._redis_warned = False
        except Exception:
            if not self._redis_warned:
                log.warning("Redis unreachable: tenant cache falls back to its TTL")
                self._redis_warned = True
        return self._generation

    def _load_by_id(self, tenant_id: uuid.UUID) -> TenantInfo | None:
        session = self._session_factory()
        try:
            tenant = session.get(Tenant, tenant_id)
            return snapshot(tenant, self._platform_domain) if tenant is not None else None
        finally:
            session.close()

    def _load(self, host: str) -> TenantInfo | None:
        session = self._session_factory()
        try:
            if host == self._platform_domain:
                tenant = session.scalars(select(Tenant).where(Tenant.kind == "platform")).first()
            elif host.endswith(self._suffix) and "." not in host[: -len(self._suffix)]:
                slug = host[: -len(self._suffix)]
                tenant = session.scalars(select(Tenant).where(
                    Tenant.slug == slug, Tenant.kind == "reseller")).first()
            else:
                domain = session.scalars(select(Domain).where(Domain.hostname == host)).first()
                tenant = domain.tenant if domain is not None and domain.verified else None
            return snapshot(tenant, self._platform_domain) if tenant is not None else None
        finally:
            session.close()
