"""A reseller's people: list the tenant's users, change a role, deactivate an account.

Resellers act on their own tenant only (the isolation guard sees to that); a reseller cannot
change its own role or deactivate itself, so a tenant never locks out its last operator by
accident. Every change is audited and takes effect at once: a role change or deactivation
bumps the session version, ending the user's sessions and access tokens.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select

from app import clock
from app.auth import audit
from app.auth.models import User
from app.auth.principal import Principal
from app.auth.service import roles_allowed_in_current_tenant
from app.auth.tokens import revoke_all_for_user
from app.billing.limits import ensure_room
from app.errors import ApiError
from app.extensions import db


def user_by_id(user_id: Any) -> Select:
    """One user of the tenant (``user_id`` may be a bound parameter: the read lane compiles
    this once, app/auth/lane_reads.py)."""
    return select(User).where(User.id == user_id)


def users_query(role: str | None = None):
    stmt = select(User)
    if role:
        stmt = stmt.where(User.role == role)
    return stmt


def get_for_update(user_id: uuid.UUID, actor: Principal) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise ApiError(404, "not_found", "No such user.")
    if user.id == actor.user_id:
        raise ApiError(409, "cannot_change_self",
                       "Ask another member of your team to change your own role or access.")
    return user


def change(user: User, actor: Principal, role: str | None, is_active: bool | None,
           banned: bool | None = None) -> User:
    actor_user = db.session.get(User, actor.user_id)
    label = actor_user.email if actor_user else ""
    active = user.is_active if is_active is None else is_active
    if (role or user.role) == "USER" and active and not (user.role == "USER" and user.is_active):
        ensure_room("customers")  # an active customer takes a place in the reseller's plan
    if role is not None and role != user.role:
        allowed = roles_allowed_in_current_tenant()
        if role not in allowed:
            raise ApiError(422, "validation_failed", "That role does not exist here.",
                           {"fields": {"role": f"one of {', '.join(allowed)}"}})
        audit.record("role_changed", actor_user_id=actor.user_id, actor_label=label,
                     target_type="user", target_id=user.id, before=user.role, after=role)
        user.role = role
        user.session_version += 1
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        user.session_version += 1
        audit.record("user_reactivated" if is_active else "user_deactivated",
                     actor_user_id=actor.user_id, actor_label=label, target_type="user",
                     target_id=user.id)
        if not is_active:
            revoke_all_for_user(user.id)
    if banned is not None and banned != (user.banned_at is not None):
        # A ban is about what the customer bought: its licenses validate as BANNED
        # (app/licensing); the account itself is deactivated with is_active.
        user.banned_at = clock.now() if banned else None
        audit.record("user_banned" if banned else "user_unbanned",
                     actor_user_id=actor.user_id, actor_label=label, target_type="user",
                     target_id=user.id)
    return user
