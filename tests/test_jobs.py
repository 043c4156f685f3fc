"""Jobs: tenant context restored on a real worker, refused without one, retried when transient."""

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


def test_jobs_run_in_their_tenant_on_a_real_worker_process(app, acme, globex, test_environ,
                                                           settings):
    with app.app_context():
        with activate(acme.info):
            acme_job = enqueue("diagnostics.whoami")
        with activate(globex.info):
            globex_job = enqueue("diagnostics.whoami")
        from app.redis import redis_url

        env = {**test_environ, "REDIS_URL": redis_url(settings)}
    # The real entry point, in its own process, forking a work horse per job.
    done = subprocess.run([sys.executable, "-m", "jobs.worker", "--burst", "-q", "default"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with app.app_context():
        acme_job = Job.fetch(acme_job.id, connection=acme_job.connection,
                             serializer=acme_job.serializer)
        globex_job = Job.fetch(globex_job.id, connection=globex_job.connection,
                               serializer=globex_job.serializer)
        assert acme_job.return_value()["tenant_slug"] == "acme"
        assert globex_job.return_value()["tenant_slug"] == "globex"
        assert acme_job.return_value()["pid"] != os.getpid()


def test_a_tenant_scoped_job_without_a_tenant_is_refused(app, acme):
    with app.app_context():
        with pytest.raises(NoTenantError):
            enqueue("diagnostics.whoami")
        # Smuggled past enqueue(): the worker refuses it, and does not retry it.
        from rq import Retry

        job = get_queue("default").enqueue("jobs.runner.run",
                                           args=("diagnostics.whoami", None, [], {}),
                                           retry=Retry(max=3, interval=[1]))
    run_jobs(app, "default")
    with app.app_context():
        job.refresh()
        assert job.is_failed
        assert "tenant-scoped" in job.latest_result().exc_string
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
