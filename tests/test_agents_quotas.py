"""Quotas are enforced atomically before enqueueing: at the boundary exactly the quota runs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select

from app import clock
from app.agents import executions
from app.agents.models import Execution
from app.agents.service import Caller, get_agent
from app.errors import ApiError
from app.extensions import db
from tenants.context import activate
from tests.agents_support import fake, make_agent, make_agents_app  # noqa: F401


def test_twenty_concurrent_requests_at_the_boundary_exactly_the_quota_succeeds(
        make_agents_app, acme, globex, make_user):
    application = make_agents_app(ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS="5")
    ann = make_user(acme, "ann@example.com")
    gus = make_user(globex, "ann@example.com")
    agent_id = make_agent(application, acme, ann)
    globex_agent = make_agent(application, globex, gus)
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def request() -> None:
        with application.app_context(), activate(acme.info):
            caller = Caller(ann, "USER")
            # All twenty start together; the pool (not the barrier) queues them for a connection.
            barrier.wait(30)
            try:
                agent = get_agent(caller, agent_id)
                executions.start_execution(caller, agent, input="hi")
                outcome = "ok"
            except ApiError as error:
                outcome = error.code
                assert error.details["limit"] == 5 and error.status == 429
            finally:
                db.session.remove()
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["ok"] * 5 + ["quota_exceeded"] * 15
    with application.app_context(), activate(acme.info):
        assert db.session.scalar(select(func.count()).select_from(Execution)) == 5
    # The other tenant's customer has its own untouched quota.
    with application.app_context(), activate(globex.info):
        caller = Caller(gus, "USER")
        executions.start_execution(caller, get_agent(caller, globex_agent), input="hi")
        db.session.commit()


def test_quota_error_names_the_limit_and_reset_and_api_key_quota_applies(
        make_agents_app, acme, make_user):
    import uuid

    application = make_agents_app(ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS="10",
                                  ALBEDO_API_KEY_MONTHLY_EXECUTIONS="1")
    clock.set_clock(lambda: datetime(2026, 12, 31, 23, 0, tzinfo=UTC))
    ann = make_user(acme, "ann@example.com")
    agent_id = make_agent(application, acme, ann)
    key = uuid.uuid4()
    with application.app_context(), activate(acme.info):
        caller = Caller(ann, "USER", api_key_id=key)
        agent = get_agent(caller, agent_id)
        executions.start_execution(caller, agent, input="one")
        try:
            executions.start_execution(caller, agent, input="two")
            raise AssertionError("the key's quota of 1 was not enforced")
        except ApiError as error:
            assert error.code == "quota_exceeded" and error.status == 429
            assert error.details["scope"] == "api_key" and error.details["limit"] == 1
            assert error.details["reset_at"] == "2027-01-01T00:00:00+00:00"
            assert error.headers["Retry-After"] == "3600"
        # The plan counter was rolled back with the refused request: only one counted.
        from app.agents.quotas import usage_of

        assert usage_of(ann)["used"] == 1
        # Another key of the same customer still runs (plan quota not exhausted).
        executions.start_execution(Caller(ann, "USER", api_key_id=uuid.uuid4()), agent,
                                   input="three")
        # A new month: counters restart.
        clock.set_clock(lambda: datetime(2027, 1, 1, 0, 1, tzinfo=UTC))
        executions.start_execution(caller, agent, input="four")
