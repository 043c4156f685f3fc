"""A reseller's own provider key: API and settings page, never shown back, audited, used only
for its own tenant's executions, with the base URL checked against the SSRF rules."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
    run_agents_worker,
)
from tests.conftest import Site, host_client, login

URL = "/api/v1/agents/provider"
KEY = "sk-acme-own-0123456789-WXYZ"


@pytest.fixture
def world(acme, globex, api_caller):
    return {"acme_reseller": api_caller(acme, role="RESELLER", email="owner@acme.example"),
            "ann": api_caller(acme, email="ann@example.com"),
            "globex_reseller": api_caller(globex, role="RESELLER", email="owner@acme.example"),
            "gus": api_caller(globex, email="ann@example.com")}


def _run(client, caller):
    """An agent of the caller's own, executed once: the answer to the execution POST."""
    agent = client.post("/api/v1/agents", headers=caller.headers,
                        json={"name": "Helper", "slug": "helper", "version": VERSION})
    assert agent.status_code in (201, 409), agent.get_json()
    agents = client.get("/api/v1/agents", headers=caller.headers).get_json()["items"]
    agent_id = next(a["id"] for a in agents if a["slug"] == "helper")
    return client.post(f"/api/v1/agents/{agent_id}/executions", headers=caller.headers,
                       json={"input": "whose key?"})


def _audit_rows(owner_engine, with_actor=False):
    with owner_engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # row-level security binds the owner too
            conn.execute(sa.text("SELECT set_config('app.cross_tenant', 'on', true)"))
        rows = conn.execute(sa.text(
            "SELECT details, actor_user_id FROM audit_events"
            " WHERE action = 'agent_provider_changed' ORDER BY created_at")).all()
    details = [json.loads(r.details) if isinstance(r.details, str) else r.details  # SQLite
               for r in rows]
    if with_actor:
        return [(d, str(r.actor_user_id).replace("-", "")) for d, r in zip(details, rows,
                                                                         strict=True)]
    return details


def test_a_reseller_key_is_used_for_its_tenant_only_and_never_shown(
        make_agents_app, fake, acme, globex, world, owner_engine):
    application = make_agents_app()
    acme_client = host_client(application, acme.host)
    globex_client = host_client(application, globex.host)
    reseller = world["acme_reseller"]
    before = acme_client.get(URL, headers=reseller.headers).get_json()
    assert before == {"configured": False, "key_last4": None, "base_url": None,
                      "updated_at": None, "platform_provider": True}
    saved = acme_client.put(URL, headers=reseller.headers,
                            json={"api_key": KEY, "base_url": fake.base_url + "/"})
    assert saved.status_code == 200, saved.get_json()
    for answer in (saved, acme_client.get(URL, headers=reseller.headers)):
        body = answer.get_json()
        assert KEY not in answer.get_data(as_text=True)
        assert (body["configured"], body["key_last4"], body["base_url"]) == (
            True, "WXYZ", fake.base_url)
    # Globex's reseller sees its own (empty) settings, not Acme's.
    assert globex_client.get(URL, headers=world["globex_reseller"].headers
                             ).get_json()["configured"] is False

    assert _run(acme_client, world["ann"]).status_code == 202
    assert _run(globex_client, world["gus"]).status_code == 202
    run_agents_worker(application)
    assert sorted(h["authorization"] for h in fake.headers) == [
        f"Bearer {KEY}", "Bearer sk-platform"]

    [(row, actor)] = _audit_rows(owner_engine, with_actor=True)
    assert row["base_url"] == fake.base_url and actor == reseller.user_id.hex
    assert KEY not in str(row) and "WXYZ" not in str(row)

    # Cleared: Acme is back on the platform's key, and the removal is audited too.
    assert acme_client.delete(URL, headers=reseller.headers).status_code == 204
    assert acme_client.get(URL, headers=reseller.headers).get_json()["configured"] is False
    fake.headers.clear()
    assert _run(acme_client, world["ann"]).status_code == 202
    run_agents_worker(application)
    assert [h["authorization"] for h in fake.headers] == ["Bearer sk-platform"]
    assert [r["key_set"] for r in _audit_rows(owner_engine)] == [True, False]


def test_without_a_platform_provider_only_the_tenant_with_a_key_runs(
        make_agents_app, fake, acme, globex, world):
    application = make_agents_app(OPENAI_BASE_URL="", OPENAI_API_KEY="")
    acme_client = host_client(application, acme.host)
    globex_client = host_client(application, globex.host)
    reseller = world["acme_reseller"]
    assert acme_client.get(URL, headers=reseller.headers).get_json()["platform_provider"] is (
        False)
    refused = _run(acme_client, world["ann"])
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "provider_not_configured"
    acme_client.put(URL, headers=reseller.headers,
                    json={"api_key": KEY, "base_url": fake.base_url})
    assert _run(acme_client, world["ann"]).status_code == 202
    unconfigured = _run(globex_client, world["gus"])
    assert unconfigured.status_code == 503
    assert "configure" in unconfigured.get_json()["error"]["message"]
    run_agents_worker(application)
    assert [h["authorization"] for h in fake.headers] == [f"Bearer {KEY}"]
    # A base URL change alone keeps the stored key.
    moved = acme_client.put(URL, headers=reseller.headers,
                            json={"base_url": "http://127.0.0.1:11434/v1"})
    assert moved.status_code == 200
    assert (moved.get_json()["key_last4"], moved.get_json()["base_url"]) == (
        "WXYZ", "http://127.0.0.1:11434/v1")


@pytest.mark.parametrize(("body", "field"), [
    ({"api_key": KEY, "base_url": "ftp://files.example/v1"}, "base_url"),
    ({"api_key": KEY, "base_url": "https://user:pw@api.example/v1"}, "base_url"),
    ({"api_key": KEY, "base_url": "https://api.example/v1?key=x"}, "base_url"),
    ({"api_key": KEY, "base_url": "not a url"}, "base_url"),
    ({"api_key": "sk has spaces"}, "api_key"),
    ({"api_key": "short"}, "api_key"),
    ({"base_url": "https://api.example/v1"}, "api_key"),  # nothing stored to keep
])
def test_bad_settings_are_a_422_and_nothing_is_stored(make_agents_app, acme, world, body, field):
    application = make_agents_app()
    client = host_client(application, acme.host)
    reseller = world["acme_reseller"]
    answer = client.put(URL, headers=reseller.headers, json=body)
    assert answer.status_code == 422, answer.get_json()
    assert field in answer.get_json()["error"]["details"]["fields"]
    assert client.get(URL, headers=reseller.headers).get_json()["configured"] is False


def test_only_resellers_manage_the_key(make_agents_app, acme, world, api_caller):
    application = make_agents_app()
    client = host_client(application, acme.host)
    for method in ("get", "put", "delete"):
        answer = getattr(client, method)(URL, headers=world["ann"].headers,
                                         json={"api_key": KEY} if method == "put" else None)
        assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "forbidden"
    reader = api_caller(acme, role="RESELLER", scopes=["agents:read"],
                        email="owner@acme.example")
    denied = client.put(URL, headers=reader.headers, json={"api_key": KEY})
    assert denied.status_code == 403
    assert denied.get_json()["error"]["code"] == "insufficient_scope"


@pytest.fixture
def production_app(migrated, app):
    """The app as production runs it, for the address rules (development allows all)."""
    from app import create_app

    def make(**extra: str):
        return create_app(migrated.with_overrides(
            env="production", secret_key="s" * 48,
            extra={**migrated.extra, "OPENAI_API_KEY": "sk-platform", **extra}))

    return make


@pytest.mark.parametrize("base_url", [
    "http://127.0.0.1:11434/v1", "http://localhost:8000/v1", "http://10.0.0.8/v1",
    "http://169.254.169.254/latest", "http://[::1]:8000/v1", "http://100.64.0.1/v1",
    "https://no-such-host.invalid/v1"])
def test_production_refuses_private_and_unresolvable_base_urls(production_app, acme, world,
                                                                base_url):
    client = host_client(production_app(), acme.host)
    answer = client.put(URL, headers=world["acme_reseller"].headers,
                        json={"api_key": KEY, "base_url": base_url})
    assert answer.status_code == 422, answer.get_json()
    assert "cannot be used" in answer.get_json()["error"]["details"]["fields"]["base_url"][0]


def test_production_lets_an_operator_allowed_address_through(production_app, acme, world):
    application = production_app(ALBEDO_SSRF_ALLOW="127.0.0.1:11434")
    client = host_client(application, acme.host)
    answer = client.put(URL, headers=world["acme_reseller"].headers,
                        json={"api_key": KEY, "base_url": "http://127.0.0.1:11434/v1"})
    assert answer.status_code == 200, answer.get_json()
    other_port = client.put(URL, headers=world["acme_reseller"].headers,
                            json={"api_key": KEY, "base_url": "http://127.0.0.1:8000/v1"})
    assert other_port.status_code == 422


def _csrf(client, path):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_settings_page_saves_and_removes_the_key(acme, globex, make_user, owner_engine):
    # The plain app: no platform provider, so the page says executions need a key.
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(acme, "ann@example.com")
    make_user(globex, "owner@acme.example", role="RESELLER")
    assert login(acme, "owner@acme.example").status_code == 302
    client = acme.client
    page = client.get("/agents/provider")
    assert page.status_code == 200 and "No provider is configured" in page.get_data(as_text=True)
    assert "/agents/provider" in client.get("/agents").get_data(as_text=True)
    token = _csrf(client, "/agents/provider")
    no_csrf = client.post("/agents/provider", data={"api_key": KEY})
    assert no_csrf.status_code == 400
    bad = client.post("/agents/provider", data={"api_key": KEY, "base_url": "gopher://x",
                                                "csrf_token": token})
    assert bad.status_code == 400 and "http://" in bad.get_data(as_text=True)
    saved = client.post("/agents/provider", data={
        "api_key": KEY, "base_url": "http://127.0.0.1:11434/v1", "csrf_token": token})
    assert saved.status_code == 302
    shown = client.get("/agents/provider").get_data(as_text=True)
    assert "WXYZ" in shown and KEY not in shown and "http://127.0.0.1:11434/v1" in shown
    # Globex's reseller, signed in on its own domain, sees nothing of it.
    assert login(globex, "owner@acme.example").status_code == 302
    assert "WXYZ" not in globex.client.get("/agents/provider").get_data(as_text=True)
    cleared = client.post("/agents/provider/clear", data={"csrf_token": token})
    assert cleared.status_code == 302
    assert "WXYZ" not in client.get("/agents/provider").get_data(as_text=True)
    assert [r["key_set"] for r in _audit_rows(owner_engine)] == [True, False]
    customer = Site(acme.info, acme.host, host_client(acme.client.application, acme.host))
    assert login(customer, "ann@example.com").status_code == 302
    customer = customer.client
    assert customer.get("/agents/provider").status_code == 403
    assert "/agents/provider" not in customer.get("/agents").get_data(as_text=True)


def test_production_checks_the_address_again_at_every_connection(
        production_app, fake, acme, globex, world, monkeypatch):
    """DNS rebinding: the name resolved publicly when it was saved, privately when the worker
    connects. Nothing is sent to it, and the execution says why."""
    import socket

    from app.integrations import ssrf

    # The platform's own provider is the operator's choice: not guarded.
    application = production_app(OPENAI_BASE_URL=fake.base_url,
                                 ALBEDO_AGENTS_RETRY_BACKOFF="0")
    acme_client = host_client(application, acme.host)
    globex_client = host_client(application, globex.host)
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))]
    with monkeypatch.context() as patched:
        patched.setattr(ssrf.socket, "getaddrinfo", lambda *args, **kwargs: public)
        saved = acme_client.put(URL, headers=world["acme_reseller"].headers,
                                json={"api_key": KEY, "base_url": fake.base_url})
    assert saved.status_code == 200, saved.get_json()

    assert _run(acme_client, world["ann"]).status_code == 202
    assert _run(globex_client, world["gus"]).status_code == 202
    run_agents_worker(application)
    assert [h["authorization"] for h in fake.headers] == ["Bearer sk-platform"]
    [blocked] = acme_client.get("/api/v1/executions",
                                headers=world["ann"].headers).get_json()["items"]
    assert (blocked["status"], blocked["error"]["code"]) == (
        "failed", "provider_address_blocked")
    assert "127.0.0.1" in blocked["error"]["message"]
    assert "loopback" in blocked["error"]["message"]
    [ran] = globex_client.get("/api/v1/executions",
                              headers=world["gus"].headers).get_json()["items"]
    assert ran["status"] == "succeeded"
