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
