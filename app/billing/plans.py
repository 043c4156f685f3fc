"""Plans a tenant sells: the platform's to resellers, a reseller's to its customers."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select

from app.billing.models import PLAN_INTERVALS, Plan
from app.errors import ApiError
from app.extensions import db

CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
CURRENCY = re.compile(r"^[a-z]{3}$")
LIMIT_FIELDS = ("executions_per_month", "agents", "customers", "licenses", "api_keys")


def create_plan(code: str, name: str, *, stripe_price_id: str | None = None,
                interval: str = "month", amount_minor: int = 0, currency: str = "usd",
                features: Iterable[str] = (), is_default: bool = False,
                **limits: int | None) -> Plan:
    """Add a plan to the current tenant; limits left out (or None) are unlimited."""
    problems: dict[str, str] = {}
    code = (code or "").strip().lower()
    currency = (currency or "").strip().lower()
    if not CODE.match(code):
        problems["code"] = "1-40 lowercase letters, digits, '-' or '_'"
    if not (name or "").strip():
        problems["name"] = "cannot be empty"
    if interval not in PLAN_INTERVALS:
        problems["interval"] = "must be month or year"
    if not isinstance(amount_minor, int) or amount_minor < 0:
        problems["amount_minor"] = "must be a whole number of minor units, 0 or more"
    if not CURRENCY.match(currency):
        problems["currency"] = "must be a three-letter ISO currency code"
    if stripe_price_id is not None and not stripe_price_id.startswith("price_"):
        problems["stripe_price_id"] = "must be a Stripe price id (price_…)"
    if stripe_price_id is None and not is_default:
        problems["stripe_price_id"] = "only the default (free) plan has no Stripe price"
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        problems["limits"] = f"unknown limits: {', '.join(sorted(unknown))}"
    for key, value in limits.items():
        if value is not None and (not isinstance(value, int) or value < 0):
            problems[key] = "must be a whole number, 0 or more, or null for unlimited"
    if not problems:
        existing = db.session.scalars(select(Plan).where(Plan.code == code)).first()
        if existing is not None:
            problems["code"] = "is taken"
        elif stripe_price_id and db.session.scalars(
                select(Plan.id).where(Plan.stripe_price_id == stripe_price_id)).first():
            problems["stripe_price_id"] = "already belongs to another plan"
        elif is_default and db.session.scalars(
                select(Plan.id).where(Plan.is_default.is_(True))).first():
            problems["is_default"] = "this tenant already has a default plan"
    if problems:
        raise ApiError(422, "invalid_plan", "The plan is invalid.", details={"fields": problems})
    plan = Plan(code=code, name=name.strip(), stripe_price_id=stripe_price_id,
                interval=interval, amount_minor=amount_minor, currency=currency,
                features=sorted(set(features)), is_default=is_default,
                **{k: limits.get(k) for k in LIMIT_FIELDS})
    db.session.add(plan)
    db.session.flush()
    return plan


def update_plan(plan: Plan, changes: dict) -> Plan:
    """Change a plan's name, limits or whether it is the default (audited).

    Making a plan the default takes that role from the previous default; limits apply
    from the next check (nothing already used is taken back). The audit watcher records
    the change ("plan_updated", with before and after) for this path and every other one,
    so nothing is recorded here: one entry per change.
    """
    problems: dict[str, str] = {}
    if "name" in changes and not (changes["name"] or "").strip():
        problems["name"] = "cannot be empty"
    if changes.get("is_default") is False and plan.is_default and not plan.stripe_price_id:
        problems["is_default"] = "make another plan the default instead"
    if problems:
        raise ApiError(422, "invalid_plan", "The plan is invalid.", details={"fields": problems})
    if changes.get("is_default") and not plan.is_default:
        for other in db.session.scalars(select(Plan).where(Plan.is_default.is_(True))):
            other.is_default = False
        db.session.flush()  # one default per tenant: clear the old before setting the new
    for key, value in changes.items():
        setattr(plan, key, value.strip() if key == "name" else value)
    return plan


def get_plan(plan_id) -> Plan:
    plan = db.session.get(Plan, plan_id)
    if plan is None:
        raise ApiError(404, "plan_not_found", "No such plan here.")
    return plan


def list_plans(include_inactive: bool = False) -> list[Plan]:
    stmt = select(Plan).order_by(Plan.amount_minor, Plan.code)
    if not include_inactive:
        stmt = stmt.where(Plan.active.is_(True))
    return list(db.session.scalars(stmt))


def ensure_sellable(plan: Plan | None) -> Plan:
    """``plan`` if it can be bought through Checkout, else the clear reason why not."""
    if plan is None or not plan.active:
        raise ApiError(404, "plan_not_found", "No such plan is offered here.")
    if not plan.stripe_price_id:
        raise ApiError(409, "plan_not_sellable", "The free plan needs no checkout.")
    return plan
