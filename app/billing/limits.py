"""What an account may use: ``limits_for(user_id)`` is the one question quota checks ask.

Inside the current tenant: a customer's limits come from the plan of its entitled
subscription among the tenant's own plans; the tenant's own limits (``user_id=None``) from
its subscription to one of the platform's plans. With no such subscription, or with Stripe
not configured, the account is on the free plan: the tenant's default plan if it has one,
else the built-in one below.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select

from app.billing.config import stripe_config
from app.billing.models import ENTITLED_STATUSES, Plan, Subscription
from app.extensions import db
from tenants.context import current
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


# Small enough to try the product, never enough to run a business on it.
FREE_PLAN = PlanLimits(plan_name="Free", executions_per_month=100, agents=1, customers=3,
                       licenses=3, api_keys=1, features=frozenset())


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
    return limits_of(plan) if plan is not None else FREE_PLAN
