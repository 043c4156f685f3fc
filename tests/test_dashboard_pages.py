"""Dashboard pages: API keys (secret shown once), audit log, resellers admin, branding."""

import re

from tests.conftest import login


def _csrf(response) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"',
                     response.get_data(as_text=True)).group(1)


def test_api_keys_page_shows_the_secret_once_and_revokes(app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    make_user(globex, "alice@example.com")
    login(acme, "alice@example.com")
    page = acme.client.get("/settings/api-keys")
    assert page.status_code == 200 and "No API keys yet" in page.get_data(as_text=True)
    created = acme.client.post("/settings/api-keys", data={
        "csrf_token": _csrf(page), "name": "widget", "scopes": ["agents:execute"]})
    html = created.get_data(as_text=True)
    secret = re.search(r'class="secret">(ak_[^<]+)<', html).group(1)
    assert acme.client.get("/api/v1/me", headers={
        "Authorization": f"Bearer {secret}"}).status_code == 200
    again = acme.client.get("/settings/api-keys").get_data(as_text=True)
    assert secret not in again and "widget" in again
    # alice at globex sees none of acme-alice's keys.
    login(globex, "alice@example.com")
    assert "widget" not in globex.client.get("/settings/api-keys").get_data(as_text=True)
    key_id = re.search(r'/settings/api-keys/([0-9a-f-]{36})/revoke', again).group(1)
    assert globex.client.post(f"/settings/api-keys/{key_id}/revoke", data={
        "csrf_token": _csrf(globex.client.get("/settings/api-keys"))}).status_code == 404
    acme.client.post(f"/settings/api-keys/{key_id}/revoke",
                     data={"csrf_token": _csrf(acme.client.get("/settings/api-keys"))})
    assert acme.client.get("/api/v1/me", headers={
        "Authorization": f"Bearer {secret}"}).status_code == 401


def test_api_key_form_errors_are_422_not_500(app, acme, make_user):
    make_user(acme, "alice@example.com")
    login(acme, "alice@example.com")
    page = acme.client.get("/settings/api-keys")
    response = acme.client.post("/settings/api-keys", data={
        "csrf_token": _csrf(page), "name": "", "scopes": ["nope"]})
    assert response.status_code == 422


def test_audit_page_for_resellers_not_customers(app, acme, globex, make_user):
    make_user(acme, "owner@example.com", role="RESELLER")
    make_user(acme, "alice@example.com")
    make_user(globex, "spy@example.com", role="RESELLER")
    login(acme, "alice@example.com")
    assert acme.client.get("/audit").status_code == 403
    login(acme, "owner@example.com")
    html = acme.client.get("/audit").get_data(as_text=True)
    assert "owner@example.com" in html and "alice@example.com" in html
    login(globex, "spy@example.com")
    assert "alice@example.com" not in globex.client.get("/audit").get_data(as_text=True)


def test_platform_admin_onboards_and_suspends_through_the_pages(app, platform, acme,
                                                                make_user):
    make_user(platform, "admin@example.com", role="ADMIN")
    make_user(acme, "owner@example.com", role="RESELLER")
    login(acme, "owner@example.com")
    assert acme.client.get("/admin/resellers").status_code == 403
    login(platform, "admin@example.com")
    page = platform.client.get("/admin/resellers")
    assert "Acme" in page.get_data(as_text=True)
    bad = platform.client.post("/admin/resellers", data={"csrf_token": _csrf(page),
                                                          "slug": "acme", "name": "Dup",
                                                          "owner_email": "dup@example.com"})
    assert bad.status_code == 422 and "is taken" in bad.get_data(as_text=True)
    created = platform.client.post("/admin/resellers", data={
        "csrf_token": _csrf(page), "slug": "initech", "name": "Initech",
        "owner_email": "owner@initech.example"})
    assert created.status_code == 302
    detail = platform.client.get(created.headers["Location"])
    assert "initech.localhost" in detail.get_data(as_text=True)
    acme_page = platform.client.get(f"/admin/resellers/{acme.info.id}")
    platform.client.post(f"/admin/resellers/{acme.info.id}/suspend",
                         data={"csrf_token": _csrf(acme_page)})
    assert acme.client.get("/login").status_code == 403


def test_reseller_edits_branding_in_a_form(app, acme, make_user):
    make_user(acme, "owner@example.com", role="RESELLER")
    login(acme, "owner@example.com")
    page = acme.client.get("/settings/branding")
    form = {"csrf_token": _csrf(page), "display_name": "Acme AI", "primary_color": "#112233",
            "accent_color": "#445566", "support_email": "", "logo_url": "",
            "license_key_prefix": "ACME"}
    assert acme.client.post("/settings/branding", data=form).status_code == 302
    # The colours reach every page through the tenant's theme stylesheet.
    home = acme.client.get("/").get_data(as_text=True)
    theme = re.search(r'href="(/theme\.css\?v=[0-9a-f]+)"', home).group(1)
    assert "--brand-primary:#112233" in acme.client.get(theme).get_data(as_text=True)
    bad = acme.client.post("/settings/branding", data={**form, "primary_color": "blue"})
    assert bad.status_code == 422


def test_navigation_follows_the_role(app, acme, make_user):
    make_user(acme, "owner@example.com", role="RESELLER")
    make_user(acme, "alice@example.com")
    login(acme, "alice@example.com")
    customer_nav = acme.client.get("/").get_data(as_text=True)
    assert 'href="/account"' in customer_nav and "Sign-in settings" not in customer_nav
    assert "Audit log" not in customer_nav
    login(acme, "owner@example.com")
    owner_nav = acme.client.get("/").get_data(as_text=True)
    assert "Sign-in settings" in owner_nav and "Audit log" in owner_nav
