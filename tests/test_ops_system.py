"""The platform operator's system page and GET /api/v1/platform/system: who may see it, what
it lists, and retry and discard of failed units (audited), across look-alike tenants."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.auth.models import AuditEvent
from app.email.models import OutboundEmail
from app.extensions import db
from tenants.context import activate, cross_tenant
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
)
from tests.conftest import login

SYSTEM = "/api/v1/platform/system"


def _failed_email(app, site, error: str = "SMTP said no") -> str:
    from app.email.service import send_email

    with app.app_context(), activate(site.info):
        email = send_email("ann@example.com", "account_exists", {"link": "https://x.example"})
        email.status, email.attempts, email.last_error = "failed", 5, error
        db.session.commit()
        return str(email.id)


def _audit(app, action: str) -> list[AuditEvent]:
    with app.app_context(), cross_tenant("the test reads every audit log"):
        return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


@pytest.fixture
def admin(platform, api_caller):
    return api_caller(platform, role="ADMIN")


def test_only_the_platform_operator_sees_it(app, platform, acme, admin, api_caller,
                                            make_user):
    reseller = api_caller(acme, role="RESELLER")
    assert acme.client.get(SYSTEM, headers=reseller.headers).status_code == 403
    assert acme.client.get(SYSTEM, headers=admin.headers).status_code == 401
    customer = api_caller(acme, role="USER")
    assert acme.client.get(SYSTEM, headers=customer.headers).status_code == 403
    assert platform.client.get(SYSTEM).status_code == 401
    assert platform.client.get(SYSTEM, headers=admin.headers).status_code == 200

    make_user(platform, "ops@example.com", role="ADMIN")
    make_user(acme, "owner@example.com", role="RESELLER")
    assert platform.client.get("/admin/system").status_code == 302  # to sign-in
    login(platform, "ops@example.com")
    page = platform.client.get("/admin/system")
    assert page.status_code == 200
    assert 'href="/admin/system"' in page.get_data(as_text=True)  # in the navigation
    login(acme, "owner@example.com")
    assert acme.client.get("/admin/system").status_code == 403
    assert 'href="/admin/system"' not in acme.client.get("/").get_data(as_text=True)


def test_lists_queues_workers_failed_units_errors_and_top_tenants(
        app, platform, acme, globex, admin, make_user, make_agents_app, fake):
    acme_email = _failed_email(app, acme, "auth failed for Bearer abcdefgh12345678")
    globex_email = _failed_email(app, globex)  # the look-alike: same recipient and template
    ann = make_user(acme, "ann@example.com")
    gus = make_user(globex, "ann@example.com")
    from app.agents import executions
    from app.agents.service import Caller, get_agent

    application = make_agents_app()  # its provider is the stand-in
    for site, user, runs in ((acme, ann, 2), (globex, gus, 1)):
        agent = make_agent(application, site, user)
        with application.app_context(), activate(site.info):
            caller = Caller(user, "USER")
            for n in range(runs):
                executions.start_execution(caller, get_agent(caller, agent), input=f"hi {n}")
    acme.client.get("/api/v1/no-such-thing")

    body = platform.client.get(SYSTEM, headers=admin.headers).get_json()
    queues = {q["name"]: q for q in body["queues"]}
    assert set(queues) == {"agents", "emails", "webhooks", "default"}
    assert queues["agents"]["depth"] == 3 and queues["agents"]["oldest_age_seconds"] >= 0
    assert body["workers"] == []
    emails = {u["id"]: u for u in body["failed_units"] if u["kind"] == "email"}
    assert emails[acme_email]["tenant"] == "acme"
    assert emails[globex_email]["tenant"] == "globex"
    assert "abcdefgh12345678" not in emails[acme_email]["error"]  # scrubbed
    assert {"code": "not_found", "count": 1} in body["recent_errors"]
    assert [(t["slug"], t["executions"]) for t in body["top_tenants"]] == [
        ("acme", 2), ("globex", 1)]


def test_retry_and_discard_a_failed_email_are_audited(app, platform, acme, globex, admin):
    acme_email = _failed_email(app, acme)
    globex_email = _failed_email(app, globex)
    retried = platform.client.post(f"{SYSTEM}/failed/email/{acme_email}/retry",
                                   headers=admin.headers)
    assert retried.status_code == 204, retried.get_json()
    with app.app_context(), activate(acme.info):
        assert db.session.get(OutboundEmail, uuid.UUID(acme_email)).status == "queued"
    from jobs.queues import get_queue

    with app.app_context():
        assert f"email-{acme_email}-retry-5" in get_queue("emails").get_job_ids()

    discarded = platform.client.post(f"{SYSTEM}/failed/email/{globex_email}/discard",
                                     headers=admin.headers)
    assert discarded.status_code == 204
    body = platform.client.get(SYSTEM, headers=admin.headers).get_json()
    listed = {u["id"] for u in body["failed_units"]}
    assert acme_email not in listed and globex_email not in listed
    with app.app_context(), activate(globex.info):
        # Discarding keeps the tenant's history: the row still says it failed.
        assert db.session.get(OutboundEmail, uuid.UUID(globex_email)).status == "failed"

    events = {(e.action, e.target_id): e for e in _audit(app, "failed_unit_retried")
              + _audit(app, "failed_unit_discarded")}
    retry_event = events[("failed_unit_retried", acme_email)]
    assert retry_event.tenant_id == platform.info.id
    assert retry_event.actor_user_id == admin.user_id
    assert retry_event.details["unit_tenant"] == "acme"
    assert events[("failed_unit_discarded", globex_email)].details["unit_tenant"] == "globex"

    # Neither reseller's own audit log shows the operator's action.
    for site in (acme, globex):
        with app.app_context(), activate(site.info):
            assert not db.session.scalars(select(AuditEvent).where(
                AuditEvent.action.in_(("failed_unit_retried", "failed_unit_discarded")))).all()

    # Unknown ids, kinds and a second retry of a unit that is no longer failed: 404s.
    for path in (f"failed/email/{uuid.uuid4()}/retry", "failed/email/not-a-uuid/retry",
                 f"failed/email/{acme_email}/retry", "failed/job/nope/discard"):
        answer = platform.client.post(f"{SYSTEM}/{path}", headers=admin.headers)
        assert answer.status_code == 404, path
        assert answer.get_json()["error"]["code"] == "not_found"
    assert platform.client.post(f"{SYSTEM}/failed/nothing/x/retry",
                                headers=admin.headers).status_code == 404


def test_retry_and_discard_failed_rq_jobs(app, platform, acme, admin):
    from rq.registry import FailedJobRegistry

    from jobs.enqueue import enqueue
    from jobs.queues import get_queue
    from tests.jobs_helpers import run_jobs

    with app.app_context(), activate(acme.info):
        first = enqueue("emails.deliver", str(uuid.uuid4())).id  # no such email: fails
        second = enqueue("emails.deliver", str(uuid.uuid4())).id
    run_jobs(app, "emails")
    body = platform.client.get(SYSTEM, headers=admin.headers).get_json()
    jobs = {u["id"]: u for u in body["failed_units"] if u["kind"] == "job"}
    assert set(jobs) == {first, second}
    assert jobs[first]["tenant"] == "acme" and jobs[first]["what"] == "emails: emails.deliver"
    assert "does not exist" in jobs[first]["error"]

    assert platform.client.post(f"{SYSTEM}/failed/job/{first}/retry",
                                headers=admin.headers).status_code == 204
    assert platform.client.post(f"{SYSTEM}/failed/job/{second}/discard",
                                headers=admin.headers).status_code == 204
    with app.app_context():
        queue = get_queue("emails")
        assert queue.get_job_ids() == [first]
        assert FailedJobRegistry(queue=queue).count == 0
    assert {e.target_id for e in _audit(app, "failed_unit_retried")} == {first}
    assert {e.target_id for e in _audit(app, "failed_unit_discarded")} == {second}


def test_the_page_acts_with_csrf(app, platform, acme, make_user):
    import re

    email_id = _failed_email(app, acme)
    make_user(platform, "ops@example.com", role="ADMIN")
    login(platform, "ops@example.com")
    page = platform.client.get("/admin/system").get_data(as_text=True)
    assert email_id in page
    action = f"/admin/system/failed/email/{email_id}/discard"
    assert action in page
    assert platform.client.post(action).status_code == 400  # no CSRF token
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    done = platform.client.post(action, data={"csrf_token": token})
    assert done.status_code == 302
    assert email_id not in platform.client.get("/admin/system").get_data(as_text=True)
