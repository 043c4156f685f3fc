"""flask-login wiring: a session names a user of *this* tenant and their session version."""

from __future__ import annotations

import uuid

from flask import g

from app.auth.models import User
from app.extensions import db, login_manager
from tenants.context import current_or_none

login_manager.login_view = "auth.login"
login_manager.login_message = None  # the login page says it itself


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    if current_or_none() is None:
        return None
    user_id, _, version = session_id.partition(":")
    try:
        user = db.session.get(User, uuid.UUID(user_id))
    except ValueError:
        return None
    # The tenant guard already hides other tenants' users; the version check ends sessions
    # older than the last password change.
    if user is None or not user.is_active or str(user.session_version) != version:
        return None
    g.log_user_id = str(user.id)
    return user
