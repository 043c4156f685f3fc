"""A per-process cache of authenticated principals, by credential hash, kept honest by
generation counters (``generations``).

Authenticating an API request cost two queries (the user, or the key and its user) on every
request, for an answer that almost never changes. Each process now keeps what a credential
authenticated as, keyed by (tenant, SHA-256 of the credential), together with the generation
counters it depends on and their values when it was read. A request whose credential is
cached sends those counters with its rate budgets (``app.api.budgets``: the same Redis round
trip) and uses the cached principal only if none moved; otherwise it reads the database
again. So a revocation, role change, deactivation, password change or tenant suspension
committed in any process is seen by every process at its next request.

Generic: any credential type plugs in with a loader that reads it from the database and names
the counters it depends on (``load``), and reads it back with ``cached`` or ``confirmed``.
The cache holds no secret (only hashes as keys) and never a refusal (a flood of random
credentials cannot fill it). Time limits (a token's ``exp``, a key's ``expires_at``) are the
caller's to check on every use: an entry carries ``valid_until``.

Without Redis nothing can be confirmed: every request reads the database, as before.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import current_app, g

from app.auth import generations

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000
# Bounds the staleness a lost bump (Redis unreachable at the moment of a change) could cause.
MAX_AGE = 300.0
_CONFIRMED = "_albedo_confirmed_principal"


@dataclass(frozen=True)
class Entry:
    value: Any  # what the loader returned (a Principal, for the API guard)
    keys: tuple[str, ...]  # generation counters it depends on
    generations: tuple[str, ...]  # their values before it was read from the database
    valid_until: float | None  # epoch seconds (app clock) after which the credential is dead
    stored_at: float  # monotonic


def credential_hash(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


class PrincipalCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE) -> None:
        self._entries: OrderedDict[tuple[uuid.UUID, str], Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.max_age = max_age
        self.monotonic = time.monotonic  # tests move it

    def get(self, tenant_id: uuid.UUID, digest: str) -> Entry | None:
        entry = self._entries.get((tenant_id, digest))
        if entry is not None and self.monotonic() - entry.stored_at > self.max_age:
            self.forget(tenant_id, digest)
            return None
        return entry

    def put(self, tenant_id: uuid.UUID, digest: str, entry: Entry) -> None:
        with self._lock:
            self._entries[(tenant_id, digest)] = entry
            self._entries.move_to_end((tenant_id, digest))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, tenant_id: uuid.UUID, digest: str) -> None:
        with self._lock:
            self._entries.pop((tenant_id, digest), None)

    def forget_keys(self, keys: Iterable[str]) -> None:
        """Drop every entry depending on one of ``keys`` (this process bumped them)."""
        keys = set(keys)
        with self._lock:
            for cache_key in [k for k, e in self._entries.items() if keys & set(e.keys)]:
                del self._entries[cache_key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def load(self, tenant_id: uuid.UUID, digest: str, keys: tuple[str, ...],
             loader: Callable[[], tuple[Any, float | None] | None]) -> Entry | None:
        """Read the counters, then the database (``loader``: (value, valid_until) or None),
        and keep the result under the counters read *before* it: a change committed after
        the read bumps them after, so the next confirmation catches it."""
        try:
            keys, seen = generations.read_with_epoch(keys)
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            log.warning("principal cache without Redis: reading the database", exc_info=True)
            seen = None
        loaded = loader()
        if loaded is None:
            return None
        value, valid_until = loaded
        entry = Entry(value, keys, seen or (), valid_until, self.monotonic())
        if seen is not None:
            self.put(tenant_id, digest, entry)
        return entry


def of_app() -> PrincipalCache:
    """This app's cache (one per process and app)."""
    cache = current_app.extensions.get("albedo.principal_cache")
    if cache is None:
        cache = current_app.extensions.setdefault("albedo.principal_cache", PrincipalCache())
    return cache


def probe_for(tenant_id: uuid.UUID, digest: str):
    """A piggyback for the rate budgets' round trip confirming the cached entry, or None."""
    from app.api.budgets import Piggyback

    cache = of_app()
    entry = cache.get(tenant_id, digest)
    if entry is None:
        return None

    def settle(values: list[str] | None) -> None:
        if values is None:
            return  # Redis unreachable: unconfirmed, the caller reads the database
        if tuple(values) == entry.generations:
            g.setdefault(_CONFIRMED, {})[(tenant_id, digest)] = entry
        else:
            cache.forget(tenant_id, digest)

    return Piggyback(entry.keys, settle)


def confirmed(tenant_id: uuid.UUID, digest: str) -> Entry | None:
    """The entry for this credential, current as of this request, or None (read it).

    Confirmed by the request's rate-limit round trip when it ran; else (an endpoint exempt
    from limits, Redis down at that moment) by a round trip of its own."""
    entry = g.get(_CONFIRMED, {}).get((tenant_id, digest))
    if entry is not None:
        return entry
    cache = of_app()
    entry = cache.get(tenant_id, digest)
    if entry is None:
        return None
    try:
        current = generations.read(entry.keys)
    except Exception as exc:
        if not _is_redis_error(exc):
            raise
        return None
    if current != entry.generations:
        cache.forget(tenant_id, digest)
        return None
    g.setdefault(_CONFIRMED, {})[(tenant_id, digest)] = entry
    return entry


def _is_redis_error(exc: Exception) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError)
