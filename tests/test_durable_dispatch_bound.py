"""Re-dispatching is bounded: a unit whose RQ job keeps getting lost (Redis restarted empty
before any worker took it) is dispatched again by the recovery sweep at most
ALBEDO_MAX_DISPATCHES times in a row, then ends ``failed`` with ``dispatch_attempts_exhausted``,
releasing what it reserved and announcing the failure like any other. A worker's claim sets
the count back to 0. Two tenants: only the lost unit's tenant is touched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app import clock
from app.agents.models import Execution, QuotaCounter
from app.email.models import OutboundEmail
from app.extensions import db
from app.integrations.models import WebhookDelivery, WebhookEvent
from jobs.durable import EXHAUSTED, recover
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
    run_agents_worker,
)
from tests.conftest import host_client
from tests.jobs_helpers import run_jobs

LIMIT = 3
HOOK = "127.0.0.1:9"  # the webhook receivers: never reached, their jobs are all lost


def _later(seconds: float) -> None:
    moment = clock.now() + timedelta(seconds=seconds)
    clock.set_clock(lambda: moment)


def _lose_jobs_and_sweep(application, redis_client, times: int) -> list[dict]:
    """``times`` rounds of: Redis restarts empty, the grace passes, the sweep runs."""
    outcomes = []
    for _ in range(times):
        redis_client.flushdb()
        _later(31)
        with application.app_context():
            outcomes.append(recover())
    return outcomes


@pytest.fixture
def setup(make_agents_app, fake, acme, globex, api_caller):  # noqa: F811  (fixtures)
    application = make_agents_app(ALBEDO_SSRF_ALLOW=HOOK)
    settings = application.extensions["albedo.settings"]
    application.extensions["albedo.settings"] = settings.with_overrides(max_dispatches=LIMIT)
    ann = api_caller(acme, email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")  # a look-alike elsewhere
    agents = {}
    for site, caller in ((acme, ann), (globex, gus)):
        agents[site.info.slug] = host_client(application, site.host).post(
            "/api/v1/agents", headers=caller.headers,
            json={"name": "Helper", "slug": "helper", "version": VERSION}).get_json()
    return application, ann, gus, agents


def _run(application, site, caller, agent, text: str) -> str:
    answer = host_client(application, site.host).post(
        f"/api/v1/agents/{agent['id']}/executions", headers=caller.headers,
        json={"input": text})
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def _execution(application, site, execution_id) -> Execution:
    import uuid

    with application.app_context(), activate(site.info):
        row = db.session.get(Execution, uuid.UUID(execution_id))
        db.session.expunge(row)
        return row


def _quota_used(application, site) -> int:
    with application.app_context(), activate(site.info):
        return db.session.scalar(select(func.coalesce(func.sum(QuotaCounter.used), 0)))


def test_an_execution_whose_jobs_keep_getting_lost_ends_failed_and_gives_back_its_quota(
        setup, acme, globex, redis_client):
    from app.integrations.service import Actor, create_endpoint

    application, ann, _gus, agents = setup
    with application.app_context(), activate(acme.info):  # someone listens for failures
        create_endpoint(Actor(ann.user_id, "RESELLER"), f"http://{HOOK}/a",
                        ["execution.failed"])
        db.session.commit()
    lost = _run(application, acme, ann, agents["acme"], "never carried")
    assert _quota_used(application, acme) == 2  # the customer's and the API key's counters
    outcomes = _lose_jobs_and_sweep(application, redis_client, LIMIT)
    assert [o["executions"]["dispatched"] for o in outcomes] == [1] * LIMIT
    assert _execution(application, acme, lost).status == "queued"
    assert _execution(application, acme, lost).dispatches == LIMIT
    [last] = _lose_jobs_and_sweep(application, redis_client, 1)
    assert (last["executions"]["dispatched"], last["executions"]["exhausted"]) == (0, 1)
    row = _execution(application, acme, lost)
    assert (row.status, row.error_code, row.attempts) == ("failed", EXHAUSTED, 0)
    assert f"{LIMIT} times" in row.error_message and row.finished_at is not None
    assert _quota_used(application, acme) == 0  # it never ran: its quota is given back
    with application.app_context(), activate(acme.info):
        [event] = db.session.scalars(select(WebhookEvent).where(
            WebhookEvent.type == "execution.failed")).all()
        assert event.data["error"]["code"] == EXHAUSTED
        assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
    # A later sweep leaves the failed execution alone; the other tenant never noticed.
    [after] = _lose_jobs_and_sweep(application, redis_client, 1)
    assert (after["executions"]["dispatched"], after["executions"]["exhausted"]) == (0, 0)
    with application.app_context(), activate(globex.info):
        assert db.session.scalar(select(func.count()).select_from(Execution)) == 0
        assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


def test_a_workers_claim_sets_the_count_back(setup, acme, globex, redis_client):
    application, ann, gus, agents = setup
    mine = _run(application, acme, ann, agents["acme"], "lost twice, then run")
    theirs = _run(application, globex, gus, agents["globex"], "carried at once")
    run_agents_worker(application)  # globex's job runs, acme's is on the queue too
    # Two lost rounds for a new acme execution, then a worker takes it.
    again = _run(application, acme, ann, agents["acme"], "second")
    _lose_jobs_and_sweep(application, redis_client, LIMIT - 1)
    assert _execution(application, acme, again).dispatches == LIMIT - 1
    run_agents_worker(application)
    done = _execution(application, acme, again)
    assert (done.status, done.dispatches, done.attempts) == ("succeeded", 0, 1)
    assert _execution(application, acme, mine).status == "succeeded"
    assert _execution(application, globex, theirs).status == "succeeded"


def test_an_email_whose_jobs_keep_getting_lost_ends_failed_with_the_reason(
        setup, acme, globex, redis_client):
    from app.email.service import send_email

    application, *_ = setup
    ids = {}
    for site in (acme, globex):
        with application.app_context(), activate(site.info):
            ids[site.info.slug] = send_email("pat@example.com", "welcome", {"name": "Pat"}).id
            db.session.commit()
    run_jobs(application, "emails")  # globex's is sent (the outbox backend) ...
    with application.app_context(), activate(acme.info):  # ... acme's is queued again, lost
        db.session.get(OutboundEmail, ids["acme"]).status = "queued"
        db.session.get(OutboundEmail, ids["acme"]).attempts = 0
        db.session.commit()
    outcomes = _lose_jobs_and_sweep(application, redis_client, LIMIT + 1)
    assert [o["emails"]["dispatched"] for o in outcomes] == [1] * LIMIT + [0]
    assert outcomes[-1]["emails"]["failed"] == 1
    with application.app_context(), activate(acme.info):
        email = db.session.get(OutboundEmail, ids["acme"])
        assert email.status == "failed" and email.last_error.startswith(EXHAUSTED)
    with application.app_context(), activate(globex.info):
        assert db.session.get(OutboundEmail, ids["globex"]).status == "sent"


def test_a_webhook_delivery_whose_jobs_keep_getting_lost_ends_failed(
        setup, acme, globex, redis_client):
    from app.integrations import events
    from app.integrations.service import Actor, create_endpoint

    application, ann, gus, _agents = setup
    for site, caller in ((acme, ann), (globex, gus)):
        with application.app_context(), activate(site.info):
            create_endpoint(Actor(caller.user_id, "RESELLER"),
                            f"http://{HOOK}/{site.info.slug}", ["license.created"])
            events.emit("license.created", {"license_id": "l-1", "policy_id": "p-1",
                                            "key_prefix": "K", "status": "active"})
            db.session.commit()
    with application.app_context(), activate(globex.info):  # globex's is delivered meanwhile
        db.session.execute(update(WebhookDelivery).values(status="succeeded"))
        db.session.commit()
    outcomes = _lose_jobs_and_sweep(application, redis_client, LIMIT + 1)
    counts = [o["webhook_deliveries"] for o in outcomes]
    assert [c["dispatched"] for c in counts] == [1] * LIMIT + [0]
    assert counts[-1]["failed"] == 1
    with application.app_context(), activate(acme.info):
        delivery = db.session.scalars(select(WebhookDelivery)).one()
        assert delivery.status == "failed" and delivery.last_error.startswith(EXHAUSTED)
        assert delivery.attempt_count == 0  # nothing was ever sent
    with application.app_context(), activate(globex.info):
        assert db.session.scalars(select(WebhookDelivery)).one().status == "succeeded"


def test_a_delivery_whose_last_attempt_died_ends_failed_not_attempted_again(
        setup, acme, redis_client):
    from app.integrations import delivery as deliveries
    from app.integrations import events
    from app.integrations.service import Actor, create_endpoint

    application, ann, _gus, _agents = setup
    with application.app_context(), activate(acme.info):
        create_endpoint(Actor(ann.user_id, "RESELLER"), f"http://{HOOK}/a",
                        ["license.created"])
        events.emit("license.created", {"license_id": "l-1", "policy_id": "p-1",
                                        "key_prefix": "K", "status": "active"})
        db.session.commit()
        row = db.session.scalars(select(WebhookDelivery)).one()
        # Its last attempt was claimed and its worker died during the request.
        row.status, row.run_attempts = "sending", deliveries.MAX_ATTEMPTS
        row.attempt_count = deliveries.MAX_ATTEMPTS
        row.lease_until = clock.now() - timedelta(seconds=1)
        db.session.commit()
    with application.app_context():
        assert recover()["webhook_deliveries"]["failed"] == 1
    with application.app_context(), activate(acme.info):
        row = db.session.scalars(select(WebhookDelivery)).one()
        assert (row.status, row.attempt_count) == ("failed", deliveries.MAX_ATTEMPTS)
        assert "outcome is unknown" in row.last_error


def test_a_bulk_issue_whose_jobs_keep_getting_lost_ends_failed_and_frees_its_room(
        setup, acme, redis_client):
    from app.licensing import bulk, service
    from app.licensing.models import BulkIssue

    application, *_ = setup
    with application.app_context(), activate(acme.info):
        product = service.create_product("Pro", "agent-pro", entitlements=["chat"])
        policy = service.create_policy(product, service.PolicyInput(name="Standard"))
        bulk_id = bulk.start(policy, 300).id
        db.session.commit()
    outcomes = _lose_jobs_and_sweep(application, redis_client, LIMIT + 1)
    assert [o["bulk_issues"]["dispatched"] for o in outcomes] == [1] * LIMIT + [0]
    with application.app_context(), activate(acme.info):
        row = db.session.get(BulkIssue, bulk_id)
        assert (row.status, row.issued) == ("failed", 0)
        assert row.error.startswith(EXHAUSTED) and row.finished_at is not None
