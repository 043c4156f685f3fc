"""API authentication and authorisation: one decorator, ``require(*scopes, roles=...)``.

``Authorization: Bearer <token>`` carries either an access JWT (from /api/v1/auth/token) or an
API key (``ak_…``). Both are checked against the tenant serving the request: credentials from
another tenant are simply unknown here (401), never a hint that they exist elsewhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from copy import deepcopy
from functools import wraps
from typing import Any

from flask import g, request

from app import clock
from app.auth import api_keys, generations, principal_cache, tokens
from app.auth.models import User
from app.auth.permissions import role_problem
from app.auth.principal import ALL_SCOPES, Principal
from app.errors import ApiError
from app.extensions import db
from tenants.context import current, current_or_none

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="api"'}


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, headers=_CHALLENGE)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate_request() -> Principal:
    """The caller, or ApiError 401. Once per request: the answer is kept on ``g``.

    A credential seen before in this process is taken from the principal cache when its
    generation counters are unchanged (confirmed in the rate budgets' round trip), with no
    query; otherwise it is read from the database and cached.
    """
    if "principal" in g:
        return g.principal
    token = _bearer()
    if token is None:
        raise _unauthenticated("Send 'Authorization: Bearer <token or API key>'.")
    tenant = current()
    is_key = api_keys.looks_like_key(token)
    digest = principal_cache.credential_hash(token)
    entry = principal_cache.confirmed(tenant.id, digest)
    if entry is None:
        entry = _load_api_key(token, digest) if is_key else _load_user_token(token, digest)
    if entry.valid_until is not None and entry.valid_until <= clock.now().timestamp():
        raise _unauthenticated("The API key is invalid, expired or revoked." if is_key else
                               "The access token is invalid or expired.")
    principal: Principal = entry.value
    if is_key:
        api_keys.note_use(tenant.id, principal.api_key_id)
    g.principal = principal
    g.log_user_id = str(principal.user_id)
    return principal


def confirm_cached_principal():
    """The rate budgets' piggyback: the cached principal of this request's credential."""
    token = _bearer()
    tenant = current_or_none()
    if token is None or tenant is None or not request.path.startswith("/api/"):
        return None
    return principal_cache.probe_for(tenant.id, principal_cache.credential_hash(token))


def _load_user_token(token: str, digest: str) -> principal_cache.Entry:
    tenant = current()
    try:
        claims = tokens.decode_access_token(token)
        user_id = uuid.UUID(claims["sub"])
    except (tokens.TokenError, ValueError):
        raise _unauthenticated("The access token is invalid or expired.") from None

    def load() -> tuple[Principal, float] | None:
        user = db.session.get(User, user_id)
        if user is None or not user.is_active or user.session_version != claims.get("sv"):
            return None
        return (Principal("user", tenant.id, user.id, user.role, ALL_SCOPES,
                          token_id=claims.get("jti"), email=user.email), float(claims["exp"]))

    entry = principal_cache.of_app().load(
        tenant.id, digest, (generations.user_key(user_id), generations.tenant_key(tenant.id)),
        load)
    if entry is None:
        raise _unauthenticated("The access token is no longer valid; sign in again.")
    return entry


def _load_api_key(token: str, digest: str) -> principal_cache.Entry:
    tenant = current()
    owner = api_keys.owner_of(token)
    if owner is not None:
        # Read before the key and its user are (principal_cache.load): a key's owner never
        # changes, so naming the counters first needs no lock.
        keys = (generations.api_key_key(owner[0]), generations.user_key(owner[1]),
                generations.tenant_key(tenant.id))

    def load() -> tuple[Principal, float | None] | None:
        found = api_keys.authenticate(token, note=False)
        if found is None:
            return None
        key, user = found
        return (Principal("api_key", tenant.id, user.id, user.role, frozenset(key.scopes),
                          api_key_id=key.id, email=user.email),
                key.expires_at.timestamp() if key.expires_at else None)

    if owner is None:
        api_keys.authenticate(token, note=False)  # the same constant-time comparison
        raise _unauthenticated("The API key is invalid, expired or revoked.")
    entry = principal_cache.of_app().load(tenant.id, digest, keys, load)
    if entry is None:
        raise _unauthenticated("The API key is invalid, expired or revoked.")
    return entry


def current_principal() -> Principal:
    return authenticate_request()


def require(*scopes: str, roles: Iterable[str] | None = None) -> Callable:
    """Authenticate, then demand every scope in ``scopes`` and one of ``roles``."""
    role_set = frozenset(roles) if roles else None

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            principal = authenticate_request()
            if problem := role_problem(principal.role, role_set):
                raise problem
            missing = [s for s in scopes if not principal.has_scope(s)]
            if missing:
                raise ApiError(403, "insufficient_scope",
                               "The credentials lack a required scope.", {"required": missing})
            return view(*args, **kwargs)

        # What the read lane checks before answering a remembered read (app/api/lane).
        wrapper.required = (tuple(scopes), role_set)
        # OpenAPI: every guarded operation documents its security scheme and scopes.
        doc = deepcopy(getattr(view, "_apidoc", {}))
        doc.setdefault("manual_doc", {})["security"] = [{"bearerAuth": list(scopes)}]
        wrapper._apidoc = doc
        return wrapper

    return decorate
