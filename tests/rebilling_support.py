"""Helpers for the rebilling tests: price books, ledger sums, starting executions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from tenants.context import activate


def set_book(application, site, currency: str = "usd", usd_rate_ppm: int = 1_000_000,
             **price: Any) -> None:
    from app.billing import price_book

    with application.app_context(), activate(site.info):
        price_book.update_book(currency=currency, usd_rate_ppm=usd_rate_ppm)
        if price:
            price_book.set_price(**price)
        db.session.commit()


def ledger_sums(application, site) -> dict[str, int]:
    from app.billing.rebilling_models import LedgerEntry as E

    with application.app_context(), activate(site.info):
        row = db.session.execute(select(
            func.count(), func.coalesce(func.sum(E.prompt_tokens), 0),
            func.coalesce(func.sum(E.completion_tokens), 0),
            func.coalesce(func.sum(E.provider_cost_micro), 0),
            func.coalesce(func.sum(E.retail_micro), 0),
            func.coalesce(func.sum(E.wholesale_micro), 0))).one()
    return dict(zip(("entries", "prompt", "completion", "cost", "retail", "wholesale"),
                    (int(v) for v in row), strict=True))


def start(application, site, user_id, agent_id, text: str = "hi", role: str = "USER",
          **kwargs: Any):
    from app.agents import executions
    from app.agents.service import Caller, get_agent

    with application.app_context(), activate(site.info):
        caller = Caller(user_id, role)
        agent = get_agent(caller, agent_id)
        execution, _ = executions.start_execution(caller, agent, input=text, **kwargs)
        return execution.id
