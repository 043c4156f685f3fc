"""Accepting work while Redis is down, per endpoint (README, *Durable work*): either 202 (the
row is stored, the recovery sweep dispatches it once Redis answers) or a clean 503
``service_unavailable`` with nothing stored and nothing charged. (Executions' 202 is tested in
tests/test_durable_work.py; the kills and the real stopped server in tests/test_faults.py.)"""

from __future__ import annotations

import socket
import sys
from datetime import timedelta

import redis as redis_lib
from sqlalchemy import func, select

from app import clock
from app.agents.models import Execution, QuotaCounter
from app.extensions import db
from jobs.durable import recover
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
)
from tests.conftest import host_client
from tests.jobs_helpers import run_jobs


def _dead_redis() -> redis_lib.Redis:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return redis_lib.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)


def _redis_down(monkeypatch) -> None:
    """The job queue and the streams point at a port nobody listens on."""
    from jobs.queues import get_queue

    dead = _dead_redis()
    monkeypatch.setattr(sys.modules["jobs.enqueue"], "get_queue",
                        lambda name, connection=None: get_queue(name, dead))
    monkeypatch.setattr(sys.modules["app.agents.openai_compat"], "get_redis", lambda: dead)
    monkeypatch.setattr(sys.modules["app.agents.streaming"], "get_redis", lambda: dead)


def test_a_chat_completion_answers_503_and_stores_nothing_while_redis_is_down(
        make_agents_app, fake, acme, globex, api_caller, monkeypatch):  # noqa: F811
    application = make_agents_app()
    ann = api_caller(acme, email="ann@example.com")
    client = host_client(application, acme.host)
    assert client.post("/api/v1/agents", headers=ann.headers, json={
        "name": "Helper", "slug": "helper", "version": VERSION}).status_code == 201
    _redis_down(monkeypatch)
    answer = client.post("/api/v1/openai/chat/completions", headers=ann.headers, json={
        "model": "helper", "messages": [{"role": "user", "content": "hello"}]})
    assert answer.status_code == 503, answer.get_json()
    assert answer.get_json()["error"]["code"] == "service_unavailable"
    assert int(answer.headers["Retry-After"]) > 0
    with application.app_context(), activate(acme.info):
        assert db.session.scalar(select(func.count()).select_from(Execution)) == 0
        assert db.session.scalar(select(func.coalesce(func.sum(QuotaCounter.used), 0))) == 0


def test_a_bulk_issue_accepted_while_redis_is_down_is_stored_then_run(
        app, acme, globex, api_caller, monkeypatch):
    from app.licensing.models import BulkIssue, License

    rita = api_caller(acme, role="RESELLER")
    product = acme.client.post("/api/v1/products", headers=rita.headers, json={
        "name": "Pro", "code": "pro", "entitlements": ["chat"]}).get_json()
    policy = acme.client.post("/api/v1/policies", headers=rita.headers, json={
        "product_id": product["id"], "name": "Yearly", "duration_days": 365}).get_json()
    _redis_down(monkeypatch)
    answer = acme.client.post("/api/v1/licenses/bulk", headers=rita.headers,
                              json={"policy_id": policy["id"], "count": 5})
    assert answer.status_code == 202, answer.get_json()
    monkeypatch.undo()  # Redis is back; the job was never enqueued
    moment = clock.now() + timedelta(seconds=31)
    clock.set_clock(lambda: moment)
    with app.app_context():
        assert recover()["bulk_issues"]["dispatched"] == 1
    run_jobs(app, "default")
    with app.app_context(), activate(acme.info):
        row = db.session.scalars(select(BulkIssue)).one()
        assert (row.status, row.issued) == ("done", 5)
        assert db.session.scalar(select(func.count()).select_from(License)) == 5
    with app.app_context(), activate(globex.info):
        assert db.session.scalar(select(func.count()).select_from(BulkIssue)) == 0


def test_a_widget_chat_answers_503_and_stores_nothing_while_redis_is_down(
        make_agents_app, fake, acme, globex, api_caller, monkeypatch):  # noqa: F811
    from app.billing.rebilling_models import LedgerEntry
    from app.widget.models import WidgetExecution
    from tests.widget_support import ORIGIN, embed, make_widget, token_for

    application = make_agents_app()
    client = host_client(application, acme.host)
    ann = api_caller(acme, email="ann@example.com")
    api_caller(globex, email="ann@example.com")
    key = make_widget(client, ann.headers, monthly_cap=5)["key"]
    token = token_for(client, key).get_json()["token"]
    _redis_down(monkeypatch)
    monkeypatch.setattr(sys.modules["app.widget.api"], "get_redis", _dead_redis)
    answer = client.post(embed(key, "/chat"), json={"message": "hello"},
                         headers={"Authorization": f"Bearer {token}", "Origin": ORIGIN})
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["code"] == "service_unavailable"
    assert int(answer.headers["Retry-After"]) > 0
    for site in (acme, globex):
        with application.app_context(), activate(site.info):
            for model in (Execution, WidgetExecution, LedgerEntry):
                assert db.session.scalar(select(func.count()).select_from(model)) == 0
            assert db.session.scalar(select(func.coalesce(func.sum(QuotaCounter.used), 0))) == 0
