"""Licensing pages: resellers manage through forms, customers see their own licenses."""

from __future__ import annotations

import re

from tests.conftest import login
from tests.licensing_support import make_license


def _csrf(site, path: str) -> str:
    page = site.client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def test_reseller_builds_a_catalogue_and_issues_through_the_pages(app, acme, globex,
                                                                    make_user):
    from jobs.worker import run_worker

    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(globex, "owner@globex.example", role="RESELLER")
    other = make_license(app, globex)
    login(acme, "owner@acme.example")
    token = _csrf(acme, "/licensing/products")
    acme.client.post("/licensing/products", data={"csrf_token": token, "name": "Pro Agent",
                                                  "code": "pro", "entitlements": "chat, voice"})
    products = acme.client.get("/licensing/products").get_data(as_text=True)
    assert "Pro Agent" in products and "chat, voice" in products
    product_id = re.search(r'<option value="([^"]+)">Pro Agent', acme.client.get(
        "/licensing/policies").get_data(as_text=True)).group(1)
    acme.client.post("/licensing/policies", data={
        "csrf_token": token, "product_id": product_id, "name": "Team", "duration_days": "30",
        "floating": "on", "max_machines": "3"})
    page = acme.client.get("/licensing/licenses").get_data(as_text=True)
    policy_id = re.search(r'<option value="([^"]+)">Pro Agent — Team', page).group(1)
    issued = acme.client.post("/licensing/licenses/issue", data={
        "csrf_token": token, "policy_id": policy_id, "name": "Desk 1",
        "customer_email": "new@customer.example"})
    assert issued.status_code == 302
    detail = acme.client.get(issued.headers["Location"]).get_data(as_text=True)
    assert "ACME-" in detail and "new@customer.example" in detail
    acme.client.post("/licensing/licenses/bulk", data={
        "csrf_token": token, "policy_id": policy_id, "count": "5", "name_prefix": "Lot"})
    running = acme.client.get("/licensing/licenses").get_data(as_text=True)
    assert 'http-equiv="refresh"' in running and 'value="0" max="5"' in running
    run_worker(app, ["default"], burst=True, simple=True)
    done = acme.client.get("/licensing/licenses").get_data(as_text=True)
    assert 'value="5" max="5"' in done and "Download CSV" in done
    assert 'http-equiv="refresh"' not in done
    csv_url = re.search(r'href="([^"]+licenses\.csv)"', done).group(1)
    assert acme.client.get(csv_url).get_data(as_text=True).count("ACME-") == 5
    found = acme.client.get("/licensing/licenses?q=Desk").get_data(as_text=True)
    assert "Desk 1" in found and "Lot 1" not in found
    for path in ("/licensing/machines", "/licensing/validations"):
        assert acme.client.get(path).status_code == 200
    # globex's license is not reachable from acme's dashboard.
    assert acme.client.get(f"/licensing/licenses/{other.id}").status_code == 404
    assert other.key not in acme.client.get("/licensing/licenses").get_data(as_text=True)


def test_reseller_acts_on_a_license_from_its_page(app, acme, make_user):
    make_user(acme, "owner@acme.example", role="RESELLER")
    lic = make_license(app, acme)
    login(acme, "owner@acme.example")
    token = _csrf(acme, f"/licensing/licenses/{lic.id}")
    acme.client.post(f"/licensing/licenses/{lic.id}/suspend", data={"csrf_token": token})
    page = acme.client.get(f"/licensing/licenses/{lic.id}").get_data(as_text=True)
    assert '<span class="badge bad">suspended</span>' in page
    # Only the actions that apply: a suspended license is reinstated, not suspended again.
    actions = page.split('data-testid="license-actions"')[1].split("</div>")[0]
    assert ">Reinstate<" in actions and ">Suspend<" not in actions
    assert 'data-confirm="Revoke this license' in actions
    refused = acme.client.post(f"/licensing/licenses/{lic.id}/suspend", data={})
    assert refused.status_code == 400  # no CSRF token


def test_customers_see_their_own_licenses_and_not_reseller_pages(app, acme, globex,
                                                                 make_user):
    carol = make_user(acme, "carol@example.com")
    make_user(acme, "dave@example.com")
    globex_carol = make_user(globex, "carol@example.com")
    mine = make_license(app, acme, license_kwargs={"owner_id": carol})
    theirs = make_license(app, acme, code="agent-lite")
    lookalike = make_license(app, globex, license_kwargs={"owner_id": globex_carol})
    login(acme, "carol@example.com")
    page = acme.client.get("/my/licenses").get_data(as_text=True)
    assert mine.key in page and theirs.key not in page and lookalike.key not in page
    assert acme.client.get("/licensing/licenses").status_code == 403
    assert 'href="/my/licenses"' in acme.client.get("/my/licenses").get_data(as_text=True)


def test_a_refused_policy_shows_the_error_by_its_field_and_keeps_the_input(app, acme,
                                                                           globex, make_user):
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(globex, "owner@acme.example", role="RESELLER")
    make_license(app, acme)
    login(acme, "owner@acme.example")
    page = acme.client.get("/licensing/policies").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    product_id = re.search(r'<option value="([^"]+)"', page).group(1)
    refused = acme.client.post("/licensing/policies", data={
        "csrf_token": token, "product_id": product_id, "name": "Studio seats",
        "max_machines": "5", "heartbeat_interval_seconds": "600"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    error = re.search(r'<div class="field-error" id="max_machines-error">([^<]+)<', html)
    assert error and error.group(1).startswith("Maximum machines: a node-locked policy")
    assert "max_machines:" not in html
    assert 'value="Studio seats"' in html and 'value="600"' in html and 'value="5"' in html
    assert 'class="error" role="alert"' in html
    # Nothing was created, here or at the look-alike tenant.
    login(globex, "owner@acme.example")
    assert "Studio seats" not in globex.client.get("/licensing/policies").get_data(as_text=True)
    login(acme, "owner@acme.example")
    listing = acme.client.get("/licensing/policies").get_data(as_text=True)
    assert listing.count("Studio seats") == 0


def test_the_policy_form_sets_the_keygen_style_rules(app, acme, globex, make_user):
    from sqlalchemy import select

    from app.extensions import db
    from app.licensing.models import Policy
    from tenants.context import activate

    make_user(acme, "owner@acme.example", role="RESELLER")
    make_license(app, acme)  # a product to choose
    make_license(app, globex, check_in_interval_seconds=60)
    login(acme, "owner@acme.example")
    token = _csrf(acme, "/licensing/policies")
    product_id = re.search(r'<option value="([^"]+)">Agent-Pro', acme.client.get(
        "/licensing/policies").get_data(as_text=True)).group(1)
    acme.client.post("/licensing/policies", data={
        "csrf_token": token, "product_id": product_id, "name": "Fleet", "floating": "on",
        "heartbeat_interval_seconds": "600", "require_heartbeat": "on",
        "check_in_interval_seconds": "86400", "max_cores": "16",
        "entitlements": "export, sso"})
    refused = acme.client.post("/licensing/policies", data={
        "csrf_token": token, "product_id": product_id, "name": "Huge", "floating": "on",
        "max_cores": str(2**40)})
    assert refused.status_code == 422  # the form again with the reason, never a 500
    with app.app_context(), activate(acme.info):
        rows = {p.name: p for p in db.session.scalars(select(Policy))}
        fleet = rows["Fleet"]
        assert (fleet.require_heartbeat, fleet.check_in_interval_seconds, fleet.max_cores,
                fleet.entitlements) == (True, 86400, 16, ["export", "sso"])
        assert "Huge" not in rows
