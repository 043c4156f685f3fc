"""The widget pages: create a key, edit origins and appearance (with a preview), copy the
snippet, revoke; two tenants with look-alike data never see each other's keys."""

from __future__ import annotations

import html
import re

from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
)
from tests.conftest import host_client


def _signed_in(application, site, email):
    client = host_client(application, site.host)
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"email": email, "password": "correct horse battery",
                                         "csrf_token": token})
    assert answer.status_code == 302
    return client


def _csrf(client, path):
    return re.search(r'name="csrf_token" value="([^"]+)"',
                     client.get(path).get_data(as_text=True)).group(1)


def test_a_customer_creates_edits_and_revokes_a_widget_key(make_agents_app, acme, globex,
                                                           make_user):
    application = make_agents_app()
    ann = make_user(acme, "ann@example.com")
    gus = make_user(globex, "ann@example.com")
    agent_id = make_agent(application, acme, ann)
    make_agent(application, globex, gus)
    client = _signed_in(application, acme, "ann@example.com")
    other = _signed_in(application, globex, "ann@example.com")

    index = client.get("/embed")
    assert index.status_code == 200 and "No widget keys yet." in index.get_data(as_text=True)
    bad = client.post("/embed", data={"csrf_token": _csrf(client, "/embed"), "name": "Shop",
                                       "agent_id": str(agent_id),
                                       "allowed_origins": "not a site"})
    assert bad.status_code == 422 and "allowed_origins" in bad.get_data(as_text=True)
    created = client.post("/embed", data={
        "csrf_token": _csrf(client, "/embed"), "name": "Shop", "agent_id": str(agent_id),
        "allowed_origins": "https://shop.example\nhttp://localhost:8080"})
    assert created.status_code == 302
    edit_path = created.headers["Location"]
    page = html.unescape(client.get(edit_path).get_data(as_text=True))
    key = re.search(r'data-key="(pk_[^"]+)"', page).group(1)
    assert f'<script src="http://{acme.host}:5000/widget.js" data-key="{key}" async>' in page
    assert 'data-testid="widget-preview"' in page and "Copy snippet" in page
    assert "Albedo" not in page

    # The other tenant's customer with the same email sees nothing of it.
    assert key not in other.get("/embed").get_data(as_text=True)
    assert other.get(edit_path).status_code == 404

    saved = client.post(edit_path, data={
        "csrf_token": _csrf(client, edit_path), "name": "Shop",
        "allowed_origins": "https://shop.example", "name_shown": "Parcel help",
        "primary_color": "#0f766e", "accent_color": "#f59e0b", "greeting": "Hello there",
        "placeholder": "Ask away", "logo_url": "", "monthly_cap": "50"})
    assert saved.status_code == 302
    api = acme.client.get(f"/api/v1/widget/embed/{key}/config",
                          headers={"Origin": "https://shop.example"}).get_json()
    assert (api["name"], api["primary_color"], api["greeting"], api["placeholder"]) == (
        "Parcel help", "#0f766e", "Hello there", "Ask away")
    assert acme.client.get(f"/api/v1/widget/embed/{key}/config", headers={
        "Origin": "http://localhost:8080"}).status_code == 403  # removed from the list

    revoked = client.post(edit_path + "/revoke", data={"csrf_token": _csrf(client, edit_path)})
    assert revoked.status_code == 302
    assert "revoked" in client.get("/embed").get_data(as_text=True)
    assert acme.client.post(f"/api/v1/widget/embed/{key}/token", json={
        "visitor_id": "visitor-0001"}, headers={"Origin": "https://shop.example"}
    ).status_code == 403


def test_a_reseller_makes_a_key_whose_usage_is_a_customers(make_agents_app, acme, make_user):
    application = make_agents_app()
    staff = make_user(acme, "staff@example.com", role="RESELLER")
    bob = make_user(acme, "bob@example.com")
    template = make_agent(application, acme, staff, role="RESELLER", slug="desk")
    client = _signed_in(application, acme, "staff@example.com")
    page = client.get("/embed").get_data(as_text=True)
    assert "bob@example.com" in page and "Whose usage" in page
    created = client.post("/embed", data={
        "csrf_token": _csrf(client, "/embed"), "name": "Bob's shop",
        "agent_id": str(template), "owner_id": str(bob),
        "allowed_origins": "https://bob.example"})
    assert created.status_code == 302
    bob_client = _signed_in(application, acme, "bob@example.com")
    assert "Bob&#39;s shop" in bob_client.get("/embed").get_data(as_text=True)
