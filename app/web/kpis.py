"""The numbers on the three home pages, computed in SQL (aggregates, never rows in Python).

* platform (operator): across every tenant, an explicit cross-tenant opt-in naming why;
* reseller (staff): the current tenant, kept to it by the isolation guard;
* customer: the signed-in customer's own numbers, and never the provider's model or cost.

"This month" is the UTC calendar month so far; "last month" the whole previous one, the
same periods the execution quota counts in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from app import clock
from app.agents.models import Agent, Execution
from app.auth.models import ApiKey, User
from app.extensions import db
from app.web import charts

PLATFORM_REASON = "the platform operator's home page totals every reseller"
CHART_DAYS = 30


@dataclass(frozen=True)
class Compared:
    """This month so far next to the whole of last month."""

    this_month: int
    last_month: int

    @property
    def change(self) -> str:
        if self.last_month == 0:
            return "new" if self.this_month else "—"
        pct = round(100 * (self.this_month - self.last_month) / self.last_month)
        return f"{pct:+d}%"


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """(first instant of last month, first instant of this month), UTC."""
    now = now or clock.now()
    this = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = (this.replace(year=this.year - 1, month=12) if this.month == 1
            else this.replace(month=this.month - 1))
    return last, this


def _opts(stmt, cross: bool):
    return stmt.execution_options(cross_tenant=PLATFORM_REASON) if cross else stmt


def _executions(*criteria, cross: bool = False) -> tuple[Compared, Compared]:
    """Executions and tokens, this month vs last."""
    last, this = month_bounds()
    tokens = func.coalesce(func.sum(Execution.prompt_tokens + Execution.completion_tokens), 0)

    def between(start: datetime, end: datetime | None) -> tuple[int, int]:
        stmt = select(func.count(), tokens).where(Execution.created_at >= start, *criteria)
        if end is not None:
            stmt = stmt.where(Execution.created_at < end)
        n, t = db.session.execute(_opts(stmt, cross)).one()
        return int(n), int(t)

    now_n, now_t = between(this, None)
    last_n, last_t = between(last, this)
    return Compared(now_n, last_n), Compared(now_t, last_t)


def executions_chart(*criteria, cross: bool = False, label: str = "Executions"):
    from app.agents.usage import _day, window

    since, until = window(CHART_DAYS)
    day = _day(Execution.created_at).label("day")
    stmt = (select(day, func.count()).where(Execution.created_at >= since,
                                            Execution.created_at <= until, *criteria)
            .group_by(day).order_by(day))
    rows = [_DayCount(r[0], int(r[1])) for r in db.session.execute(_opts(stmt, cross))]
    return charts.daily_bars(rows, CHART_DAYS, value=lambda r: r.count, label=label,
                             until=until)


@dataclass(frozen=True)
class _DayCount:
    raw: Any
    count: int

    @property
    def day(self):
        from datetime import date

        return self.raw if isinstance(self.raw, date) else date.fromisoformat(str(self.raw))


# -- platform ---------------------------------------------------------------------------------

def _monthly_minor(amount: int, interval: str) -> int:
    return amount // 12 if interval == "year" else amount


def platform_home() -> dict[str, Any]:
    from app.billing.models import ENTITLED_STATUSES, Plan, Subscription
    from app.integrations.models import WebhookEndpoint
    from tenants.models import Tenant

    resellers = dict(db.session.execute(
        select(Tenant.status, func.count()).where(Tenant.kind == "reseller")
        .group_by(Tenant.status)).all())
    customers = db.session.scalar(_opts(select(func.count()).select_from(User).where(
        User.role == "USER", User.is_active.is_(True)), True)) or 0
    active_callers = db.session.scalar(_opts(
        select(func.count(func.distinct(Execution.caller_user_id)))
        .where(Execution.created_at >= month_bounds()[1]), True)) or 0
    executions, tokens = _executions(cross=True)
    # MRR: resellers' entitled subscriptions to the platform, at their plan's price per month.
    platform_id = select(Tenant.id).where(Tenant.kind == "platform").scalar_subquery()
    mrr_rows = db.session.execute(_opts(
        select(Plan.currency, Plan.amount_minor, Plan.interval)
        .join(Subscription, Subscription.stripe_price_id == Plan.stripe_price_id)
        .where(Plan.tenant_id == platform_id, Subscription.user_id.is_(None),
               Subscription.stripe_account_id.is_(None),
               Subscription.status.in_(ENTITLED_STATUSES)), True)).all()
    mrr: dict[str, int] = {}
    for currency, amount, interval in mrr_rows:
        mrr[currency] = mrr.get(currency, 0) + _monthly_minor(amount, interval)
    failing_webhooks = db.session.scalar(_opts(
        select(func.count()).select_from(WebhookEndpoint).where(
            (WebhookEndpoint.failing_since.is_not(None)) | (WebhookEndpoint.enabled.is_(False))),
        True)) or 0
    failing_payments = db.session.scalar(_opts(
        select(func.count()).select_from(Subscription).where(
            Subscription.status.in_(("past_due", "unpaid", "incomplete"))), True)) or 0
    return {"resellers_active": resellers.get("active", 0),
            "resellers_suspended": resellers.get("suspended", 0),
            "customers": customers, "active_callers": active_callers,
            "executions": executions, "tokens": tokens, "mrr": sorted(mrr.items()),
            "failing_webhooks": failing_webhooks, "failing_payments": failing_payments,
            "chart": executions_chart(cross=True)}


# -- reseller ---------------------------------------------------------------------------------

def setup_checklist(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """What a new reseller still has to do, in the order it makes sense to do it."""
    from app.billing.models import ConnectAccount, Plan
    from tenants.models import Domain, Tenant

    tenant = db.session.get(Tenant, tenant_id)
    branded = bool(tenant.logo_url or tenant.primary_color.lower() != "#4f46e5"
                   or tenant.display_name != tenant.name)
    domain = db.session.scalar(select(func.count()).select_from(Domain).where(
        Domain.tenant_id == tenant_id, Domain.verified_at.is_not(None))) or 0
    agents = db.session.scalar(select(func.count()).select_from(Agent)) or 0
    plans = db.session.scalar(select(func.count()).select_from(Plan)) or 0
    stripe = db.session.scalar(select(func.count()).select_from(ConnectAccount).where(
        ConnectAccount.charges_enabled.is_(True))) or 0
    return [
        {"label": "Brand your dashboard (name, logo, colours)", "done": branded,
         "endpoint": "tenants_pages.branding"},
        {"label": "Serve it on your own domain", "done": domain > 0, "endpoint": None},
        {"label": "Build your first agent", "done": agents > 0,
         "endpoint": "agents_pages.index"},
        {"label": "Create your first plan", "done": plans > 0,
         "endpoint": "billing_pages.index"},
        {"label": "Connect Stripe to get paid", "done": stripe > 0,
         "endpoint": "billing_pages.index"},
    ]


def reseller_home(tenant_id: uuid.UUID) -> dict[str, Any]:
    from app.billing.models import Invoice
    from app.licensing.models import License, ValidationRecord

    last, this = month_bounds()
    customers = db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "USER", User.is_active.is_(True))) or 0
    new_customers = db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "USER", User.created_at >= this)) or 0
    executions, tokens = _executions()
    licenses_active = db.session.scalar(select(func.count()).select_from(License).where(
        License.status == "active")) or 0

    def validations(start, end=None) -> int:
        stmt = select(func.count()).select_from(ValidationRecord).where(
            ValidationRecord.validated_at >= start)
        if end is not None:
            stmt = stmt.where(ValidationRecord.validated_at < end)
        return db.session.scalar(stmt) or 0

    revenue = db.session.execute(
        select(Invoice.currency, func.sum(Invoice.amount_paid))
        .where(Invoice.user_id.is_not(None), Invoice.status == "paid",
               Invoice.created_at >= this)
        .group_by(Invoice.currency).order_by(Invoice.currency)).all()
    top_agents = db.session.execute(
        select(Agent.id, Agent.name, func.count().label("n"),
               func.coalesce(func.sum(Execution.prompt_tokens + Execution.completion_tokens),
                             0))
        .join(Execution, Execution.agent_id == Agent.id)
        .where(Execution.created_at >= this)
        .group_by(Agent.id, Agent.name).order_by(func.count().desc()).limit(5)).all()
    return {"customers": customers, "new_customers": new_customers,
            "executions": executions, "tokens": tokens, "licenses_active": licenses_active,
            "validations": Compared(validations(this), validations(last, this)),
            "revenue": [(c, int(t or 0)) for c, t in revenue],
            "top_agents": [{"id": a, "name": n, "executions": int(c), "tokens": int(t)}
                           for a, n, c, t in top_agents],
            "checklist": setup_checklist(tenant_id), "chart": executions_chart()}


# -- customer ---------------------------------------------------------------------------------

def customer_home(user_id: uuid.UUID) -> dict[str, Any]:
    """Usage against the quota, recent executions and keys: the agent's name, never the
    provider's model or cost (those are the reseller's business)."""
    from app.agents.quotas import usage_of

    recent = db.session.execute(
        select(Execution.id, Execution.created_at, Execution.status, Agent.name,
               (Execution.prompt_tokens + Execution.completion_tokens).label("tokens"))
        .join(Agent, Agent.id == Execution.agent_id)
        .where(Execution.caller_user_id == user_id)
        .order_by(Execution.created_at.desc()).limit(10)).all()
    keys = list(db.session.scalars(select(ApiKey).where(
        ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc()).limit(10)))
    quota = usage_of(user_id)
    limit = quota["limit"]
    percent = min(100, round(100 * quota["used"] / limit)) if limit else None
    return {"quota": quota, "percent": percent, "recent": recent, "keys": keys,
            "chart": executions_chart(Execution.caller_user_id == user_id)}
