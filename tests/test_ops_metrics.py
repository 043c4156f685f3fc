"""/metrics: who may read it, what it exports, and that the series count what they name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from app.ops import metrics
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
    run_agents_worker,
)

TOKEN = "metrics-token-for-tests-0123456789"


def _with_token(application, token: str = TOKEN):
    settings = application.extensions["albedo.settings"]
    application.extensions["albedo.settings"] = settings.with_overrides(metrics_token=token)
    return application


def _value(name: str, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def _scrape(client, host: str = "localhost") -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                               "Host": host})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def test_metrics_are_not_served_without_the_token(app, acme):
    client = app.test_client()
    # Unset: not served at all, whatever the caller sends.
    assert client.get("/metrics", headers={"Host": "localhost"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code \
        == 404
    _with_token(app)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        answer = acme.client.get("/metrics", headers=headers)
        assert answer.status_code == 404
        # The same answer as a path that does not exist: a reseller's domain reveals nothing.
        missing = acme.client.get("/no-such-page", headers=headers)
        assert answer.get_data() == missing.get_data()
        assert answer.headers["Content-Type"] == missing.headers["Content-Type"]
    assert acme.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) \
        .status_code == 200


def test_scraped_by_address_on_any_host(app):
    _with_token(app)
    assert "albedo_queue_depth" in _scrape(app.test_client(), host="10.1.2.3:8000")


def test_http_series_use_route_templates_and_carry_no_tenant(app, acme, globex, api_caller):
    _with_token(app)
    caller = api_caller(acme, role="RESELLER")
    route = "/api/v1/users/<uuid:user_id>"
    ok = _value("albedo_http_requests_total", route=route, method="GET", status_class="2xx")
    refused = _value("albedo_http_requests_total", route=route, method="GET",
                     status_class="4xx")
    assert acme.client.get(f"/api/v1/users/{caller.user_id}",
                           headers=caller.headers).status_code == 200
    # Acme's key on globex's domain is unknown there: a 401, on the same route template.
    assert globex.client.get(f"/api/v1/users/{caller.user_id}",
                             headers=caller.headers).status_code == 401
    assert _value("albedo_http_requests_total", route=route, method="GET",
                  status_class="2xx") == ok + 1
    assert _value("albedo_http_requests_total", route=route, method="GET",
                  status_class="4xx") == refused + 1
    body = _scrape(acme.client)
    assert f'route="{route}"' in body
    assert "albedo_http_request_duration_seconds_bucket" in body
    for secret in (str(acme.info.id), str(globex.info.id), "acme", "globex",
                   str(caller.user_id), str(caller.key_id)):
        assert secret not in body, f"{secret} appears in /metrics"


def test_error_codes_and_rate_limit_refusals_are_counted(app, acme):
    from app.ops import recent_errors

    before = _value("albedo_api_errors_total", code="not_found", status_class="4xx")
    acme.client.get("/api/v1/no-such-thing")
    assert _value("albedo_api_errors_total", code="not_found", status_class="4xx") \
        == before + 1
    with app.app_context():
        assert recent_errors.by_code().get("not_found") == 1

    refused = _value("albedo_rate_limit_refusals_total", scope="auth")
    codes = [acme.client.post("/api/v1/auth/token",
                              json={"email": f"x{n}@example.com", "password": "wrong-password"}
                              ).get_json()["error"]["code"] for n in range(12)]
    assert codes.count("rate_limited") == 2, codes  # the sign-in budget is 10 a minute
    assert _value("albedo_rate_limit_refusals_total", scope="auth") == refused + 2


def test_email_outcomes_count_on_commit_only(app, acme):
    from app.email.models import OutboundEmail
    from app.email.service import send_email
    from app.extensions import db
    from tenants.context import activate

    sent = _value("albedo_emails_total", outcome="sent")
    with app.app_context(), activate(acme.info):
        email = send_email("ann@example.com", "account_exists", {"link": "https://x.example"})
        db.session.commit()
        email = db.session.get(OutboundEmail, email.id)
        email.attempts += 1
        email.status = "sent"
        db.session.flush()
        db.session.rollback()  # never happened: not counted
        assert _value("albedo_emails_total", outcome="sent") == sent
        email = db.session.get(OutboundEmail, email.id)
        email.attempts += 1
        db.session.flush()  # a first flush (the attempt), then the outcome
        email.status = "sent"
        db.session.commit()
    assert _value("albedo_emails_total", outcome="sent") == sent + 1


def test_executions_tokens_and_cost_by_model(make_agents_app, fake, acme, make_user):
    application = make_agents_app()
    user = make_user(acme, "ann@example.com")
    agent = make_agent(application, acme, user)
    succeeded = _value("albedo_executions_total", outcome="succeeded", model="gpt-4o-mini")
    tokens = _value("albedo_execution_tokens_total", model="gpt-4o-mini", kind="completion")
    runs = _value("albedo_execution_run_seconds_count", outcome="succeeded")
    waits = _value("albedo_execution_queue_wait_seconds_count")
    cost = _value("albedo_provider_cost_usd_total", model="gpt-4o-mini")
    from app.agents import executions
    from app.agents.service import Caller, get_agent
    from tenants.context import activate

    with application.app_context(), activate(acme.info):
        caller = Caller(user, "USER")
        executions.start_execution(caller, get_agent(caller, agent), input="hello")
    run_agents_worker(application)
    assert _value("albedo_executions_total", outcome="succeeded", model="gpt-4o-mini") \
        == succeeded + 1
    assert _value("albedo_execution_tokens_total", model="gpt-4o-mini", kind="completion") \
        > tokens
    assert _value("albedo_execution_run_seconds_count", outcome="succeeded") == runs + 1
    assert _value("albedo_execution_queue_wait_seconds_count") == waits + 1
    assert _value("albedo_provider_cost_usd_total", model="gpt-4o-mini") > cost


def test_unknown_models_and_codes_become_other(app):
    before = _value("albedo_license_validations_total", code="other")
    valid = _value("albedo_license_validations_total", code="VALID")
    metrics.record_license_validations(["VALID", "VALID", "made-up-code-123"])
    assert _value("albedo_license_validations_total", code="VALID") == valid + 2
    assert _value("albedo_license_validations_total", code="other") == before + 1
    from app.ops.observers import _model_label

    with app.app_context():
        assert _model_label("gpt-4o-mini") == "gpt-4o-mini"
        assert _model_label("a-reseller's-own-model-name") == "other"


def test_license_validations_are_counted_when_the_flush_runs(app, acme):
    from tests.jobs_helpers import run_jobs
    from tests.licensing_support import make_license, settle, validate

    license_ = make_license(app, acme)
    before = _value("albedo_license_validations_total", code="VALID")
    validate(acme, license_.key)
    validate(acme, license_.key)
    settle(app)
    assert _value("albedo_license_validations_total", code="VALID") == before  # not yet
    from app.licensing import tasks
    from tenants.context import activate

    with app.app_context(), activate(acme.info):
        tasks.flush_validations()
    assert _value("albedo_license_validations_total", code="VALID") == before + 2
    run_jobs(app, "default")


def test_queue_depth_oldest_age_and_workers(app, platform):
    from jobs.enqueue import enqueue
    from tenants.context import activate

    _with_token(app)
    with app.app_context(), activate(platform.info):
        enqueue("diagnostics.whoami")
    body = _scrape(platform.client)
    assert 'albedo_queue_depth{queue="default"} 1.0' in body
    assert 'albedo_queue_depth{queue="agents"} 0.0' in body
    assert 'albedo_queue_oldest_job_age_seconds{queue="default"}' in body
    assert "albedo_workers_alive 0.0" in body
    assert "albedo_db_connections_in_use" in body


CHILD = textwrap.dedent("""
    import sys
    from app import create_app
    from app.ops import metrics
    app = create_app()
    client = app.test_client()
    if sys.argv[1] == "web":  # a gunicorn worker: answers a request
        assert client.get("/healthz").status_code == 200
    elif sys.argv[1] == "worker":  # an RQ worker: records an outcome
        metrics.emails.labels("sent").inc()
    else:  # whichever process answers the scrape
        answer = client.get("/metrics", headers={"Authorization": "Bearer " + sys.argv[2],
                                                 "Host": "localhost"})
        assert answer.status_code == 200, answer.status_code
        sys.stdout.write(answer.get_data(as_text=True))
    """)


def test_multiprocess_mode_adds_up_every_process(test_environ, migrated, tmp_path):
    env = {**test_environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "ALBEDO_METRICS_TOKEN": TOKEN, "PYTHONPATH": os.getcwd()}

    def child(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", CHILD, *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    for kind in ("web", "web", "worker", "worker", "worker"):
        child(kind)
    body = child("scrape", TOKEN)
    assert ('albedo_http_requests_total{method="GET",route="/healthz",status_class="2xx"} 2.0'
            in body)
    assert 'albedo_emails_total{outcome="sent"} 3.0' in body


@pytest.mark.parametrize("value", ["short", ""])
def test_the_token_setting_is_validated(settings, value):
    from app.settings import SettingsError

    if value:
        with pytest.raises(SettingsError, match="ALBEDO_METRICS_TOKEN"):
            settings.with_overrides(metrics_token=value)
    else:
        assert settings.with_overrides(metrics_token=value).metrics_token == ""
