"""What an account may use: ``limits_for(user_id)`` answers, ``ensure_room`` enforces counts.

Inside the current tenant: a customer's limits come from the plan of its entitled
subscription among the tenant's own plans; the tenant's own limits (``user_id=None``) from
its subscription to one of the platform's plans. With no such subscription, or with Stripe
not configured, the account is on the free plan: the tenant's default plan if it has one,
else the built-in one (ALBEDO_FREE_PLAN_* settings, see app/billing/config.py).

Whose plan each count belongs to (``ensure_room`` is called by each create service):

* agents: an agent owned by an end customer counts against that customer's plan; a
  reseller's templates count against the reseller's plan from the platform.
* API keys: a customer's keys against the customer's plan; the keys of a reseller's staff,
  all together, against the reseller's plan.
* customers: the active end-customer accounts (role USER) of a reseller, however they were
  made (sign-up, OAuth, the CLI, a staff member turned customer, a reactivation), against
  the reseller's plan. Attaching a license to an email creates no account: it does not
  count until that person signs up.
* licenses: every license of a reseller against the reseller's plan, single and bulk. A bulk
  issue of N is refused up front if N do not fit, and its room stays reserved until the job
  finishes, so it is never half-issued because single issues took the room meanwhile.

What frees room: deleting an agent, revoking (or letting expire) an API key, revoking a
license, deactivating a customer. Archived agents, suspended and expired licenses still
count: they come back without a new check. The platform operator sells plans rather than
buying one: its own agents and keys are not counted.

Over the limit the answer is ``402 plan_limit_reached`` with the limit, the count in use and
the plan's name. 402 rather than the execution quota's 429: waiting does not help, a bigger
plan (or freeing one) does. Counting is race-safe: the owner's row (the customer's user row,
or the tenant row) is locked for the rest of the transaction before counting, so concurrent
creates count one after another and never pass the limit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select, text

from app import clock
from app.billing.config import FREE_PLAN_SETTINGS, free_plan_config, stripe_config
from app.billing.models import ENTITLED_STATUSES, Plan, Subscription
from app.errors import ApiError
from app.extensions import db
from tenants.context import current, current_id
from tenants.models import Tenant


@dataclass(frozen=True)
class PlanLimits:
    """Quotas; ``None`` means unlimited."""

    plan_name: str
    executions_per_month: int | None
    agents: int | None
    customers: int | None
    licenses: int | None
    api_keys: int | None
    features: frozenset[str] = field(default_factory=frozenset)
    plan_id: uuid.UUID | None = None

    def allows(self, quota: str, used: int) -> bool:
        """Whether one more of ``quota`` fits when ``used`` are already taken."""
        limit = getattr(self, quota)
        return limit is None or used < limit

    def has_feature(self, name: str) -> bool:
        return name in self.features


# The built-in free plan with its default numbers; ``free_plan()`` is the configured one.
FREE_PLAN = PlanLimits(plan_name="Free", features=frozenset(),
                       **{quota: default for quota, default in FREE_PLAN_SETTINGS.values()})


def free_plan() -> PlanLimits:
    """The built-in free plan as this app is configured (ALBEDO_FREE_PLAN_*)."""
    return PlanLimits(plan_name=FREE_PLAN.plan_name, features=frozenset(),
                      **free_plan_config())


def limits_of(plan: Plan) -> PlanLimits:
    return PlanLimits(plan_name=plan.name, executions_per_month=plan.executions_per_month,
                      agents=plan.agents, customers=plan.customers, licenses=plan.licenses,
                      api_keys=plan.api_keys, features=frozenset(plan.features or ()),
                      plan_id=plan.id)


def _platform_plans_stmt(*criteria):
    # The platform's plans live in the platform tenant; a reseller reads its own plan there.
    platform_id = select(Tenant.id).where(Tenant.kind == "platform").scalar_subquery()
    return (select(Plan).where(Plan.tenant_id == platform_id, *criteria)
            .execution_options(cross_tenant="a reseller's limits come from a platform plan"))


def entitled_subscription(user_id: uuid.UUID | None) -> Subscription | None:
    """The subscription currently giving ``user_id`` (or the tenant) its plan, if any."""
    owner = Subscription.user_id.is_(None) if user_id is None else Subscription.user_id == user_id
    return db.session.scalars(
        select(Subscription).where(owner, Subscription.status.in_(ENTITLED_STATUSES))
        .order_by(Subscription.created_at.desc(), Subscription.id)).first()


def plan_for(user_id: uuid.UUID | None) -> Plan | None:
    """The Plan row behind ``limits_for`` (None: the built-in free plan)."""
    # A customer buys from its tenant; a reseller buys from the platform (which, as the
    # top of the chain, is measured against its own plans).
    own_plans = user_id is not None or current().is_platform
    subscription = entitled_subscription(user_id) if stripe_config() is not None else None

    def plans(*criteria):
        return select(Plan).where(*criteria) if own_plans else _platform_plans_stmt(*criteria)

    if subscription is not None and subscription.stripe_price_id:
        plan = db.session.scalars(plans(Plan.stripe_price_id == subscription.stripe_price_id)
                                  ).first()
        if plan is not None:
            return plan
    return db.session.scalars(plans(Plan.is_default.is_(True))).first()


def limits_for(user_id: uuid.UUID | None) -> PlanLimits:
    """The limits of ``user_id`` in the current tenant, or of the tenant itself for None."""
    plan = plan_for(user_id)
    return limits_of(plan) if plan is not None else free_plan()


# --- counts ---------------------------------------------------------------------------------

class PlanLimitReached(ApiError):
    """402 ``plan_limit_reached``: creating ``requested`` more would pass the plan's limit."""

    def __init__(self, quota: str, limits: PlanLimits, used: int, requested: int,
                 account: str):
        limit = getattr(limits, quota)
        spec = COUNTED[quota]
        what = spec.label if limit != 1 else spec.singular
        asked = ("one more does not fit" if requested == 1
                 else f"{requested} more do not fit; nothing was created")
        message = (f"Your {limits.plan_name} plan allows {limit} {what} and {used} "
                   f"{'is' if used == 1 else 'are'} in use: {asked}. {spec.remedy} or "
                   "upgrade the plan.")
        super().__init__(402, "plan_limit_reached", message, details={
            "quota": quota, "limit": limit, "used": used, "requested": requested,
            "plan": limits.plan_name,
            "plan_id": str(limits.plan_id) if limits.plan_id else None, "account": account})
        self.quota, self.limit, self.used = quota, limit, used


def _user_role(user_id: uuid.UUID) -> str | None:
    from app.auth.models import User

    user = db.session.get(User, user_id)
    return user.role if user is not None else None


def _agents_used(customer_id: uuid.UUID | None) -> int:
    from app.agents.models import Agent

    mine = (Agent.owner_id == customer_id, Agent.is_template.is_(False)) \
        if customer_id is not None else (Agent.is_template.is_(True),)
    return db.session.scalar(select(func.count()).select_from(Agent).where(*mine)) or 0


def _api_keys_used(customer_id: uuid.UUID | None) -> int:
    from app.auth.models import ApiKey, User

    now = clock.now()
    live = (ApiKey.revoked_at.is_(None),
            (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now))
    stmt = select(func.count()).select_from(ApiKey).where(*live)
    if customer_id is not None:
        stmt = stmt.where(ApiKey.user_id == customer_id)
    else:  # the staff's keys, all together
        stmt = stmt.join(User, User.id == ApiKey.user_id).where(User.role != "USER")
    return db.session.scalar(stmt) or 0


def _customers_used(_: uuid.UUID | None) -> int:
    from app.auth.models import User

    return db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "USER", User.is_active.is_(True))) or 0


def _licenses_used(_: uuid.UUID | None) -> int:
    from app.licensing.models import BulkIssue, License

    issued = db.session.scalar(select(func.count()).select_from(License)
                               .where(License.status != "revoked")) or 0
    # A bulk issue's licenses not written yet keep their room: the job commits each chunk
    # together with its ``issued`` count, so issued + reserved never counts one twice.
    reserved = db.session.scalar(
        select(func.coalesce(func.sum(BulkIssue.requested - BulkIssue.issued), 0))
        .where(BulkIssue.status.in_(("queued", "running")))) or 0
    return issued + int(reserved)


@dataclass(frozen=True)
class Counted:
    label: str
    singular: str
    remedy: str
    used: Callable[[uuid.UUID | None], int]
    per_customer: bool  # a customer's own (else always the tenant's)


COUNTED: dict[str, Counted] = {
    "agents": Counted("agents", "agent", "Delete an agent", _agents_used, per_customer=True),
    "api_keys": Counted("API keys", "API key", "Revoke a key", _api_keys_used,
                        per_customer=True),
    "customers": Counted("customers", "customer", "Deactivate a customer", _customers_used,
                         per_customer=False),
    "licenses": Counted("licenses", "license", "Revoke licenses", _licenses_used,
                        per_customer=False),
}


def account_for(quota: str, owner_user_id: uuid.UUID | None) -> uuid.UUID | None:
    """The customer whose plan counts ``quota`` for this owner, or None for the tenant's."""
    if COUNTED[quota].per_customer and owner_user_id is not None \
            and _user_role(owner_user_id) == "USER":
        return owner_user_id
    return None


def _lock(customer_id: uuid.UUID | None) -> None:
    """Hold the owner's row until the transaction ends, so counts are taken one at a time."""
    from app.auth.models import User

    if db.session.get_bind().dialect.name != "postgresql":
        # SQLite has no row locks and reads outside a write transaction; a write that matches
        # nothing still takes its one database write lock (waiting on busy_timeout).
        db.session.execute(text("UPDATE tenants SET kind = kind WHERE 0"))
        return
    # FOR NO KEY UPDATE: it queues concurrent creates but not the inserts elsewhere whose
    # foreign keys only share-lock the same row.
    if customer_id is not None:
        stmt = select(User.id).where(User.id == customer_id)
    else:
        stmt = select(Tenant.id).where(Tenant.id == current_id())
    db.session.execute(stmt.with_for_update(key_share=True))


def ensure_room(quota: str, owner_user_id: uuid.UUID | None = None, count: int = 1) -> None:
    """Raise ``PlanLimitReached`` unless ``count`` more of ``quota`` fit the owner's plan.

    ``owner_user_id``: the user who will own the new agent or API key (ignored for customers
    and licenses, which are always the tenant's). Call inside the transaction that creates
    them, before the insert: the lock it takes lasts until that transaction ends.
    """
    spec = COUNTED[quota]
    customer_id = account_for(quota, owner_user_id)
    if customer_id is None and current().is_platform:
        return
    limits = limits_for(customer_id)
    limit = getattr(limits, quota)
    if limit is None:
        return
    _lock(customer_id)
    used = spec.used(customer_id)
    if used + count > limit:
        raise PlanLimitReached(quota, limits, used, count,
                               "customer" if customer_id is not None else "tenant")


# For the OpenAPI description of each create route (``@blp.alt_response(402, **PLAN_LIMIT_DOC)``).
PLAN_LIMIT_DOC = {"description": "`plan_limit_reached`: the plan's limit on this count is "
                                 "used up (details: limit, used, requested, plan)."}
