"""Who may do what: one role rule for pages and API alike.

``role_problem`` is the rule; ``require_role`` applies it to pages (session users) and
``app.auth.guard.require`` to the API (token and key callers, plus scopes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from flask_login import current_user

from app.errors import ApiError
from app.extensions import login_manager
from tenants.context import current


def role_problem(role: str, allowed: Iterable[str] | None) -> ApiError | None:
    """Why ``role`` may not act here, or None. ADMINs act only on the platform domain."""
    allowed = frozenset(allowed) if allowed is not None else None
    if allowed is not None and role not in allowed:
        return ApiError(403, "forbidden", "Your role does not allow this.",
                        {"allowed_roles": sorted(allowed)})
    if role == "ADMIN" and not current().is_platform:
        return ApiError(403, "forbidden", "Platform operators act on the platform domain only.")
    return None


def require_role(*roles: str) -> Callable:
    """Pages: signed in, with one of ``roles``."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if problem := role_problem(current_user.role, roles):
                raise problem
            return view(*args, **kwargs)

        return wrapper

    return decorate
