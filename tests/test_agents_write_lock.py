"""The pipeline's transactions read first and write last.

On SQLite (the quick start) a transaction's first write takes the database's one write lock
until its commit, and every other writer — each worker's claim, first token and outcome, each
start of an execution — sleeps in SQLite's busy handler meanwhile. Reads done after the first
write only stretch that; bench/execution_pipeline.py showed a burst of starts stalling the
runs in progress by tens of milliseconds. These tests pin the order of the statements.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from app.agents import engine, executions
from app.agents.service import Caller, get_agent
from app.extensions import db
from tenants.context import activate
from tests.agents_support import fake, make_agent, make_agents_app  # noqa: F401  (fixtures)

WRITES = ("INSERT", "UPDATE", "DELETE")


@contextmanager
def _transactions():
    """Collects the statements sent to the database, one list per transaction."""
    done: list[list[str]] = [[]]

    def statement(conn, cursor, text, params, context, executemany):
        done[-1].append(text.lstrip().split(None, 1)[0].upper())

    def end(conn):
        done.append([])

    bind = db.engine
    listeners = [("before_cursor_execute", statement), ("commit", end), ("rollback", end)]
    for name, listener in listeners:
        event.listen(bind, name, listener)
    try:
        yield done
    finally:
        for name, listener in listeners:
            event.remove(bind, name, listener)


def _reads_after_a_write(transactions: list[list[str]]) -> list[list[str]]:
    late = []
    for statements in transactions:
        writes = [i for i, verb in enumerate(statements) if verb in WRITES]
        if writes and "SELECT" in statements[writes[0]:]:
            late.append(statements)
    return late


def test_starting_and_running_an_execution_never_reads_after_writing(make_agents_app, acme,
                                                                     make_user):
    application = make_agents_app()
    ann = make_user(acme, "ann@example.com")
    agent_id = make_agent(application, acme, ann)
    with application.app_context(), activate(acme.info):
        caller = Caller(ann, "USER")
        agent = get_agent(caller, agent_id)
        db.session.commit()
        with _transactions() as started:
            execution, _ = executions.start_execution(caller, agent, input="hello")
        execution_id = str(execution.id)
        db.session.remove()
        with _transactions() as ran:
            assert engine.run(execution_id) == {"status": "succeeded"}
    assert any(verb == "INSERT" for statements in started for verb in statements)
    # The run: the claim, the first token and the outcome (with its webhook event).
    assert sum(1 for statements in ran if any(verb in WRITES for verb in statements)) == 3
    assert _reads_after_a_write(started + ran) == []


def _run_one(application, site, user_id, agent_id, text: str = "hello"):
    """Start and run one execution; the statements of (start, run), one list per
    transaction."""
    with application.app_context(), activate(site.info):
        caller = Caller(user_id, "USER")
        agent = get_agent(caller, agent_id)
        db.session.commit()
        with _transactions() as started:
            execution, _ = executions.start_execution(caller, agent, input=text)
        execution_id = str(execution.id)
        db.session.remove()
        with _transactions() as ran:
            assert engine.run(execution_id) == {"status": "succeeded"}
        db.session.remove()
    return started, ran


@pytest.mark.parametrize("account", ["soft limit", "hard limit", "credits"])
def test_a_charge_with_a_limit_or_credits_reads_before_it_writes(make_agents_app, acme, globex,
                                                                 make_user, account):
    """The ledger's charge, its threshold notices (80 %, 100 %) and credits.low all read
    before the outcome's transaction writes, on their first run as on later ones."""
    from app.billing import credits
    from app.integrations.models import WebhookEndpoint, WebhookEvent
    from tests.rebilling_support import set_book

    application = make_agents_app()
    people = {}
    for site in (globex, acme):  # the other tenant has the same setup and is never touched
        ann = people[site.info.slug] = make_user(site, "ann@example.com")
        set_book(application, site, kind="execution", per_execution_minor=50)
        with application.app_context(), activate(site.info):
            settings = ({"credits_enabled": True, "auto_topup_below": 90}
                        if account == "credits" else
                        {"spending_limit": 100, "limit_mode": account.split()[0]})
            credits.update_settings(ann, settings)
            if account == "credits":
                credits.grant(ann, 100)
            # Someone is owed each notice, so announcing one reads who.
            db.session.add(WebhookEndpoint(url="https://hooks.example.com/a", event_types=[],
                                           created_by_user_id=ann, enabled=True,
                                           secret_encrypted="gAAAA-ciphertext"))
            db.session.commit()
    agent_id = make_agent(application, acme, people["acme"])
    transactions = []
    for _ in range(2):  # the first charge (50 %) announces nothing; the second all
        started, ran = _run_one(application, acme, people["acme"], agent_id)
        transactions += started + ran
    assert _reads_after_a_write(transactions) == []
    events = {}
    for site in (acme, globex):
        with application.app_context(), activate(site.info):
            events[site.info.slug] = sorted(e.type for e in db.session.scalars(
                db.select(WebhookEvent)) if e.type != "execution.succeeded")
    expected = {"soft limit": ["spending_limit.reached", "usage.threshold_reached",
                               "usage.threshold_reached"],
                "hard limit": ["spending_limit.reached", "usage.threshold_reached",
                               "usage.threshold_reached"],
                "credits": ["credits.low"]}[account]
    assert events == {"acme": expected, "globex": []}
