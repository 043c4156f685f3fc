"""The agent builder: rows for variables and tools, checked row by row with the input kept,
the model from the configured list, the diff between versions, and the sandbox's version
picker and per-answer tokens and latency. Two tenants throughout."""

from __future__ import annotations

import re

from werkzeug.datastructures import MultiDict

from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
    run_agents_worker,
)
from tests.conftest import login

PROMPT = "You help {{company}} customers.\nBe brief."


def _csrf(site, path):
    return re.search(r'name="csrf_token" value="([^"]+)"',
                     site.client.get(path).get_data(as_text=True)).group(1)


def _form(**extra):
    data = {"model": "gpt-4o-mini", "system_prompt": PROMPT, "temperature": "0.5",
            "max_output_tokens": "512",
            "variables-0-name": "company", "variables-0-type": "string",
            "variables-0-default": "Acme",
            "variables-1-name": "limit", "variables-1-type": "integer",
            "variables-1-default": "3",
            "tools-0-name": "lookup", "tools-0-url": "https://api.acme.example/lookup",
            "tools-0-method": "GET", "tools-0-description": "Find an order"}
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def test_parse_checks_each_row_and_keeps_what_was_typed(ctx):
    from app.agents import builder

    typed, version = builder.parse(MultiDict(_form()))
    assert typed.errors == {}
    assert version["variables"] == [
        {"name": "company", "type": "string", "default": "Acme", "required": False},
        {"name": "limit", "type": "integer", "default": 3, "required": False}]
    assert version["tools"][0]["method"] == "GET" and version["temperature"] == 0.5

    typed, version = builder.parse(MultiDict(_form(**{
        "temperature": "hot", "variables-1-default": "three", "variables-2-name": "company",
        "variables-2-type": "string", "tools-0-url": "ftp://x", "model": "made-up"})))
    assert version is None
    assert set(typed.errors) == {"temperature", "variables-1-default", "variables-2-name",
                                 "tools-0-url", "model"}
    assert typed.system_prompt == PROMPT and typed.variables[1]["default"] == "three"
    _, version = builder.parse(MultiDict(_form(**{"variables-0-name": None,
                                                  "variables-0-type": None,
                                                  "variables-0-default": None})))
    assert version is None  # {{company}} used in the prompt but no longer declared


def test_a_bad_temperature_does_not_wipe_the_prompt(app, acme, globex, make_user):
    owner = make_user(acme, "owner@acme.example", role="RESELLER")
    agent_id = make_agent(app, acme, owner, role="RESELLER")
    login(acme, "owner@acme.example")
    token = _csrf(acme, f"/agents/{agent_id}")
    edited = "An edited prompt for {{company}} that took a while to write."
    answer = acme.client.post(f"/agents/{agent_id}/versions", data=_form(
        system_prompt=edited, temperature="7", **{"variables-1-default": "x"},
        csrf_token=token))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert edited in html and 'value="https://api.acme.example/lookup"' in html
    assert 'data-error-for="temperature"' in html
    assert 'data-error-for="variables-1-default"' in html and "whole number" in html
    good = acme.client.post(f"/agents/{agent_id}/versions", data=_form(csrf_token=token))
    assert good.status_code == 302
    page = acme.client.get(f"/agents/{agent_id}").get_data(as_text=True)
    assert '<option value="gpt-4o-mini" selected>' in page  # the configured list, chosen
    assert 'name="variables-1-name" value="limit"' in page
    make_user(globex, "owner@acme.example", role="RESELLER")
    login(globex, "owner@acme.example")
    assert globex.client.post(f"/agents/{agent_id}/versions",
                              data=_form(csrf_token=_csrf(globex, "/agents"))).status_code == 404


def test_version_history_shows_what_changed(app, acme, globex, make_user):
    owner = make_user(acme, "owner@acme.example", role="RESELLER")
    agent_id = make_agent(app, acme, owner, role="RESELLER")
    login(acme, "owner@acme.example")
    token = _csrf(acme, f"/agents/{agent_id}")
    acme.client.post(f"/agents/{agent_id}/versions", data=_form(
        model="gpt-4o", system_prompt="You help {{company}} customers.\nBe thorough.",
        csrf_token=token))
    html = acme.client.get(f"/agents/{agent_id}/compare?a=1&b=2").get_data(as_text=True)
    changes = re.search(r'data-testid="version-changes".*?</table>', html, re.S).group(0)
    assert "gpt-4o-mini" in changes and "gpt-4o" in changes
    assert "Variable limit" in changes and "added" in changes
    assert "Tool lookup" in changes
    diff = re.search(r'data-testid="prompt-diff".*?</pre>', html, re.S).group(0)
    assert "+Be thorough." in diff and " You help {{company}} customers." in diff
    assert "Show what changed" in acme.client.get(f"/agents/{agent_id}").get_data(
        as_text=True)
    make_user(globex, "owner@acme.example", role="RESELLER")
    login(globex, "owner@acme.example")
    assert globex.client.get(f"/agents/{agent_id}/compare?a=1&b=2").status_code == 404


def test_sandbox_runs_a_chosen_version_and_reports_tokens(make_agents_app, fake, acme,
                                                          make_user):
    from tests.test_agents_pages import _signed_in

    application = make_agents_app()
    owner = make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(acme, "ann@example.com")
    agent_id = make_agent(application, acme, owner, role="RESELLER")
    client, token = _signed_in(application, acme, "owner@acme.example")
    client.post(f"/agents/{agent_id}/versions", data=_form(csrf_token=token))  # v2, not live
    page = client.get(f"/agents/{agent_id}/sandbox").get_data(as_text=True)
    assert 'data-testid="version-picker"' in page and "1 (live)" in page
    assert 'data-testid="new-chat"' in page and '"limit"' in page  # v2's variables
    started = client.post(f"/agents/{agent_id}/sandbox", headers={"X-CSRFToken": token},
                          json={"input": "hi", "version": 2, "variables": {"limit": 5}})
    assert started.status_code == 202, started.get_json()
    run_agents_worker(application)
    summary = client.get(f"/agents/executions/{started.get_json()['execution_id']}/summary")
    body = summary.get_json()
    assert body["version"] == 2 and body["status"] == "succeeded"
    assert body["completion_tokens"] > 0 and body["run_ms"] is not None
    assert "model" not in body and "cost" not in str(body)

    customer, ctoken = _signed_in(application, acme, "ann@example.com")
    refused = customer.post(f"/agents/{agent_id}/sandbox", headers={"X-CSRFToken": ctoken},
                            json={"input": "hi", "version": 2})
    assert refused.status_code == 403  # customers run the live version only
    assert 'data-testid="version-picker"' not in customer.get(
        f"/agents/{agent_id}/sandbox").get_data(as_text=True)


MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")


def test_customers_never_see_or_choose_the_providers_model(make_agents_app, fake, acme, globex,
                                                         make_user, api_caller):
    """A customer's agent pages (list, builder, versions, compare, executions) name no model
    and offer no model select; a model a customer posts (page or API) is ignored: the agent
    keeps its model. Staff of the same reseller still see and choose it."""
    from app.agents.models import AgentVersion
    from app.extensions import db
    from tenants import activate
    from tests.conftest import host_client
    from tests.test_agents_pages import _signed_in

    application = make_agents_app()
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(acme, "ann@example.com")
    make_user(globex, "ann@example.com")  # a look-alike customer elsewhere
    gloria = make_user(globex, "owner@globex.example", role="RESELLER")
    make_agent(application, globex, gloria, role="RESELLER",
               version={"model": "gpt-4o", "system_prompt": "Hi"})
    customer, token = _signed_in(application, acme, "ann@example.com")
    created = customer.post("/agents", data=_form(name="Desk", model="gpt-4o",
                                                  csrf_token=token))
    assert created.status_code == 302, created.get_data(as_text=True)
    agent_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    v2 = customer.post(f"/agents/{agent_id}/versions", data=_form(
        model="gpt-4.1-mini", system_prompt="Changed {{company}}.", csrf_token=token))
    assert v2.status_code == 302
    customer.post(f"/agents/{agent_id}/publish", data={"version": "2", "csrf_token": token})
    # A refused version (bad temperature) comes back without a model select either.
    refused = customer.post(f"/agents/{agent_id}/versions", data=_form(
        temperature="9", csrf_token=token)).get_data(as_text=True)
    pages = [refused] + [customer.get(p).get_data(as_text=True) for p in (
        "/agents", f"/agents/{agent_id}", f"/agents/{agent_id}/compare?a=1&b=2",
        f"/agents/{agent_id}/sandbox", "/agents/executions", "/agents/usage")]
    for html in pages:
        assert 'name="model"' not in html and 'id="model"' not in html
        assert not [m for m in MODELS if m in html], [m for m in MODELS if m in html]
        assert ">Model<" not in html
    with application.app_context(), activate(acme.info):
        models = db.session.scalars(db.select(AgentVersion.model)).all()
    assert models == ["gpt-4o-mini", "gpt-4o-mini"]  # the default, kept: nothing posted won

    # The API: a customer's version answer has no model, and a model sent is ignored.
    ann = api_caller(acme, email="ann@example.com")
    client = host_client(application, acme.host)
    base = f"/api/v1/agents/{agent_id}/versions"
    made = client.post(base, headers=ann.headers, json={"model": "gpt-4o", "system_prompt": "x"})
    assert made.status_code == 201 and "model" not in made.get_json()
    listed = client.get(base, headers=ann.headers).get_json()["items"]
    assert listed and all("model" not in v for v in listed)
    with application.app_context(), activate(acme.info):
        assert db.session.scalars(db.select(AgentVersion.model).where(
            AgentVersion.number == 3)).one() == "gpt-4o-mini"

    # Staff see it and choose it.
    staff, _ = _signed_in(application, acme, "owner@acme.example")
    editor = staff.get(f"/agents/{agent_id}").get_data(as_text=True)
    assert 'id="model"' in editor and "gpt-4o-mini" in editor
    assert 'id="model"' in staff.get("/agents").get_data(as_text=True)
    owner = api_caller(acme, role="RESELLER", email="owner@acme.example")
    chosen = client.post(base, headers=owner.headers, json={"model": "gpt-4o"})
    assert chosen.status_code == 201 and chosen.get_json()["model"] == "gpt-4o"
    assert client.post(base, headers=owner.headers, json={}).status_code == 422
    # The other tenant's agent kept its own model, untouched.
    with application.app_context(), activate(globex.info):
        assert db.session.scalars(db.select(AgentVersion.model)).all() == ["gpt-4o"]
