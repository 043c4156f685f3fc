"""What the people pages show a reseller: its team, its customers, one customer's account.

Queries only, in the current tenant (the isolation guard keeps other tenants out); the
changes themselves live in app.auth.users (deactivate, reactivate) and app.auth.invitations.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, or_, select

from app.auth.models import ApiKey, User
from app.errors import ApiError
from app.extensions import db

PAGE_SIZE = 200


def people(role: str, q: str = "", limit: int = PAGE_SIZE) -> list[User]:
    """The tenant's users with ``role``, active first, then newest; ``q`` filters by email or
    name (a substring, case-insensitive)."""
    stmt = select(User).where(User.role == role)
    if q.strip():
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where(or_(func.lower(User.email).like(like), func.lower(User.name).like(like)))
    return list(db.session.scalars(
        stmt.order_by(User.is_active.desc(), User.created_at.desc()).limit(limit)))


def customer(customer_id: uuid.UUID) -> User:
    user = db.session.get(User, customer_id)
    if user is None or user.role != "USER":
        raise ApiError(404, "not_found", "No such customer.")
    return user


def customer_overview(user: User) -> dict[str, Any]:
    """Plan, this month's usage, licenses, API keys and recent executions of one customer."""
    from app.agents.models import Agent, Execution
    from app.agents.quotas import usage_of
    from app.billing.limits import entitled_subscription, limits_for
    from app.licensing.models import License

    limits = limits_for(user.id)
    subscription = entitled_subscription(user.id)
    executions = db.session.execute(
        select(Execution, Agent.name).join(Agent, Agent.id == Execution.agent_id)
        .where(Execution.caller_user_id == user.id)
        .order_by(Execution.created_at.desc()).limit(20)).all()
    licenses = list(db.session.scalars(
        select(License).where(or_(License.owner_id == user.id,
                                  License.customer_email == user.email))
        .order_by(License.created_at.desc()).limit(50)))
    keys = list(db.session.scalars(
        select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at.desc())))
    return {"plan": limits.plan_name, "limits": limits, "subscription": subscription,
            "quota": usage_of(user.id), "executions": executions, "licenses": licenses,
            "keys": keys}
