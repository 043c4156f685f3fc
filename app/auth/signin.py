"""Signing in, the same way for the page and the token endpoint: lockout, audit, result."""

from __future__ import annotations

from app.auth import audit, lockout
from app.auth.models import User
from app.auth.service import authenticate, normalise_email
from app.extensions import db


class SignInError(Exception):
    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def sign_in(email: str, password: str, channel: str) -> User:
    """The user, with the attempt audited and committed; SignInError otherwise."""
    email = normalise_email(email)
    if lockout.is_locked(email):
        audit.record("sign_in_failed", actor_label=email, reason="locked", channel=channel)
        db.session.commit()
        raise SignInError("account_locked", "Too many failed sign-ins: try again in "
                                            f"{lockout.WINDOW_SECONDS // 60} minutes.", 429)
    user = authenticate(email, password)
    if user is None:
        audit.record("sign_in_failed", actor_label=email, reason="bad_credentials",
                     channel=channel)
        if lockout.note_failure(email):
            audit.record("account_locked", actor_label=email, channel=channel)
        db.session.commit()
        raise SignInError("invalid_credentials",
                          "That email and password do not match an account here.", 401)
    lockout.clear(email)
    audit.record("sign_in", actor_user_id=user.id, actor_label=user.email, target_type="user",
                 target_id=user.id, channel=channel)
    db.session.commit()
    return user
