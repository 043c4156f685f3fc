"""Generation counters that tell a cached principal it is out of date.

Each user, API key and tenant has a counter in Redis. A committed change that could change
who a credential is or what it may do bumps the counters it concerns: a user's role, active
flag, session version (password change, sign-out everywhere), password or email; an API key's
revocation, expiry, scopes or deletion; a tenant's status (suspension). Any process's cached
principal (``principal_cache``) carries the counters it was read under and is confirmed
current by the request's rate-limit round trip, so a change in one process is seen by every
other at its next request.

Bumps happen after the commit (a session event, whatever code path wrote the rows), so a
request can at worst use the old state for the instant between a commit and its bump. A
bulk UPDATE or DELETE of those tables (no objects to look at) bumps the current tenant's
counter, which every principal of the tenant carries. A lost bump (Redis down at that
moment) is bounded by the cache's maximum age (``principal_cache.MAX_AGE``).

Redis keeps nothing on disk: a restarted Redis reads every counter as 0 again, which could
match a principal cached under an earlier 0 — a key revoked before the restart, say. So
every principal also carries this Redis's epoch (``EPOCH_KEY``, a random value set when
missing): a Redis that lost its data has another, and every cached principal is read again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from flask import has_app_context
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from app import commit_hooks

log = logging.getLogger(__name__)

_PREFIX = "albedo:auth-gen:"
_TTL = 30 * 24 * 3600  # a counter that expires reads as 0: a mismatch, never a false match

# What makes a cached principal wrong when it changes.
USER_FIELDS = frozenset({"role", "is_active", "session_version", "password_hash", "email",
                         "tenant_id"})
API_KEY_FIELDS = frozenset({"revoked_at", "expires_at", "scopes", "user_id", "key_hash",
                            "prefix", "tenant_id"})
TENANT_FIELDS = frozenset({"status", "kind", "slug"})
# Bookkeeping columns a bulk UPDATE may set without concerning any principal.
_BOOKKEEPING = frozenset({"last_used_at", "last_login_at", "updated_at"})


EPOCH_KEY = _PREFIX + "epoch"


def user_key(user_id: uuid.UUID | str) -> str:
    return f"{_PREFIX}u:{user_id}"


def api_key_key(key_id: uuid.UUID | str) -> str:
    return f"{_PREFIX}k:{key_id}"


def tenant_key(tenant_id: uuid.UUID | str) -> str:
    return f"{_PREFIX}t:{tenant_id}"


def read(keys: Iterable[str]) -> tuple[str, ...]:
    """The counters now, '0' for one never bumped (raises on a Redis failure)."""
    from app.redis import get_redis

    keys = list(keys)
    if not keys:
        return ()
    return tuple(v.decode() if v is not None else "0" for v in get_redis().mget(keys))


def read_with_epoch(keys: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(``EPOCH_KEY`` and ``keys``, their values), the epoch set first when this Redis has
    none (raises on a Redis failure)."""
    from app.redis import get_redis

    keys = (EPOCH_KEY, *keys)
    values = read(keys)
    if values[0] == "0":
        get_redis().set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
        values = read(keys)
    return keys, values


def bump(keys: Iterable[str]) -> None:
    """Increment these counters now (never raises: a lost bump only ages out)."""
    from app.redis import bump_counters

    keys = sorted(set(keys))
    if not keys:
        return
    bump_counters(keys, _TTL, "principal generations")
    if has_app_context():
        from app.auth import principal_cache

        principal_cache.of_app().forget_keys(keys)  # this process sees its change at once


def _changed(obj, fields: frozenset[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields
               if name in state.attrs)


def _changed_keys(session: Session) -> set[str]:
    from app.auth.models import ApiKey, User
    from tenants.models import Tenant

    keys: set[str] = set()
    for obj in (*session.dirty, *session.deleted):
        deleted = obj in session.deleted
        if isinstance(obj, User) and (deleted or _changed(obj, USER_FIELDS)):
            keys.add(user_key(obj.id))
        elif isinstance(obj, ApiKey) and (deleted or _changed(obj, API_KEY_FIELDS)):
            keys.add(api_key_key(obj.id))
        elif isinstance(obj, Tenant) and (deleted or _changed(obj, TENANT_FIELDS)):
            keys.add(tenant_key(obj.id))
    return keys


def _bulk_keys(orm_execute_state) -> set[str]:
    from app.auth.models import ApiKey, User
    from tenants.context import current_or_none
    from tenants.models import Tenant

    if not (orm_execute_state.is_update or orm_execute_state.is_delete):
        return set()
    mapper = orm_execute_state.bind_mapper
    entity = mapper.class_ if mapper is not None else None
    if entity not in (User, ApiKey, Tenant):
        return set()
    values = getattr(orm_execute_state.statement, "_values", None) or {}
    columns = {getattr(c, "key", str(c)) for c in values}
    if orm_execute_state.is_update and columns and columns <= _BOOKKEEPING:
        return set()
    tenant = current_or_none()
    if tenant is None:
        # A cross-tenant bulk change (platform code): every tenant's principals may be
        # concerned, and there is no counter for all; the cache's maximum age bounds it.
        log.warning("bulk change of %s outside a tenant: cached principals age out",
                    entity.__name__)
        return set()
    return {tenant_key(tenant.id)}


def install() -> None:
    """Listen to every session: note principal-changing rows at flush (and in bulk
    statements), bump their generations after the commit."""
    commit_hooks.on_commit("principal", _changed_keys, bump, bulk=_bulk_keys)
