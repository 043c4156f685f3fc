"""Helpers for the rebilling tests: price books, ledger sums, starting executions."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
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


def topped_up_customer(app, site, fake, make_user,
                       balance: int = 300) -> tuple[uuid.UUID, str, str]:
    """A customer with credits (``balance``), a saved card, and top-ups of 1000 below 250;
    each execution costs 100."""
    from tests.billing_support import connect

    account = connect(app, site, fake)
    set_book(app, site, kind="execution", per_execution_minor=100)
    user = make_user(site, "ann@example.com")
    card = fake._new_customer({"email": "ann@example.com"}, account)["id"]
    from app.billing import credits
    from app.billing.rebilling_models import CustomerAccount

    with app.app_context(), activate(site.info):
        credits.update_settings(user, {"credits_enabled": True, "auto_topup_below": 250,
                                       "auto_topup_amount": 1000})
        credits.grant(user, balance)
        db.session.scalars(select(CustomerAccount)).one().stripe_customer_id = card
        db.session.commit()
    return user, card, account


def charge_once(app, site, user: uuid.UUID, before_write=None) -> None:
    """One execution's charge (its book's price), as the ledger makes it when the execution
    ends; ``before_write`` runs once the charge has read the account, before it writes."""
    from app import clock
    from app.billing import ledger, spending

    with app.app_context(), activate(site.info):
        execution = SimpleNamespace(
            id=uuid.uuid4(), caller_user_id=user, prompt_tokens=5, completion_tokens=5,
            cost_micros=1, agent_id=uuid.uuid4(), model="m", version_number=1,
            finished_at=clock.now(), source="api", license_id=None, api_key_id=None,
            started_at=clock.now())
        spending.admit(spending.prepare(user, execution.agent_id, "m", "hi", "", 10),
                       execution.id)
        db.session.commit()
        write = ledger.on_execution_finished(execution, "succeeded")  # reads the account
        if before_write:
            before_write()
        write()
        db.session.commit()
