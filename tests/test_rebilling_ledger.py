"""The usage ledger: one immutable entry per charged execution, equal to the executions."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from app.agents import engine, executions
from app.agents.models import Execution
from app.agents.service import Caller
from app.billing import ledger, pricing
from app.billing.rebilling_models import LedgerEntry, LedgerImmutableError
from app.errors import ApiError
from app.extensions import db
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
    run_agents_worker,
)
from tests.fakes.openai_server import Step
from tests.rebilling_support import ledger_sums, set_book, start


@pytest.fixture
def customers(acme, globex, make_user):
    return make_user(acme, "ann@example.com"), make_user(globex, "ann@example.com")


def _cancel_after_tokens(application, site, user_id, execution_id, prompt, completion):
    """A running execution cancelled after the provider reported tokens: the engine's own
    finish() with the progress it had."""
    with application.app_context(), activate(site.info):
        execution = db.session.get(Execution, execution_id)
        assert engine.claim(execution)
        progress = engine.Progress(str(execution_id), time.monotonic() + 60,
                                   prompt_tokens=prompt, completion_tokens=completion)
        engine.finish(execution, "cancelled", code="cancelled", message="cancelled",
                      progress=progress)


def _executions_sums(application, site) -> dict[str, int]:
    with application.app_context(), activate(site.info):
        rows = db.session.scalars(select(Execution)).all()
        charged = [e for e in rows if ledger.is_charged(e.status, e.started_at is not None)]
        book = pricing.load_book()
        retail = 0
        for e in charged:
            usage = pricing.Usage(e.prompt_tokens, e.completion_tokens, e.cost_micros)
            rule = book.rule_for(e.agent_id, e.model)
            if e.status != "succeeded" and rule.kind == "execution":
                rule = pricing.Rule("execution")
            retail += pricing.charge_micro(rule, usage, book.currency, book.usd_rate_ppm)
        return {"entries": len(charged), "prompt": sum(e.prompt_tokens for e in charged),
                "completion": sum(e.completion_tokens for e in charged),
                "cost": sum(pricing.provider_cost_micro(e.cost_micros) for e in charged),
                "retail": retail, "statuses": sorted(e.status for e in rows)}


def test_ledger_equals_executions_after_retries_cancels_and_failures(
        make_agents_app, fake, acme, globex, platform, customers):
    application = make_agents_app()
    ann, gus = customers
    set_book(application, acme, "eur", 920_000, kind="tokens", input_per_million_minor=20,
             output_per_million_minor=80)
    set_book(application, globex, "jpy", 150_000_000, kind="markup", markup_bp=15_000)
    set_book(application, platform, "usd", kind="markup", markup_bp=12_000)
    acme_agent, globex_agent = make_agent(application, acme, ann), \
        make_agent(application, globex, gus)
    # In worker order: a run retried twice then answering, a run refused by the provider
    # (401: failed, not charged), and plain successes.
    fake.script = [Step(status=500), Step(status=429), Step(text="finally here"),
                   Step(status=401), Step(text="ok")]
    retried = start(application, acme, ann, acme_agent, "first")
    failed = start(application, acme, ann, acme_agent, "second")
    start(application, globex, gus, globex_agent, "third")
    start(application, acme, ann, acme_agent, "fourth")
    queued_cancel = start(application, acme, ann, acme_agent, "never runs")
    with application.app_context(), activate(acme.info):
        caller = Caller(ann, "USER")
        executions.cancel(caller, executions.get_execution(caller, queued_cancel))
    run_agents_worker(application)
    for site, user, agent in ((acme, ann, acme_agent), (globex, gus, globex_agent)):
        running = start(application, site, user, agent, "cancelled mid-run")
        _cancel_after_tokens(application, site, user, running, 40, 7)

    with application.app_context(), activate(acme.info):
        assert db.session.get(Execution, retried).attempts == 1
        assert db.session.get(Execution, retried).status == "succeeded"
        assert db.session.get(Execution, failed).status == "failed"
        assert not db.session.scalar(select(func.count()).select_from(LedgerEntry)
                                     .where(LedgerEntry.execution_id.in_(
                                         (failed, queued_cancel))))
    for site in (acme, globex):
        expected = _executions_sums(application, site)
        statuses = expected.pop("statuses")
        assert "cancelled" in statuses
        recorded = ledger_sums(application, site)
        recorded.pop("wholesale")
        assert recorded == expected
        assert expected["entries"] >= 2 and expected["retail"] > 0
    assert _executions_sums(application, acme)["statuses"].count("failed") == 1
    # Every entry carries the execution's tenant data, the credential and the currency.
    with application.app_context(), activate(globex.info):
        entries = db.session.scalars(select(LedgerEntry)).all()
        assert {e.currency for e in entries} == {"jpy"}
        assert {e.wholesale_currency for e in entries} == {"usd"}
        assert {e.customer_id for e in entries} == {gus}
        assert {e.credential_kind for e in entries} == {"session"}
        # Wholesale is the platform's markup on the provider's cost, in its currency.
        assert all(e.wholesale_micro == pricing.round_money(e.provider_cost_micro * 12 / 10)
                   for e in entries)


def test_a_repeated_outcome_writes_no_second_entry_and_entries_never_change(
        make_agents_app, fake, acme, customers):
    application = make_agents_app()
    ann, _ = customers
    agent = make_agent(application, acme, ann)
    execution_id = start(application, acme, ann, agent)
    run_agents_worker(application)
    with application.app_context(), activate(acme.info):
        execution = db.session.get(Execution, execution_id)
        ledger.on_execution_finished(execution, "succeeded")()
        db.session.commit()
        entry = db.session.scalars(select(LedgerEntry)).one()
        entry.retail_micro = 1
        with pytest.raises(LedgerImmutableError):
            db.session.flush()
        db.session.rollback()
        # The database refuses too, whoever writes.
        with pytest.raises(Exception, match="immutable"):
            db.session.execute(LedgerEntry.__table__.update().values(retail_micro=1))
        db.session.rollback()
        # And the unique index refuses a second charge for the execution.
        duplicate = LedgerEntry(**{c.key: getattr(entry, c.key)
                                   for c in LedgerEntry.__table__.columns if c.key != "id"})
        db.session.add(duplicate)
        with pytest.raises(Exception, match=r"(?i)unique"):
            db.session.flush()
        db.session.rollback()


def test_a_reversal_negates_the_charge_once_and_the_totals_net_to_zero(
        make_agents_app, fake, acme, globex, customers, api_caller):
    application = make_agents_app()
    ann, gus = customers
    set_book(application, acme, kind="execution", per_execution_minor=30)
    set_book(application, globex, kind="execution", per_execution_minor=30)
    agent = make_agent(application, acme, ann)
    start(application, acme, ann, agent)
    start(application, globex, gus, make_agent(application, globex, gus))
    run_agents_worker(application)
    with application.app_context(), activate(acme.info):
        charge = db.session.scalars(select(LedgerEntry)).one()
        charge_id = charge.id
    # Another tenant's staff cannot reverse it (nor tell it exists).
    other = api_caller(globex, role="RESELLER")
    answer = globex.client.post(f"/api/v1/billing/ledger/{charge_id}/reversal",
                                json={"reason": "refund"}, headers=other.headers)
    assert answer.status_code == 404
    staff = api_caller(acme, role="RESELLER")
    answer = acme.client.post(f"/api/v1/billing/ledger/{charge_id}/reversal",
                              json={"reason": "goodwill refund"}, headers=staff.headers)
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["kind"] == "reversal" and body["amount_micro"] == -30_000_000
    assert body["reverses_id"] == str(charge_id)
    again = acme.client.post(f"/api/v1/billing/ledger/{charge_id}/reversal",
                             json={"reason": "twice"}, headers=staff.headers)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_reversed"
    assert ledger_sums(application, acme)["retail"] == 0
    assert ledger_sums(application, acme)["entries"] == 2
    assert ledger_sums(application, globex)["retail"] == 30_000_000
    with application.app_context(), activate(acme.info):
        from app.billing.rebilling_models import SpendPeriod

        assert db.session.scalars(select(SpendPeriod.spent_micro)).one() == 0
        with pytest.raises(ApiError):
            ledger.reverse(body["id"], "a reversal is not reversible")
