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

from app.auth import api_keys, tokens
from app.auth.models import User
from app.auth.permissions import role_problem
from app.auth.principal import ALL_SCOPES, Principal
from app.errors import ApiError
from app.extensions import db
from tenants.context import current

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
    """The caller, or ApiError 401. Cached on ``g`` for the request."""
    if "principal" in g:
        return g.principal
    token = _bearer()
    if token is None:
        raise _unauthenticated("Send 'Authorization: Bearer <token or API key>'.")
    tenant = current()
    if api_keys.looks_like_key(token):
        found = api_keys.authenticate(token)
        if found is None:
            raise _unauthenticated("The API key is invalid, expired or revoked.")
        key, user = found
        principal = Principal("api_key", tenant.id, user.id, user.role,
                              frozenset(key.scopes), api_key_id=key.id)
    else:
        try:
            claims = tokens.decode_access_token(token)
            user = db.session.get(User, uuid.UUID(claims["sub"]))
        except (tokens.TokenError, ValueError):
            raise _unauthenticated("The access token is invalid or expired.") from None
        if user is None or not user.is_active or user.session_version != claims.get("sv"):
            raise _unauthenticated("The access token is no longer valid; sign in again.")
        principal = Principal("user", tenant.id, user.id, user.role, ALL_SCOPES,
                              token_id=claims.get("jti"))
    g.principal = principal
    g.log_user_id = str(principal.user_id)
    return principal


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

        # OpenAPI: every guarded operation documents its security scheme and scopes.
        doc = deepcopy(getattr(view, "_apidoc", {}))
        doc.setdefault("manual_doc", {})["security"] = [{"bearerAuth": list(scopes)}]
        wrapper._apidoc = doc
        return wrapper

    return decorate
