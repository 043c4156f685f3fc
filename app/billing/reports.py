"""Reading the ledger: what a customer may see of it, filters, totals, margins, CSV.

A customer sees its own entries in its seller's prices and currency, never the model, the
provider's cost or the wholesale price (``customer_view``). A reseller sees everything of
its tenant and its margins; the platform sees wholesale revenue per reseller.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from app.billing import pricing
from app.billing.rebilling_models import LedgerEntry
from app.errors import ApiError
from app.extensions import db

CUSTOMER_FIELDS = ("id", "kind", "reverses_id", "execution_id", "agent_id", "channel",
                   "credential_kind", "credential_id", "prompt_tokens", "completion_tokens",
                   "amount_micro", "included_micro", "credits_micro", "billable_micro",
                   "currency", "period", "occurred_at")
RESELLER_FIELDS = (*CUSTOMER_FIELDS, "customer_id", "version_number", "model",
                   "provider_cost_micro", "wholesale_micro", "wholesale_currency",
                   "margin_micro", "reason")


@dataclass(frozen=True)
class Viewer:
    user_id: uuid.UUID
    sees_tenant: bool  # a reseller (or the operator) sees every customer's entries


def customer_view(entry: LedgerEntry) -> dict[str, Any]:
    return {"id": entry.id, "kind": entry.kind, "reverses_id": entry.reverses_id,
            "execution_id": entry.execution_id, "agent_id": entry.agent_id,
            "channel": entry.channel, "credential_kind": entry.credential_kind,
            "credential_id": entry.credential_id, "prompt_tokens": entry.prompt_tokens,
            "completion_tokens": entry.completion_tokens, "amount_micro": entry.retail_micro,
            "included_micro": entry.included_micro, "credits_micro": entry.credits_micro,
            "billable_micro": entry.billable_micro, "currency": entry.currency,
            "period": entry.period, "occurred_at": entry.occurred_at}


def reseller_view(entry: LedgerEntry) -> dict[str, Any]:
    margin = (entry.retail_micro - entry.wholesale_micro
              if entry.currency == entry.wholesale_currency else None)
    return {**customer_view(entry), "customer_id": entry.customer_id,
            "version_number": entry.version_number, "model": entry.model,
            "provider_cost_micro": entry.provider_cost_micro,
            "wholesale_micro": entry.wholesale_micro,
            "wholesale_currency": entry.wholesale_currency, "margin_micro": margin,
            "reason": entry.reason}


def view_of(viewer: Viewer):
    return reseller_view if viewer.sees_tenant else customer_view


def _uuid(value: Any, name: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise ApiError(422, "invalid_filter", f"{name} is not an id.") from None


def entries(viewer: Viewer, *, customer_id: Any = None, agent_id: Any = None,
            period: str | None = None, kind: str | None = None,
            since: datetime | None = None, until: datetime | None = None) -> Select:
    """The ledger entries ``viewer`` may see, narrowed by the filters."""
    stmt = select(LedgerEntry)
    if not viewer.sees_tenant:
        stmt = stmt.where(LedgerEntry.customer_id == viewer.user_id)
    if customer_id is not None:
        stmt = stmt.where(LedgerEntry.customer_id == _uuid(customer_id, "customer_id"))
    if agent_id is not None:
        stmt = stmt.where(LedgerEntry.agent_id == _uuid(agent_id, "agent_id"))
    if period is not None:
        stmt = stmt.where(LedgerEntry.period == period)
    if kind is not None:
        stmt = stmt.where(LedgerEntry.kind == kind)
    if since is not None:
        stmt = stmt.where(LedgerEntry.created_at >= since)
    if until is not None:
        stmt = stmt.where(LedgerEntry.created_at < until)
    return stmt


def csv_rows(viewer: Viewer, stmt: Select, batch: int = 500) -> Iterator[str]:
    """The entries as CSV lines (header first), read in keyset batches so an export of a
    long ledger never holds it all in memory."""
    fields = RESELLER_FIELDS if viewer.sees_tenant else CUSTOMER_FIELDS
    view = view_of(viewer)
    out = io.StringIO()
    writer = csv.writer(out)

    def flush() -> str:
        text = out.getvalue()
        out.seek(0)
        out.truncate()
        return text

    writer.writerow(fields)
    yield flush()
    last: tuple[datetime, uuid.UUID] | None = None
    while True:
        page = stmt.order_by(LedgerEntry.created_at, LedgerEntry.id).limit(batch)
        if last is not None:
            page = page.where((LedgerEntry.created_at > last[0])
                              | ((LedgerEntry.created_at == last[0])
                                 & (LedgerEntry.id > last[1])))
        rows = list(db.session.scalars(page))
        if not rows:
            return
        for entry in rows:
            item = view(entry)
            writer.writerow(["" if item[f] is None else _cell(item[f]) for f in fields])
        yield flush()
        last = (rows[-1].created_at, rows[-1].id)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    # Spreadsheet formula injection: a cell never starts with a formula character.
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _day(column):
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.date(column)


GROUPS = {"customer": LedgerEntry.customer_id, "agent": LedgerEntry.agent_id, "day": None}


def margins(group_by: str = "customer", period: str | None = None) -> list[dict[str, Any]]:
    """Revenue, provider cost, wholesale cost and margin per customer, agent or day."""
    if group_by not in GROUPS:
        raise ApiError(422, "invalid_group", f"Group by one of {', '.join(GROUPS)}.")
    key = GROUPS[group_by] if group_by != "day" else _day(LedgerEntry.occurred_at)
    stmt = select(key.label("key"), LedgerEntry.currency, LedgerEntry.wholesale_currency,
                  func.count().label("n"),
                  func.coalesce(func.sum(LedgerEntry.retail_micro), 0),
                  func.coalesce(func.sum(LedgerEntry.provider_cost_micro), 0),
                  func.coalesce(func.sum(LedgerEntry.wholesale_micro), 0))
    if period:
        stmt = stmt.where(LedgerEntry.period == period)
    stmt = stmt.group_by(key, LedgerEntry.currency, LedgerEntry.wholesale_currency) \
        .order_by(key)
    rows = []
    for key_value, currency, wholesale_currency, n, revenue, cost, wholesale in \
            db.session.execute(stmt):
        revenue, cost, wholesale = int(revenue), int(cost), int(wholesale)
        rows.append({"key": str(key_value), "currency": currency,
                     "wholesale_currency": wholesale_currency, "entries": int(n),
                     "revenue_micro": revenue, "provider_cost_micro": cost,
                     "wholesale_micro": wholesale,
                     "margin_micro": revenue - wholesale
                     if currency == wholesale_currency else None})
    return rows


def customer_totals(user_id: uuid.UUID, period: str) -> dict[str, Any]:
    """A customer's month in its seller's prices: spend, included, credits, to invoice."""
    row = db.session.execute(
        select(func.count(), func.coalesce(func.sum(LedgerEntry.retail_micro), 0),
               func.coalesce(func.sum(LedgerEntry.included_micro), 0),
               func.coalesce(func.sum(LedgerEntry.credits_micro), 0),
               func.coalesce(func.sum(LedgerEntry.billable_micro), 0),
               func.coalesce(func.sum(LedgerEntry.prompt_tokens
                                      + LedgerEntry.completion_tokens), 0))
        .where(LedgerEntry.customer_id == user_id, LedgerEntry.period == period)).one()
    n, spent, included, credits, billable, tokens = (int(v) for v in row)
    return {"period": period, "entries": n, "tokens": tokens,
            "spent": pricing.to_minor(spent), "included": pricing.to_minor(included),
            "credits": pricing.to_minor(credits), "billable": pricing.to_minor(billable)}


def wholesale_by_reseller(period: str | None = None) -> list[dict[str, Any]]:
    """The platform's view: wholesale revenue per reseller, across tenants (by reason)."""
    from tenants.models import Tenant

    stmt = (select(Tenant.id, Tenant.name, LedgerEntry.wholesale_currency, func.count(),
                   func.coalesce(func.sum(LedgerEntry.wholesale_micro), 0),
                   func.coalesce(func.sum(LedgerEntry.provider_cost_micro), 0))
            .join(Tenant, Tenant.id == LedgerEntry.tenant_id)
            .group_by(Tenant.id, Tenant.name, LedgerEntry.wholesale_currency)
            .order_by(Tenant.name)
            .execution_options(cross_tenant="the operator's wholesale revenue per reseller"))
    if period:
        stmt = stmt.where(LedgerEntry.period == period)
    return [{"tenant_id": tid, "name": name, "currency": currency, "entries": int(n),
             "wholesale_micro": int(wholesale), "provider_cost_micro": int(cost),
             "wholesale": pricing.to_minor(int(wholesale))}
            for tid, name, currency, n, wholesale, cost in db.session.execute(stmt)]


def total(rows: Iterable[dict[str, Any]], name: str) -> int:
    return sum(row[name] or 0 for row in rows)
