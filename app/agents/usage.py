"""Usage totals per day: tokens and cost from each execution's provider-reported usage.

Aggregated from the executions themselves (indexed by tenant and time), so the totals can
never disagree with the rows users inspect. Dimensions: the whole tenant, a customer, an API
key, a license, an agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from app import clock
from app.agents.models import Execution
from app.agents.service import Caller
from app.errors import ApiError
from app.extensions import db

DIMENSIONS = {
    "tenant": None,
    "customer": Execution.caller_user_id,
    "api_key": Execution.api_key_id,
    "license": Execution.license_id,
    "agent": Execution.agent_id,
}


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


def daily_totals(caller: Caller, dimension: str = "tenant", days: int = 30,
                 until: datetime | None = None) -> list[DailyTotal]:
    """Totals per UTC day (and per ``dimension`` value) over the last ``days`` days.

    A USER only ever sees its own executions; a RESELLER its whole tenant.
    """
    if dimension not in DIMENSIONS:
        raise ApiError(422, "invalid_dimension", f"Group by one of {', '.join(DIMENSIONS)}.")
    until = until or clock.now()
    since = (until - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
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
