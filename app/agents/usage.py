"""Usage totals per day: tokens and cost from each execution's provider-reported usage.

Aggregated from the executions themselves (indexed by tenant and time), so the totals can
never disagree with the rows users inspect. Dimensions: the whole tenant, a customer, an API
key, a license, an agent. The window is a whole number of UTC days ending today, bounded so
one request cannot aggregate the tenant's whole history; days without executions are absent.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from app import clock
from app.agents.models import Execution
from app.agents.service import Caller, get_agent
from app.errors import ApiError
from app.extensions import db

DIMENSIONS = {
    "tenant": None,
    "customer": Execution.caller_user_id,
    "api_key": Execution.api_key_id,
    "license": Execution.license_id,
    "agent": Execution.agent_id,
}
MAX_DAYS = 90


@dataclass(frozen=True)
class DailyTotal:
    day: date
    key: str | None
    executions: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int


def _day(column):
    # One expression per dialect: SQLite's date() gives 'YYYY-MM-DD', PostgreSQL a date.
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def window(days: int, until: datetime | None = None) -> tuple[datetime, datetime]:
    """(start of the first UTC day, ``until``) for the last ``days`` days, today included."""
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ApiError(422, "invalid_days", f"days is a whole number from 1 to {MAX_DAYS}.")
    until = until or clock.now()
    first = until.date() - timedelta(days=days - 1)
    return datetime.combine(first, time.min, tzinfo=until.tzinfo), until


def _customer_filter(caller: Caller, customer_id: uuid.UUID):
    from app.auth.models import User

    # Another customer's id, another tenant's, or no one's: the same 404, nothing to detect.
    own = customer_id == caller.user_id
    if not own and (not caller.sees_whole_tenant or db.session.get(User, customer_id) is None):
        raise ApiError(404, "customer_not_found", "No such customer.")
    return Execution.caller_user_id == customer_id


def daily_totals(caller: Caller, dimension: str = "tenant", days: int = 30,
                 until: datetime | None = None, *, agent_id: uuid.UUID | None = None,
                 customer_id: uuid.UUID | None = None) -> list[DailyTotal]:
    """Totals per UTC day (and per ``dimension`` value) over the last ``days`` days.

    A USER only ever sees its own executions; a RESELLER its whole tenant. ``agent_id`` and
    ``customer_id`` narrow the totals to an agent or a customer the caller may see (else 404).
    """
    if dimension not in DIMENSIONS:
        raise ApiError(422, "invalid_dimension", f"Group by one of {', '.join(DIMENSIONS)}.")
    since, until = window(days, until)
    day = _day(Execution.created_at).label("day")
    column = DIMENSIONS[dimension]
    key = column.label("key") if column is not None else None
    columns = [day, *([key] if key is not None else []),
               func.count().label("n"), func.coalesce(func.sum(Execution.prompt_tokens), 0),
               func.coalesce(func.sum(Execution.completion_tokens), 0),
               func.coalesce(func.sum(Execution.cost_micros), 0)]
    stmt = select(*columns).where(Execution.created_at >= since, Execution.created_at <= until)
    if not caller.sees_whole_tenant:
        stmt = stmt.where(Execution.caller_user_id == caller.user_id)
    if agent_id is not None:
        stmt = stmt.where(Execution.agent_id == get_agent(caller, agent_id).id)
    if customer_id is not None:
        stmt = stmt.where(_customer_filter(caller, customer_id))
    groups = [day, *([key] if key is not None else [])]
    rows = db.session.execute(stmt.group_by(*groups).order_by(*groups)).all()
    totals = []
    for row in rows:
        value = row[0]
        when = value if isinstance(value, date) else date.fromisoformat(str(value))
        group = str(row[1]) if key is not None and row[1] is not None else None
        n, prompt, completion, cost = row[-4:]
        totals.append(DailyTotal(when, group, int(n), int(prompt), int(completion), int(cost)))
    return totals


def report(caller: Caller, dimension: str = "tenant", days: int = 30, *,
           agent_id: uuid.UUID | None = None,
           customer_id: uuid.UUID | None = None) -> dict[str, Any]:
    """The usage API's answer: the window, its rows per day, and the window's totals."""
    since, until = window(days)
    rows = daily_totals(caller, dimension, days, until, agent_id=agent_id,
                        customer_id=customer_id)
    items = [{**asdict(row), "total_tokens": row.prompt_tokens + row.completion_tokens}
             for row in rows]
    totals = {name: sum(item[name] for item in items) for name in (
        "executions", "prompt_tokens", "completion_tokens", "total_tokens", "cost_micros")}
    # Costs come from the price table, which is in US dollars (see config.py).
    return {"group_by": dimension, "days": days, "since": since.date(), "until": until.date(),
            "currency": "USD", "items": items, "totals": totals}
