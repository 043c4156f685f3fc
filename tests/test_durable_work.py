"""Durable work without killing anything (the kills are in tests/test_faults.py): the row
decides, the recovery sweep re-dispatches lost work, Idempotency-Key, Message-IDs, the
scheduler lock of a dead worker."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
import redis as redis_lib
from sqlalchemy import func, select

from app import clock
from app.agents.models import Execution, QuotaCounter
from app.email.models import OutboundEmail
from app.extensions import db
from jobs.durable import recover
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
    run_agents_worker,
)
from tests.conftest import host_client
from tests.fakes.smtp_server import FakeSmtp
from tests.jobs_helpers import run_jobs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _later(seconds: float) -> None:
    """Move the app's clock forward (past a grace period or a lease)."""
    moment = clock.now() + timedelta(seconds=seconds)
    clock.set_clock(lambda: moment)


@pytest.fixture
def setup(make_agents_app, fake, acme, globex, api_caller):
    application = make_agents_app()
    ann = api_caller(acme, email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")  # a look-alike elsewhere
    client = host_client(application, acme.host)
    agent = client.post("/api/v1/agents", headers=ann.headers, json={
        "name": "Helper", "slug": "helper", "version": VERSION}).get_json()
    return application, client, ann, gus, agent


def _executions(application, site) -> list[Execution]:
    with application.app_context(), activate(site.info):
        rows = db.session.scalars(select(Execution).order_by(Execution.created_at)).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def _quota_used(application, site) -> int:
    with application.app_context(), activate(site.info):
        return db.session.scalar(select(func.coalesce(func.max(QuotaCounter.used), 0)))


# ---- Idempotency-Key -------------------------------------------------------------------------

def test_an_idempotency_key_replays_the_same_request_and_refuses_another(setup, acme, globex):
    application, client, ann, gus, agent = setup
    url = f"/api/v1/agents/{agent['id']}/executions"
    headers = {**ann.headers, "Idempotency-Key": "order-42"}
    first = client.post(url, headers=headers, json={"input": "hello"})
    again = client.post(url, headers=headers, json={"input": "hello"})
    assert first.status_code == 202 and again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    other = client.post(url, headers=headers, json={"input": "something else"})
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert len(_executions(application, acme)) == 1
    assert _quota_used(application, acme) == 1  # neither the replay nor the refusal counted
    # The same key is another caller's own (the look-alike in another tenant).
    globex_agent = host_client(application, globex.host).post(
        "/api/v1/agents", headers=gus.headers,
        json={"name": "Helper", "slug": "helper", "version": VERSION}).get_json()
    theirs = host_client(application, globex.host).post(
        f"/api/v1/agents/{globex_agent['id']}/executions",
        headers={**gus.headers, "Idempotency-Key": "order-42"}, json={"input": "other"})
    assert theirs.status_code == 202 and theirs.get_json()["id"] != first.get_json()["id"]


def test_an_idempotency_key_is_kept_24_hours(setup, acme):
    application, client, ann, _gus, agent = setup
    url = f"/api/v1/agents/{agent['id']}/executions"
    headers = {**ann.headers, "Idempotency-Key": "daily"}
    first = client.post(url, headers=headers, json={"input": "hello"}).get_json()
    _later(23 * 3600)
    assert client.post(url, headers=headers, json={"input": "hello"}).get_json()["id"] == (
        first["id"])
    _later(2 * 3600)  # 25 hours after the first
    fresh = client.post(url, headers=headers, json={"input": "another day"})
    assert fresh.status_code == 202 and fresh.get_json()["id"] != first["id"]
    # And the sweep forgets old keys by itself.
    _later(25 * 3600)
    with application.app_context():
        assert recover()["executions"]["keys_forgotten"] == 1
    assert {e.idempotency_key for e in _executions(application, acme)} == {None}


# ---- Redis down while accepting, Redis restarted empty -------------------------------------

def test_an_execution_accepted_while_redis_is_down_is_stored_then_dispatched(
        setup, acme, monkeypatch):
    """The enqueue points at a dead port: the answer is 202, the row is queued and charged,
    and the sweep dispatches it once Redis answers again."""
    import sys

    from jobs.queues import get_queue

    application, client, ann, _gus, agent = setup
    dead = redis_lib.Redis(host="127.0.0.1", port=_free_port(), socket_connect_timeout=0.5)
    monkeypatch.setattr(sys.modules["jobs.enqueue"], "get_queue",
                        lambda name, connection=None: get_queue(name, dead))
    response = client.post(f"/api/v1/agents/{agent['id']}/executions", headers=ann.headers,
                           json={"input": "while Redis sleeps"})
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "queued"
    monkeypatch.undo()  # Redis is back
    run_agents_worker(application)  # nothing on the queue: it was never enqueued
    assert _executions(application, acme)[0].status == "queued"
    with application.app_context():
        assert recover()["executions"]["dispatched"] == 0  # still within the grace period
        _later(31)
        assert recover()["executions"]["dispatched"] == 1
        assert recover()["executions"]["dispatched"] == 0  # its job is live now
    run_agents_worker(application)
    [done] = _executions(application, acme)
    assert (done.status, done.output, done.attempts) == ("succeeded",
                                                         "Echo: while Redis sleeps", 1)
    assert _quota_used(application, acme) == 1


def test_redis_needed_before_the_commit_answers_a_clean_503(app, acme):
    from app.errors import handle_unexpected

    with app.test_request_context("/api/v1/anything", headers={"Host": acme.host}):
        response = handle_unexpected(redis_lib.ConnectionError("Connection refused"))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "service_unavailable"


def test_work_queued_when_redis_restarts_empty_is_dispatched_again(setup, acme, redis_client):
    from app.email.service import send_email

    application, client, ann, _gus, agent = setup
    client.post(f"/api/v1/agents/{agent['id']}/executions", headers=ann.headers,
                json={"input": "lost"})
    with application.app_context(), activate(acme.info):
        email_id = send_email("pat@example.com", "welcome", {"name": "Pat"}).id
        db.session.commit()
    redis_client.flushdb()  # a restart without persistence
    with application.app_context():
        _later(31)
        outcome = recover()
    assert outcome["executions"]["dispatched"] == 1
    assert outcome["emails"]["dispatched"] == 1
    run_jobs(application, "agents", "emails")
    assert _executions(application, acme)[0].status == "succeeded"
    with application.app_context(), activate(acme.info):
        assert db.session.get(OutboundEmail, email_id).status == "sent"


# ---- Emails: claimed before the send, one Message-ID for every attempt ---------------------

@pytest.fixture
def smtp():
    server = FakeSmtp()
    yield server
    server.close()


def test_every_attempt_of_an_email_carries_the_same_message_id(migrated, app, acme, globex,
                                                                smtp):
    from app import create_app
    from app.email.service import send_email

    application = create_app(migrated.with_overrides(email_backend="smtp",
                                                     smtp_host="127.0.0.1", smtp_port=smtp.port))
    ids = {}
    for site in (acme, globex):
        with application.app_context(), activate(site.info):
            ids[site.info.slug] = send_email("pat@example.com", "welcome", {"name": "Pat"}).id
            db.session.commit()
    smtp.reject_with = 451  # transient: both are retried
    run_jobs(application, "emails")
    smtp.reject_with = None
    with application.app_context():
        _later(11)
        assert recover()["emails"]["dispatched"] == 2  # the retry is on the row, due now
    run_jobs(application, "emails")
    message_ids = sorted(m["Message-ID"] for m in smtp.messages)
    assert message_ids == sorted([f"<{ids['acme']}@{acme.host.split(':')[0]}>",
                                  f"<{ids['globex']}@{globex.host.split(':')[0]}>"])
    with application.app_context(), activate(acme.info):
        email = db.session.get(OutboundEmail, ids["acme"])
        assert (email.status, email.attempts) == ("sent", 2)
        # A second delivery of a finished email sends nothing.
        from app.email.tasks import deliver

        assert deliver(str(email.id))["status"] == "sent"
    assert len(smtp.messages) == 2


def test_an_email_fails_with_its_reason_after_its_attempts(migrated, app, acme, smtp):
    from app import create_app
    from app.email.service import send_email
    from app.email.tasks import MAX_ATTEMPTS

    application = create_app(migrated.with_overrides(email_backend="smtp",
                                                     smtp_host="127.0.0.1", smtp_port=smtp.port))
    with application.app_context(), activate(acme.info):
        email_id = send_email("pat@example.com", "welcome", {"name": "Pat"}).id
        db.session.commit()
    smtp.reject_with = 451
    run_jobs(application, "emails")
    for _ in range(MAX_ATTEMPTS - 1):
        with application.app_context():
            _later(3601)
            recover()
        run_jobs(application, "emails")
    with application.app_context(), activate(acme.info):
        email = db.session.get(OutboundEmail, email_id)
        assert (email.status, email.attempts) == ("failed", MAX_ATTEMPTS)
        assert "451" in email.last_error and "gave up" in email.last_error
    with application.app_context():
        _later(3601)
        assert recover()["emails"] == {"dispatched": 0, "failed": 0, "skipped": 0}


# ---- Bulk issues: one run at a time -------------------------------------------------------

def test_a_second_run_of_a_bulk_issue_does_nothing_while_the_first_holds_it(app, acme):
    from app.licensing import bulk, service
    from app.licensing.models import BulkIssue, License

    with app.app_context(), activate(acme.info):
        product = service.create_product("Pro", "agent-pro", entitlements=["chat"])
        policy = service.create_policy(product, service.PolicyInput(name="Standard"))
        row = bulk.start(policy, 300)
        db.session.commit()
        bulk_id = row.id
        assert bulk.claim(bulk_id) == 1  # a first run holds it (its worker is busy)
        assert bulk.run(bulk_id).status == "running"  # a duplicate delivery: nothing
        assert db.session.scalar(select(func.count()).select_from(License)) == 0
        _later(400)  # the first run's lease passed: its worker is presumed dead
        done = bulk.run(bulk_id)
        assert (done.status, done.issued, done.attempts) == ("done", 300, 2)
        assert db.session.scalar(select(func.count()).select_from(License)) == 300
        assert db.session.get(BulkIssue, bulk_id).lease_until is None


# ---- The scheduler lock of a dead worker ----------------------------------------------------

def test_a_dead_schedulers_lock_is_taken_over_at_the_next_tick(app, redis_client):
    from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
    from rq.utils import now, utcformat

    from jobs.periodic import keep_scheduler
    from jobs.queues import get_queue

    with app.app_context():
        queue = get_queue("emails")
        dead = "scheduler-of-a-killed-worker"
        lock = RQScheduler.get_locking_key(queue.name)
        redis_client.set(lock, dead, ex=61)  # RQ's TTL: it would block others for a minute
        redis_client.hset(SCHEDULER_KEY_TEMPLATE % dead, mapping={
            "name": dead, "hostname": socket.gethostname(), "pid": str(2 ** 22 + 12345),
            "queues": queue.name, "created_at": utcformat(now()),
            "last_heartbeat": utcformat(now())})

        class Worker:
            scheduler = RQScheduler([queue], connection=queue.connection)

        job = queue.enqueue_in(timedelta(seconds=0), "jobs.runner.run",
                               args=("diagnostics.whoami", None, [], {}))
        assert keep_scheduler(Worker) is True
        assert redis_client.get(lock).decode() == Worker.scheduler.name
        assert job.id in queue.get_job_ids()  # the due delayed job was moved onto its queue
        # A live holder keeps its lock: a second worker does not take it.

        class Other:
            scheduler = RQScheduler([queue], connection=queue.connection)

        assert keep_scheduler(Other) is False
        assert redis_client.get(lock).decode() == Worker.scheduler.name


def test_the_recovery_sweep_runs_every_feature_even_when_one_fails(app, monkeypatch):
    import jobs.durable

    def broken(sweep):
        raise RuntimeError("a feature's recovery is broken")

    monkeypatch.setitem(jobs.durable._RECOVERERS, "broken", broken)
    with app.app_context():
        outcome = recover()
    assert outcome["broken"] == {"error": 1}
    assert {"executions", "emails", "bulk_issues", "webhook_deliveries"} <= set(outcome)


def test_the_execution_stream_answers_503_while_redis_is_down(setup, monkeypatch):
    import app.agents.streaming as streaming

    _application, client, ann, _gus, agent = setup
    started = client.post(f"/api/v1/agents/{agent['id']}/executions", headers=ann.headers,
                          json={"input": "hello"}).get_json()
    dead = redis_lib.Redis(host="127.0.0.1", port=_free_port(), socket_connect_timeout=0.5)
    monkeypatch.setattr(streaming, "get_redis", lambda: dead)
    response = client.get(f"/api/v1/executions/{started['id']}/stream", headers=ann.headers)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0
