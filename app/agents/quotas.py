"""Execution quotas, enforced atomically before an execution is enqueued.

Each scope (the customer, the API key, the license) has a counter row per calendar month
(UTC). Reserving is one conditional ``UPDATE … SET used = used + 1 WHERE used < limit`` per
scope, inside the transaction that inserts the execution: the database serialises concurrent
requests on the counter row, so at the boundary exactly ``limit`` succeed, and a request that
fails later (or is refused by another scope) rolls its increments back with it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from app import clock
from app.agents.config import agents_config
from app.agents.models import QuotaCounter
from app.errors import ApiError
from app.extensions import db
from tenants.context import current_id


def monthly_execution_limit(user_id: uuid.UUID) -> int | None:
    """Executions per month for the customer's plan (None: unlimited).

    The plan is billing's answer (a subscription, or the tenant's default plan); a customer
    on no plan at all gets the built-in free allowance, ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS.
    """
    from app.billing.limits import limits_of, plan_for

    plan = plan_for(user_id)
    if plan is not None:
        return limits_of(plan).executions_per_month
    return agents_config().free_plan_monthly_executions


def api_key_monthly_limit(api_key_id: uuid.UUID) -> int | None:
    """A key's own monthly cap (ALBEDO_API_KEY_MONTHLY_EXECUTIONS; None: only the plan's)."""
    return agents_config().api_key_monthly_executions


def license_monthly_limit(license_id: uuid.UUID) -> int | None:
    """A license's own monthly cap (ALBEDO_LICENSE_MONTHLY_EXECUTIONS; licensing may refine)."""
    return agents_config().license_monthly_executions


@dataclass(frozen=True)
class Scope:
    key: str
    label: str
    limit: int | None


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def reset_at(moment: datetime) -> datetime:
    """The first instant of the next month (UTC), when every monthly counter restarts."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=1, hour=0, minute=0, second=0,
                          microsecond=0)


def scopes_for(user_id: uuid.UUID, api_key_id: uuid.UUID | None,
               license_id: uuid.UUID | None) -> list[Scope]:
    scopes = [Scope(f"user:{user_id}", "plan", monthly_execution_limit(user_id))]
    if api_key_id is not None:
        scopes.append(Scope(f"api_key:{api_key_id}", "api_key", api_key_monthly_limit(api_key_id)))
    if license_id is not None:
        scopes.append(Scope(f"license:{license_id}", "license", license_monthly_limit(license_id)))
    return scopes


def _ensure_counter(scope: str, period: str) -> None:
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(QuotaCounter).values(id=uuid.uuid4(), tenant_id=current_id(), scope=scope,
                                       period=period, used=0)
    db.session.execute(stmt.on_conflict_do_nothing(
        index_elements=["tenant_id", "scope", "period"]))


def reserve(user_id: uuid.UUID, api_key_id: uuid.UUID | None = None,
            license_id: uuid.UUID | None = None, *, scopes: list[Scope] | None = None) -> None:
    """Count one execution against every scope, or raise 429 ``quota_exceeded``.

    Must run inside the transaction that creates the execution; the caller rolls back on
    the error (the API's error handling does). ``scopes``: from :func:`scopes_for`, when
    the caller read them before its first write (they are reads: the plan's limits).
    """
    now = clock.now()
    period = period_of(now)
    if scopes is None:
        scopes = scopes_for(user_id, api_key_id, license_id)
    for scope in scopes:
        _ensure_counter(scope.key, period)
        stmt = (update(QuotaCounter)
                .where(QuotaCounter.scope == scope.key, QuotaCounter.period == period)
                .values(used=QuotaCounter.used + 1)
                .execution_options(synchronize_session=False))
        if scope.limit is not None:
            stmt = stmt.where(QuotaCounter.used < scope.limit)
        if db.session.execute(stmt).rowcount != 1:
            db.session.rollback()
            reset = reset_at(now)
            _announce_exceeded(user_id, scope, period, reset)
            raise ApiError(
                429, "quota_exceeded",
                f"The monthly execution quota of {scope.limit} for this "
                f"{scope.label.replace('_', ' ')} is used up; it resets on "
                f"{reset:%Y-%m-%d %H:%M} UTC.",
                details={"scope": scope.label, "limit": scope.limit,
                         "period": period, "reset_at": reset.isoformat()},
                headers={"Retry-After": str(max(int((reset - now).total_seconds()), 1))})


def release(user_id: uuid.UUID, api_key_id: uuid.UUID | None,
            license_id: uuid.UUID | None, reserved_at: datetime) -> None:
    """Give back the one execution :func:`reserve` counted in ``reserved_at``'s month, for an
    execution that never ran (its jobs kept getting lost: jobs/durable.py). Failures after a
    run started keep their count, as they used the provider. (A widget key's own monthly cap,
    which the widget feature counts, keeps the count: agents do not reach into the widget's
    tables for so rare a case.)"""
    keys = [f"user:{user_id}"]
    keys += [f"api_key:{api_key_id}"] if api_key_id is not None else []
    keys += [f"license:{license_id}"] if license_id is not None else []
    db.session.execute(
        update(QuotaCounter).where(QuotaCounter.scope.in_(keys),
                                   QuotaCounter.period == period_of(reserved_at),
                                   QuotaCounter.used > 0)
        .values(used=QuotaCounter.used - 1).execution_options(synchronize_session=False))


def _announce_exceeded(user_id: uuid.UUID, scope: Scope, period: str, reset: datetime) -> None:
    """quota.exceeded, once per scope and month: a client retrying against a spent quota
    must not turn every refusal into a webhook."""
    from app.integrations.events import emit
    from app.redis import get_redis

    try:
        first = get_redis().set(f"albedo:quota-exceeded:{current_id()}:{scope.key}:{period}",
                                "1", nx=True, ex=40 * 24 * 3600)
    except Exception:  # no Redis, no dedup: better silent than a flood
        return
    if not first:
        return
    # The plan's quota keeps the plan's own name; per-key and per-license caps say which.
    name = ("executions_per_month" if scope.label == "plan"
            else f"{scope.label}_executions_per_month")
    emit("quota.exceeded", {"user_id": str(user_id), "quota": name,
                            "limit": scope.limit, "period": period,
                            "reset_at": reset.isoformat()}, owner_user_id=user_id)
    db.session.commit()


def usage_of(user_id: uuid.UUID) -> dict[str, object]:
    """This month's count and limit for a customer (for the usage page)."""
    from sqlalchemy import select

    now = clock.now()
    used = db.session.scalar(select(QuotaCounter.used).where(
        QuotaCounter.scope == f"user:{user_id}", QuotaCounter.period == period_of(now))) or 0
    return {"used": used, "limit": monthly_execution_limit(user_id),
            "reset_at": reset_at(now).isoformat()}
