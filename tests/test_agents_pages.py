"""The agents pages: list, editor with publish and roll back, sandbox run, history, usage."""

from __future__ import annotations

import re

from app.agents.service import Caller
from app.agents.usage import daily_totals
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
    run_agents_worker,
)
from tests.conftest import host_client


def _signed_in(application, site, email):
    client = host_client(application, site.host)
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"email": email, "password": "correct horse battery",
                                         "csrf_token": token})
    assert answer.status_code == 302
    return client, token


def _csrf(client, path):
    return re.search(r'name="csrf_token" value="([^"]+)"',
                     client.get(path).get_data(as_text=True)).group(1)


def test_customer_builds_runs_and_sees_history_and_usage(make_agents_app, acme, globex,
                                                         make_user):
    application = make_agents_app()
    ann = make_user(acme, "ann@example.com")
    gus = make_user(globex, "ann@example.com")
    make_agent(application, globex, gus, slug="globex-secret")
    client, _ = _signed_in(application, acme, "ann@example.com")
    token = _csrf(client, "/agents")
    created = client.post("/agents", data={"name": "Helper", "model": "gpt-4o-mini",
                                           "system_prompt": "Hi", "variables": "[]",
                                           "csrf_token": token})
    assert created.status_code == 302
    editor_url = created.headers["Location"]
    listing = client.get("/agents").get_data(as_text=True)
    assert "Helper" in listing and "globex-secret" not in listing
    agent_id = editor_url.rstrip("/").rsplit("/", 1)[-1]
    token = _csrf(client, editor_url)
    client.post(f"/agents/{agent_id}/versions", data={
        "model": "gpt-4o", "system_prompt": "v2", "variables": "[]", "tools": "[]",
        "csrf_token": token})
    client.post(f"/agents/{agent_id}/publish", data={"version": "2", "csrf_token": token})
    page = client.get(editor_url).get_data(as_text=True)
    assert "Roll back to this" in page and "<strong>live</strong>" in page
    # The sandbox's JSON call needs the CSRF header, like a form.
    refused = client.post(f"/agents/{agent_id}/sandbox", json={"input": "hi"})
    assert refused.status_code == 400
    started = client.post(f"/agents/{agent_id}/sandbox", json={"input": "hi there"},
                          headers={"X-CSRFToken": token})
    assert started.status_code == 202
    run_agents_worker(application)
    events = client.get(started.get_json()["events_url"]).get_data(as_text=True)
    assert "event: token" in events and '"status": "succeeded"' in events
    history = client.get("/agents/executions").get_data(as_text=True)
    assert "succeeded" in history and "Helper v2" in history
    usage = client.get("/agents/usage").get_data(as_text=True)
    assert "This month: 1 of 100" in usage
    with application.app_context(), activate(acme.info):
        totals = daily_totals(Caller(ann, "USER"))
        assert [t.executions for t in totals] == [1] and totals[0].completion_tokens == 3
    with application.app_context(), activate(globex.info):
        assert daily_totals(Caller(gus, "USER")) == []
    # Globex's signed-in customer cannot open Acme's agent.
    other, _ = _signed_in(application, globex, "ann@example.com")
    assert other.get(editor_url).status_code == 404


def test_reseller_sees_usage_per_customer(make_agents_app, fake, acme, make_user):
    application = make_agents_app()
    reseller = make_user(acme, "owner@acme.example", role="RESELLER")
    ann = make_user(acme, "ann@example.com")
    template = make_agent(application, acme, reseller, role="RESELLER", slug="tpl")
    from app.agents import executions
    from app.agents.service import get_agent

    with application.app_context(), activate(acme.info):
        caller = Caller(ann, "USER")
        executions.start_execution(caller, get_agent(caller, template), input="hello")
    run_agents_worker(application)
    client, _ = _signed_in(application, acme, "owner@acme.example")
    page = client.get("/agents/usage").get_data(as_text=True)
    assert "Per customer" in page and "ann@example.com" in page
    assert "(template)" in client.get("/agents").get_data(as_text=True)
    with application.app_context(), activate(acme.info):
        per_customer = daily_totals(Caller(reseller, "RESELLER"), "customer")
        assert [(t.key, t.executions) for t in per_customer] == [(str(ann), 1)]


def test_a_refused_version_keeps_what_was_typed(make_agents_app, acme, globex, make_user):
    application = make_agents_app()
    ann = make_user(acme, "ann@example.com")
    make_user(globex, "ann@example.com")
    agent_id = make_agent(application, acme, ann)
    client, _ = _signed_in(application, acme, "ann@example.com")
    token = _csrf(client, f"/agents/{agent_id}")
    refused = client.post(f"/agents/{agent_id}/versions", data={
        "model": "gpt-4o", "system_prompt": "A long, carefully edited prompt.",
        "variables": "[]", "tools": "[]", "temperature": "9", "csrf_token": token})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "A long, carefully edited prompt." in html and 'value="9"' in html
    assert 'Temperature is a number from 0 to 2.' in html  # next to its field
    not_numbers = client.post(f"/agents/{agent_id}/versions", data={
        "model": "gpt-4o", "system_prompt": "Kept too.", "max_output_tokens": "lots",
        "csrf_token": token})
    page = not_numbers.get_data(as_text=True)
    assert not_numbers.status_code == 422 and "Kept too." in page
    assert "max_output_tokens" not in page.split("<main")[1].split("<form")[0]
