"""Who may do what: one check used by pages (and, with the identity issue, the API)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask_login import current_user

from app.errors import ApiError
from app.extensions import login_manager
from tenants.context import current


def require_role(*roles: str) -> Callable:
    """Signed in, with one of ``roles``; ADMIN additionally only on the platform tenant."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                raise ApiError(403, "forbidden", "Your role does not allow this.")
            if current_user.role == "ADMIN" and not current().is_platform:
                raise ApiError(403, "forbidden", "Platform administration happens on the "
                                                 "platform domain.")
            return view(*args, **kwargs)

        return wrapper

    return decorate
