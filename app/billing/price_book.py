"""Editing a price book: its currency and rate, and its prices (no Flask request here).

A reseller edits its retail book (what its customers pay); the platform operator edits the
wholesale book (what resellers pay), optionally with a price for one reseller.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import func, select

from app.billing import pricing
from app.billing.rebilling_models import PRICE_KINDS, LedgerEntry, PlanUsage, Price, PriceBook
from app.errors import ApiError
from app.extensions import db
from tenants.context import current
from tenants.models import Tenant

CURRENCY = re.compile(r"^[a-z]{3}$")
FIELDS_OF = {"tokens": ("input_per_million_minor", "output_per_million_minor"),
             "execution": ("per_execution_minor",),
             "markup": ("markup_bp",)}
ALL_FIELDS = ("input_per_million_minor", "output_per_million_minor", "per_execution_minor",
              "markup_bp")
MAX_AMOUNT = 2_147_483_647  # the columns are 32-bit integers


def book_row() -> PriceBook | None:
    return db.session.scalars(select(PriceBook)).first()


def describe_book() -> dict[str, Any]:
    row = book_row()
    return {"currency": row.currency if row else pricing.DEFAULT_CURRENCY,
            "usd_rate_ppm": row.usd_rate_ppm if row else pricing.MICRO,
            "meter_event_name": row.meter_event_name if row else None,
            "stripe_meter_id": row.stripe_meter_id if row else None}


def update_book(*, currency: str | None = None, usd_rate_ppm: int | None = None,
                meter_event_name: str | None = None,
                stripe_meter_id: str | None = None) -> PriceBook:
    """Change the book's currency (only while its ledger is empty: one ledger, one
    currency), its dollar rate or its Stripe meter."""
    row = book_row()
    if row is None:
        row = PriceBook(currency=pricing.DEFAULT_CURRENCY, usd_rate_ppm=pricing.MICRO)
        db.session.add(row)
    if currency is not None:
        currency = currency.strip().lower()
        if not CURRENCY.match(currency):
            raise ApiError(422, "invalid_price_book", "The currency is a three-letter code.",
                           details={"fields": {"currency": "three letters, e.g. usd, eur"}})
        if currency != row.currency and db.session.scalar(
                select(func.count()).select_from(LedgerEntry)):
            raise ApiError(409, "currency_locked", "The currency cannot change once usage has "
                                                   "been charged in it.")
        row.currency = currency
    if usd_rate_ppm is not None:
        if not 1 <= usd_rate_ppm <= 10**15:
            raise ApiError(422, "invalid_price_book", "The dollar rate is out of range.",
                           details={"fields": {"usd_rate_ppm": "1 to 10^15"}})
        row.usd_rate_ppm = usd_rate_ppm
    if meter_event_name is not None:
        row.meter_event_name = meter_event_name.strip()[:100] or None
    if stripe_meter_id is not None:
        row.stripe_meter_id = stripe_meter_id.strip()[:255] or None
    db.session.flush()
    return row


def _audience(reseller_id: uuid.UUID | None) -> str:
    if reseller_id is None:
        return "all"
    if not current().is_platform:
        raise ApiError(422, "invalid_price", "Only the platform's wholesale prices name a "
                                             "reseller.")
    exists = db.session.scalar(select(Tenant.id).where(
        Tenant.id == reseller_id, Tenant.kind == "reseller"))
    if exists is None:
        raise ApiError(404, "reseller_not_found", "No such reseller.")
    return f"reseller:{reseller_id}"


def _agent(agent_id: uuid.UUID) -> uuid.UUID:
    from app.agents.models import Agent

    if db.session.scalar(select(Agent.id).where(Agent.id == agent_id)) is None:
        raise ApiError(404, "agent_not_found", "No such agent.")
    return agent_id


def set_price(*, kind: str, agent_id: uuid.UUID | None = None, model: str | None = None,
              reseller_id: uuid.UUID | None = None, **amounts: int | None) -> Price:
    """Create or replace the price for an agent, a model or the default."""
    problems: dict[str, str] = {}
    if kind not in PRICE_KINDS:
        problems["kind"] = f"one of {', '.join(PRICE_KINDS)}"
    if agent_id is not None and model:
        problems["model"] = "a price is for an agent or for a model, not both"
    if model is not None and not (0 < len(model.strip()) <= 100):
        problems["model"] = "1-100 characters"
    for name in ALL_FIELDS:
        value = amounts.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
            problems[name] = f"a whole number from 0 to {MAX_AMOUNT}"
        elif kind in FIELDS_OF and name not in FIELDS_OF[kind]:
            problems[name] = f"does not apply to a {kind} price"
    if kind in FIELDS_OF and not problems and all(
            amounts.get(name) is None for name in FIELDS_OF[kind]):
        problems[FIELDS_OF[kind][0]] = f"a {kind} price needs it"
    if problems:
        raise ApiError(422, "invalid_price", "The price is invalid.",
                       details={"fields": problems})
    audience = _audience(reseller_id)
    if agent_id is not None and audience == "all":
        _agent(agent_id)
    model = model.strip() if model else None
    selector = pricing.selector_for(agent_id, model)
    price = db.session.scalars(select(Price).where(Price.audience == audience,
                                                   Price.selector == selector)).first()
    if price is None:
        price = Price(audience=audience, selector=selector, agent_id=agent_id, model=model)
        db.session.add(price)
    price.kind = kind
    for name in ALL_FIELDS:
        setattr(price, name, amounts.get(name) if name in FIELDS_OF[kind] else None)
    if book_row() is None:
        update_book()
    db.session.flush()
    return price


def list_prices() -> list[Price]:
    return list(db.session.scalars(select(Price).order_by(Price.audience, Price.selector)))


def delete_price(price_id: uuid.UUID | str) -> None:
    try:
        key = uuid.UUID(str(price_id))
    except ValueError:
        raise ApiError(404, "price_not_found", "No such price.") from None
    price = db.session.get(Price, key)
    if price is None:
        raise ApiError(404, "price_not_found", "No such price.")
    db.session.delete(price)


def set_plan_usage(plan_id: uuid.UUID | str, included_minor: int, overage_bp: int) -> PlanUsage:
    """The usage one of this tenant's plans includes each month, and its overage price."""
    from app.billing.models import Plan

    try:
        key = uuid.UUID(str(plan_id))
    except ValueError:
        key = None
    plan = db.session.scalars(select(Plan).where(Plan.id == key)).first() if key else None
    if plan is None:
        raise ApiError(404, "plan_not_found", "No such plan.")
    row = db.session.scalars(select(PlanUsage).where(PlanUsage.plan_id == plan.id)).first()
    if row is None:
        row = PlanUsage(plan_id=plan.id)
        db.session.add(row)
    row.included_minor, row.overage_bp = included_minor, overage_bp
    db.session.flush()
    return row
