"""Price books and the arithmetic of a charge: what one execution costs, exactly.

A book holds a tenant's currency and prices; the most specific price applies: the agent's,
then the model's, then the book's default. A reseller's book gives retail prices (what its
customers pay); the platform's book gives wholesale prices (what resellers pay the
platform), where a price naming one reseller wins over the one for all.

Arithmetic is integers and fractions only. Prices are integer minor units (or basis points
for a markup); an execution's amount is integer micro-minor units; rounding happens in one
place, :func:`round_money`, half away from zero (docs/rebilling.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy import select

from app.billing.money import ZERO_DECIMAL
from app.billing.rebilling_models import Price, PriceBook
from app.extensions import db
from tenants.models import Tenant

MICRO = 1_000_000  # micro-minor units per minor unit
BASIS = 10_000  # basis points per 1x
DEFAULT_CURRENCY = "usd"


def round_money(amount: Fraction | int) -> int:
    """The one rounding rule: to the nearest integer, halves away from zero.

    Used twice: an exact fraction of a micro-minor unit (markup prices) to micro-minor units,
    and a total of micro-minor units to minor units (``to_minor``). Away from zero keeps a
    reversal the exact negative of its charge.
    """
    value = Fraction(amount)
    magnitude = abs(value)
    whole = magnitude.numerator // magnitude.denominator
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return whole if value >= 0 else -whole


def to_minor(micro: int) -> int:
    """A total in micro-minor units as whole minor units (cents, yen), rounded once."""
    return round_money(Fraction(micro, MICRO))


def minor_per_unit(currency: str) -> int:
    """Minor units in one unit of ``currency`` (1 for Stripe's zero-decimal currencies)."""
    return 1 if currency.lower() in ZERO_DECIMAL else 100


def provider_cost_micro(cost_micros_usd: int) -> int:
    """An execution's provider cost (millionths of a dollar) in micro-minor US dollars."""
    return cost_micros_usd * minor_per_unit("usd")


@dataclass(frozen=True)
class Rule:
    """One price: ``kind`` says which fields apply."""

    kind: str
    input_per_million_minor: int = 0
    output_per_million_minor: int = 0
    per_execution_minor: int = 0
    markup_bp: int = 0

    @classmethod
    def of(cls, price: Price) -> Rule:
        return cls(price.kind, price.input_per_million_minor or 0,
                   price.output_per_million_minor or 0, price.per_execution_minor or 0,
                   price.markup_bp or 0)


# No book, or no matching price: pass the provider's cost through at cost.
AT_COST = Rule("markup", markup_bp=BASIS)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cost_micros_usd: int  # the provider's cost, millionths of a US dollar


def charge_micro(rule: Rule, usage: Usage, currency: str, usd_rate_ppm: int) -> int:
    """What ``usage`` costs under ``rule`` in micro-minor units of ``currency``.

    Token and per-execution prices are exact (a price per million tokens in minor units,
    times tokens, *is* micro-minor units). A markup converts the provider's dollars with the
    book's rate and applies the basis points, then rounds once.
    """
    if rule.kind == "tokens":
        return (usage.prompt_tokens * rule.input_per_million_minor
                + usage.completion_tokens * rule.output_per_million_minor)
    if rule.kind == "execution":
        return rule.per_execution_minor * MICRO
    if rule.kind == "markup":
        exact = (Fraction(usage.cost_micros_usd) * minor_per_unit(currency)
                 * Fraction(usd_rate_ppm, MICRO) * Fraction(rule.markup_bp, BASIS))
        return round_money(exact)
    raise ValueError(f"unknown price kind {rule.kind!r}")


@dataclass(frozen=True)
class Book:
    """A tenant's prices as read once: enough to price any execution without a query."""

    currency: str
    usd_rate_ppm: int
    by_selector: dict[str, Rule]
    meter_event_name: str | None = None
    stripe_meter_id: str | None = None

    def rule_for(self, agent_id: uuid.UUID | None, model: str | None) -> Rule:
        for selector in (f"agent:{agent_id}" if agent_id else None,
                         f"model:{model}" if model else None, "default"):
            if selector and selector in self.by_selector:
                return self.by_selector[selector]
        return AT_COST

    def price(self, agent_id: uuid.UUID | None, model: str | None, usage: Usage) -> int:
        return charge_micro(self.rule_for(agent_id, model), usage, self.currency,
                            self.usd_rate_ppm)


def selector_for(agent_id: uuid.UUID | str | None, model: str | None) -> str:
    if agent_id:
        return f"agent:{agent_id}"
    if model:
        return f"model:{model}"
    return "default"


def load_book(tenant_id: uuid.UUID | None = None, audience: str = "all") -> Book:
    """The current tenant's book, or (``tenant_id``) another's read with an explicit reason:
    the platform's wholesale book as it applies to the reseller ``audience``."""
    options = ({"cross_tenant": "wholesale prices live in the platform's price book"}
               if tenant_id is not None else {})
    book_stmt = select(PriceBook)
    price_stmt = select(Price).where(Price.audience.in_(("all", audience)))
    if tenant_id is not None:
        book_stmt = book_stmt.where(PriceBook.tenant_id == tenant_id)
        price_stmt = price_stmt.where(Price.tenant_id == tenant_id)
    row = db.session.scalars(book_stmt.execution_options(**options)).first()
    prices = db.session.scalars(price_stmt.execution_options(**options)).all()
    rules: dict[str, Rule] = {}
    # A reseller's own wholesale price wins over the one for all: apply "all" first.
    for price in sorted(prices, key=lambda p: p.audience != "all"):
        rules[price.selector] = Rule.of(price)
    if row is None:
        return Book(DEFAULT_CURRENCY, MICRO, rules)
    return Book(row.currency, row.usd_rate_ppm, rules, row.meter_event_name,
                row.stripe_meter_id)


def platform_tenant_id() -> uuid.UUID | None:
    return db.session.scalar(select(Tenant.id).where(Tenant.kind == "platform")
                             .execution_options(cross_tenant="the platform's own id"))


def wholesale_book(reseller_id: uuid.UUID) -> Book:
    """The platform's prices for ``reseller_id`` (at cost in dollars if it has none)."""
    platform_id = platform_tenant_id()
    if platform_id is None or platform_id == reseller_id:
        return Book(DEFAULT_CURRENCY, MICRO, {})
    return load_book(platform_id, audience=f"reseller:{reseller_id}")


def cached_book() -> Book:
    """The current tenant's book, from this process's cache when it is current
    (``book_cache``): what pricing an execution reads."""
    from app.billing import book_cache
    from tenants.context import current_id

    return book_cache.of_app().get(current_id(), "book", load_book)


def cached_wholesale_book(reseller_id: uuid.UUID) -> Book:
    """``wholesale_book`` from this process's cache, under the platform's generation."""
    from app.billing import book_cache

    cache = book_cache.of_app()
    # The platform's id never changes once it exists: kept under a counter nobody bumps,
    # so a platform created after this process started is seen within MAX_AGE.
    platform_id = cache.get(book_cache.NO_TENANT, "platform-id", platform_tenant_id)
    if platform_id is None or platform_id == reseller_id:
        return Book(DEFAULT_CURRENCY, MICRO, {})
    return cache.get(platform_id, ("wholesale", reseller_id),
                     lambda: load_book(platform_id, audience=f"reseller:{reseller_id}"))
