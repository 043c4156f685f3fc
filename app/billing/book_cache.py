"""Price books and plans' included usage, kept per process between executions.

Ending an execution prices it with the reseller's book and the platform's wholesale book,
and splits it by the customer's plan allowance. Reading those for every execution cost five
to seven queries in the outcome's transaction (bench/execution_pipeline.py); they change a
few times a month.

Each tenant has a generation counter in Redis, bumped after any commit that changes its
price book, its prices or its plans' included usage (a session event, whatever code path
wrote the rows). A process reads a tenant's counter at most once a second, as the tenant
cache does (``tenants.resolution``), so a change made elsewhere applies to executions that
end at most a second later; the process that made it forgets its entries at once. Without
Redis nothing is cached (each execution reads the rows), and an entry never outlives
``MAX_AGE`` (a bump lost to a Redis failure).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from flask import Flask, current_app
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0  # seconds between two reads of one tenant's counter
MAX_AGE = 300.0  # seconds: bounds what a lost bump can leave stale
_EXTENSION = "albedo.price_book_cache"
_MAX_ENTRIES = 10_000
NO_TENANT = uuid.UUID(int=0)  # for values that belong to no tenant (the platform's id)

T = TypeVar("T")


def generation_key(tenant_id: uuid.UUID | str) -> str:
    return f"albedo:price-book-gen:{tenant_id}"


class BookCache:
    """Values read under a tenant's generation: ``get(tenant, key, load)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (tenant, key) -> (generation, read at, value)
        self._entries: dict[tuple[uuid.UUID, Hashable], tuple[str, float, Any]] = {}
        self._generations: dict[uuid.UUID, tuple[str, float]] = {}  # tenant -> (value, at)
        self.monotonic = time.monotonic  # tests move it past CHECK_EVERY

    def get(self, tenant_id: uuid.UUID, key: Hashable, load: Callable[[], T]) -> T:
        now = self.monotonic()
        generation = self._generation(tenant_id, now)
        if generation is None:
            return load()  # Redis is away: no counter to trust, read the rows
        entry = self._entries.get((tenant_id, key))
        if entry is not None and entry[0] == generation and now - entry[1] < MAX_AGE:
            return entry[2]
        value = load()
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[(tenant_id, key)] = (generation, now, value)
        return value

    def forget(self, tenant_ids: set[uuid.UUID]) -> None:
        with self._lock:
            for entry_key in [k for k in self._entries if k[0] in tenant_ids]:
                del self._entries[entry_key]
            for tenant_id in tenant_ids:
                self._generations.pop(tenant_id, None)

    def _generation(self, tenant_id: uuid.UUID, now: float) -> str | None:
        seen = self._generations.get(tenant_id)
        if seen is not None and now - seen[1] < CHECK_EVERY:
            return seen[0]
        from app.redis import get_redis

        try:
            value = get_redis().get(generation_key(tenant_id))
        except Exception:
            log.warning("Redis unreachable: price books are read for every execution",
                        exc_info=True)
            return None
        generation = value.decode() if value is not None else "0"
        with self._lock:
            self._generations[tenant_id] = (generation, now)
        return generation


def of_app(app: Flask | None = None) -> BookCache:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    cache = app.extensions.get(_EXTENSION)
    if cache is None:
        cache = app.extensions.setdefault(_EXTENSION, BookCache())
    return cache


def bump(tenant_ids: set[uuid.UUID]) -> None:
    """Increment these tenants' counters (never raises: a lost bump only ages out) and
    forget this process's entries for them."""
    from app.redis import get_redis

    try:
        pipe = get_redis().pipeline(transaction=False)
        for tenant_id in sorted(tenant_ids, key=str):
            pipe.incr(generation_key(tenant_id))
        pipe.execute()
    except Exception:
        log.warning("could not bump price book generations", exc_info=True)
    of_app().forget(tenant_ids)


def _changed_tenants(session: Session) -> set[uuid.UUID]:
    from app.billing.rebilling_models import PlanUsage, Price, PriceBook

    return {obj.tenant_id for obj in (*session.new, *session.dirty, *session.deleted)
            if isinstance(obj, PriceBook | Price | PlanUsage) and obj.tenant_id is not None}


def install() -> None:
    """Bump the counters of tenants whose price rows a commit changed."""
    from app.commit_hooks import on_commit

    on_commit("price_books", _changed_tenants, bump)
