"""Jobs: tenant context restored on a real worker, refused without one, retried when transient."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rq.job import Job

from app.extensions import db
from jobs.enqueue import enqueue
from jobs.queues import get_queue
from tenants import NoTenantError, activate
from tests.jobs_helpers import run_jobs

ROOT = Path(__file__).resolve().parent.parent


def _answers(jobs: list[Job]) -> list:
    return [Job.fetch(job.id, connection=job.connection, serializer=job.serializer)
            .return_value() for job in jobs]


@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "fork"])
def test_jobs_run_in_their_tenant_on_a_real_worker_process(app, acme, globex, test_environ,
                                                           settings, fork):
    with app.app_context():
        jobs = []
        for site in (acme, globex, acme, globex):  # alternating, in one worker process
            with activate(site.info):
                jobs.append(enqueue("diagnostics.whoami"))
        from app.redis import redis_url

        env = {**test_environ, "REDIS_URL": redis_url(settings)}
    # The real entry point, in its own process: jobs run in it one after another, or each
    # in a forked work horse with --fork.
    done = subprocess.run([sys.executable, "-m", "jobs.worker", "--burst", "-q", "default",
                           *(["--fork"] if fork else [])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with app.app_context():
        answers = _answers(jobs)
    assert [a["tenant_slug"] for a in answers] == ["acme", "globex", "acme", "globex"]
    pids = {a["pid"] for a in answers}
    assert os.getpid() not in pids
    assert len(pids) == (4 if fork else 1)


def test_a_job_cannot_leak_tenant_context_into_the_next_one(app, acme, globex, monkeypatch):
    """One worker process runs job after job: whatever context a job leaves set — a tenant, a
    cross-tenant opt-in — must not reach the next job, tenant-scoped or not."""
    from jobs import registry
    from tenants.context import cross_tenant, cross_tenant_reason, current_or_none, set_current

    forgotten = []

    def leak() -> str:
        set_current(acme.info)  # and never reset
        opt_in = cross_tenant("a job that forgets to leave")
        opt_in.__enter__()
        forgotten.append(opt_in)  # never exited (nor collected, which would exit it)
        return "leaked"

    def probe() -> dict:
        tenant = current_or_none()
        return {"tenant": tenant.slug if tenant else None, "cross": cross_tenant_reason()}

    for name, func, scoped in (("tests.leak", leak, False), ("tests.probe", probe, False),
                               ("tests.probe_in_tenant", probe, True)):
        monkeypatch.setitem(registry._TASKS, name, registry.Task(name, func, "default", scoped,
                                                                  ()))
    with app.app_context():
        jobs = [enqueue("tests.leak", tenant_id=None), enqueue("tests.probe", tenant_id=None)]
        with activate(globex.info):
            jobs.append(enqueue("tests.probe_in_tenant"))
            jobs.append(enqueue("diagnostics.whoami"))
        jobs.append(enqueue("tests.probe", tenant_id=None))
    run_jobs(app, "default")  # one real worker, in this very process
    with app.app_context():
        answers = _answers(jobs)
    assert answers[0] == "leaked"
    assert answers[1] == {"tenant": None, "cross": None}
    assert answers[2] == {"tenant": "globex", "cross": None}
    assert answers[3]["tenant_slug"] == "globex" and answers[3]["pid"] == os.getpid()
    assert answers[4] == {"tenant": None, "cross": None}
    for opt_in in forgotten:  # its context ended with its job: nothing is left to reset
        with contextlib.suppress(ValueError):
            opt_in.gen.close()


def test_a_tenant_scoped_job_without_a_tenant_is_refused(app, acme):
    with app.app_context():
        with pytest.raises(NoTenantError):
            enqueue("diagnostics.whoami")
        # Smuggled past enqueue(): the worker refuses it, and does not retry it.
        job = _enqueue_with_retries("diagnostics.whoami", None)
    run_jobs(app, "default")
    _assert_failed_without_retry(app, job, "tenant-scoped")


def _enqueue_with_retries(task_name: str, tenant_id: str | None) -> Job:
    """Smuggled past enqueue(), with retries, so a retry would show."""
    from rq import Retry

    return get_queue("default").enqueue("jobs.runner.run", args=(task_name, tenant_id, [], {}),
                                        retry=Retry(max=3, interval=[1]))


def _assert_failed_without_retry(app, job: Job, reason: str) -> None:
    with app.app_context():
        job.refresh()
        assert job.is_failed
        assert reason in job.latest_result().exc_string
        assert job.retries_left == 0


def test_job_arguments_must_be_json(app, acme):
    with app.app_context(), activate(acme.info), pytest.raises(TypeError, match="JSON"):
        enqueue("emails.deliver", object())


def test_an_email_lands_in_the_outbox_in_its_tenants_branding(app, acme, globex):
    from app.email.models import OutboundEmail
    from app.email.service import send_email

    ids = {}
    with app.app_context():
        for site in (acme, globex):
            with activate(site.info):
                email = send_email("alice@example.com", "welcome", {"name": "Alice"})
                db.session.commit()
                ids[site.info.slug] = email.id
    run_jobs(app, "emails")
    with app.app_context():
        with activate(acme.info):
            email = db.session.get(OutboundEmail, ids["acme"])
            assert email.status == "sent" and email.backend == "outbox"
            assert email.subject == "Welcome to Acme Agents"
            assert email.from_name == "Acme Agents"
            assert email.reply_to == "support@acme.example"
            assert "#e11d48" in email.html_body
            assert "http://acme.localhost:5000/login" in email.html_body
            assert "Albedo" not in email.html_body + email.text_body + email.subject
            # globex's email is invisible from acme, even by id.
            assert db.session.get(OutboundEmail, ids["globex"]) is None
        with activate(globex.info):
            email = db.session.get(OutboundEmail, ids["globex"])
            assert email.status == "sent" and "#2563eb" in email.html_body
            assert "http://globex.localhost:5000/login" in email.text_body


def test_an_email_enqueued_in_a_rolled_back_transaction_is_never_sent(app, acme):
    from app.email.service import send_email

    with app.app_context(), activate(acme.info):
        send_email("alice@example.com", "welcome", {})
        db.session.rollback()
        assert get_queue("emails").count == 0


def _register_probe(monkeypatch, name: str = "tests.tenant_name") -> str:
    from jobs import registry
    from tenants.context import current

    def probe() -> dict:
        tenant = current()
        return {"name": tenant.name, "status": tenant.status}

    monkeypatch.setitem(registry._TASKS, name, registry.Task(name, probe, "default", True, ()))
    return name


def test_a_job_runs_in_its_tenant_as_it_stands_when_the_job_runs(app, acme, monkeypatch):
    """Workers keep tenant snapshots between jobs (jobs.runner): a change committed after one
    job must reach the next job in the same worker process, not wait for a cache to age."""
    from tenants.models import Tenant
    from tenants.service import set_status

    probe = _register_probe(monkeypatch)
    with app.app_context(), activate(acme.info):
        first = enqueue(probe)
    run_jobs(app, "default")  # the worker's cache now holds acme
    with app.app_context():
        tenant = db.session.get(Tenant, acme.info.id)
        tenant.name = "Acme Renamed"
        set_status(tenant, "suspended")
        db.session.commit()
        with activate(acme.info):
            second = enqueue(probe)
    run_jobs(app, "default")  # the same process, the same app: the same cache
    with app.app_context():
        assert _answers([first, second]) == [{"name": "Acme Agents", "status": "active"},
                                              {"name": "Acme Renamed", "status": "suspended"}]


def test_a_job_whose_tenant_was_deleted_fails_at_once_without_retrying(app, acme, make_tenant,
                                                                       monkeypatch):

    from tenants.models import Tenant

    probe = _register_probe(monkeypatch)
    initech = make_tenant("initech")
    with app.app_context(), activate(initech.info):
        enqueue(probe)
    run_jobs(app, "default")  # the worker's cache now holds initech
    with app.app_context():
        job = _enqueue_with_retries(probe, str(initech.info.id))
        db.session.delete(db.session.get(Tenant, initech.info.id))
        db.session.commit()
    run_jobs(app, "default")
    _assert_failed_without_retry(app, job, "no longer exists")
