"""Spending limits and prepaid credits at the boundary, under concurrency.

On PostgreSQL (DATABASE_URL set) the starts really race; on SQLite they serialise on the
database's write lock, and the same assertions hold.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from app.billing import credits
from app.billing.rebilling_models import CustomerAccount, LedgerEntry, SpendPeriod
from app.errors import ApiError
from app.extensions import db
from app.integrations.models import WebhookEvent
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
    run_agents_worker,
)
from tests.rebilling_support import ledger_sums, set_book, start

RACERS = 50


@pytest.fixture
def customers(acme, globex, make_user):
    return make_user(acme, "ann@example.com"), make_user(globex, "ann@example.com")


def _race(application, site, user_id, agent_id, n: int = RACERS) -> dict[str, int]:
    """``n`` starts at once; how many started and how each refusal was coded."""
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        with application.app_context(), activate(site.info):
            barrier.wait()
            try:
                start(application, site, user_id, agent_id, f"run {index}")
                result = "started"
            except ApiError as error:
                result = error.code
            except Exception as error:
                result = f"crash: {error!r}"
            finally:
                db.session.remove()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _settings(application, site, user_id, **changes):
    with application.app_context(), activate(site.info):
        answer = credits.update_settings(user_id, changes)
        db.session.commit()
        return answer


def _grant(application, site, user_id, amount):
    with application.app_context(), activate(site.info):
        credits.grant(user_id, amount)
        db.session.commit()


def _account(application, site, user_id) -> CustomerAccount:
    with application.app_context(), activate(site.info):
        account = db.session.scalars(select(CustomerAccount)
                                     .where(CustomerAccount.user_id == user_id)).one()
        db.session.expunge(account)
        return account


def test_credits_for_ten_runs_start_exactly_ten_of_fifty_and_never_go_negative(
        make_agents_app, fake, acme, globex, customers):
    application = make_agents_app(ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS="1000")
    ann, gus = customers
    for site, user in ((acme, ann), (globex, gus)):
        set_book(application, site, kind="execution", per_execution_minor=100)
        _settings(application, site, user, credits_enabled=True)
        _grant(application, site, user, 1000)
    agent = make_agent(application, acme, ann)

    counts = _race(application, acme, ann, agent)
    assert counts == {"started": 10, "insufficient_credits": RACERS - 10}, counts
    held = _account(application, acme, ann)
    assert (held.credit_balance_micro, held.credit_held_micro) == (0, 1000 * 10**6)
    run_agents_worker(application)
    settled = _account(application, acme, ann)
    assert (settled.credit_balance_micro, settled.credit_held_micro) == (0, 0)
    assert ledger_sums(application, acme)["entries"] == 10
    with application.app_context(), activate(acme.info):
        assert sum(db.session.scalars(select(LedgerEntry.credits_micro))) == 1000 * 10**6
        assert sum(db.session.scalars(select(LedgerEntry.billable_micro))) == 0
    # The look-alike customer of the other tenant kept every credit.
    other = _account(application, globex, gus)
    assert (other.credit_balance_micro, other.credit_held_micro) == (1000 * 10**6, 0)
    with pytest.raises(ApiError) as refused:
        start(application, acme, ann, agent)
    assert refused.value.status == 402 and refused.value.details["currency"] == "usd"


def test_a_hard_limit_admits_exactly_what_fits_and_then_refuses_with_402(
        make_agents_app, fake, acme, globex, customers, api_caller):
    application = make_agents_app(ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS="1000")
    ann, gus = customers
    for site, user in ((acme, ann), (globex, gus)):
        set_book(application, site, kind="execution", per_execution_minor=100)
        _settings(application, site, user, spending_limit=1000, limit_mode="hard")
    agent = make_agent(application, acme, ann)

    counts = _race(application, acme, ann, agent)
    assert counts == {"started": 10, "spending_limit_reached": RACERS - 10}, counts
    run_agents_worker(application)
    with application.app_context(), activate(acme.info):
        period = db.session.scalars(select(SpendPeriod)).one()
        assert (period.spent_micro, period.held_micro) == (1000 * 10**6, 0)
    with pytest.raises(ApiError) as refused:
        start(application, acme, ann, agent)
    assert refused.value.status == 402
    assert refused.value.details | {"period": None} == {
        "limit": 1000, "used": 1000, "requested": 100, "currency": "usd", "period": None,
        "mode": "hard"}
    # Through the API: the error envelope, with the same details.
    from tests.conftest import host_client

    key = api_caller(acme, email="ann@example.com")
    answer = host_client(application, acme.host).post(
        f"/api/v1/agents/{agent}/executions", json={"input": "hi"}, headers=key.headers)
    assert answer.status_code == 402
    assert answer.get_json()["error"]["code"] == "spending_limit_reached"
    # Globex's look-alike customer has spent nothing and runs.
    start(application, globex, gus, make_agent(application, globex, gus))
    # The 100 % announcement went out once, to Acme only.
    with application.app_context(), activate(acme.info):
        kinds = sorted(db.session.scalars(select(WebhookEvent.type)))
    assert kinds.count("spending_limit.reached") == 1
    assert kinds.count("usage.threshold_reached") == 2  # 80 % and 100 %
    with application.app_context(), activate(globex.info):
        assert not db.session.scalars(select(WebhookEvent.type)
                                      .where(WebhookEvent.type.like("%spending%"))).all()


def test_a_soft_limit_announces_80_and_100_percent_once_and_carries_on(
        make_agents_app, fake, acme, customers):
    application = make_agents_app(ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS="1000")
    ann, _ = customers
    set_book(application, acme, kind="execution", per_execution_minor=100)
    _settings(application, acme, ann, spending_limit=500, limit_mode="soft")
    agent = make_agent(application, acme, ann)
    for index in range(8):  # 800: past the limit, and nothing refused
        start(application, acme, ann, agent, f"run {index}")
    run_agents_worker(application)
    assert ledger_sums(application, acme)["entries"] == 8
    with application.app_context(), activate(acme.info):
        events = db.session.scalars(select(WebhookEvent).order_by(WebhookEvent.created_at)
                                    ).all()
        thresholds = [e.data["threshold"] for e in events
                      if e.type == "usage.threshold_reached"]
        assert thresholds == [80, 100]
        assert [e.data["spent"] for e in events if e.type == "spending_limit.reached"] == [500]


def test_concurrent_charges_announce_each_threshold_once(app, acme, globex, make_user):
    """Twenty charges settling at once past 80 % and 100 %: each announced exactly once."""
    import uuid
    from types import SimpleNamespace

    from app import clock
    from app.billing import ledger

    ann = make_user(acme, "ann@example.com")
    set_book(app, acme, kind="execution", per_execution_minor=100)
    _settings(app, acme, ann, spending_limit=1000, limit_mode="soft")
    barrier = threading.Barrier(20)
    errors: list[str] = []

    def settle() -> None:
        execution = SimpleNamespace(
            id=uuid.uuid4(), caller_user_id=ann, prompt_tokens=1, completion_tokens=1,
            cost_micros=1, agent_id=uuid.uuid4(), model="m", version_number=1,
            finished_at=clock.now(), source="api", license_id=None, api_key_id=None,
            started_at=clock.now())
        with app.app_context(), activate(acme.info):
            barrier.wait()
            try:
                for _attempt in range(50):  # SQLite may report a busy database: try again
                    try:
                        ledger.on_execution_finished(execution, "succeeded")()
                        db.session.commit()
                        return
                    except Exception as error:
                        db.session.rollback()
                        if "locked" not in str(error):
                            errors.append(repr(error))
                            return
            finally:
                db.session.remove()

    threads = [threading.Thread(target=settle) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert ledger_sums(app, acme)["entries"] == 20
    with app.app_context(), activate(acme.info):
        events = db.session.scalars(select(WebhookEvent)).all()
        assert sorted(e.data["threshold"] for e in events
                      if e.type == "usage.threshold_reached") == [80, 100]
        assert len([e for e in events if e.type == "spending_limit.reached"]) == 1
        assert db.session.scalars(select(SpendPeriod.spent_micro)).one() == 2000 * 10**6
