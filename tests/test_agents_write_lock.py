"""The pipeline's transactions read first and write last.

On SQLite (the quick start) a transaction's first write takes the database's one write lock
until its commit, and every other writer — each worker's claim, first token and outcome, each
start of an execution — sleeps in SQLite's busy handler meanwhile. Reads done after the first
write only stretch that; bench/execution_pipeline.py showed a burst of starts stalling the
runs in progress by tens of milliseconds. These tests pin the order of the statements.
"""

from __future__ import annotations

from contextlib import contextmanager

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
