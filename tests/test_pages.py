"""Sign-in pages in each tenant's branding; sessions bound to their tenant; the outbox."""

import re

from app.extensions import db
from tenants import activate
from tests.conftest import login


def test_sign_in_and_out_on_a_reseller_domain(app, acme, make_user):
    make_user(acme, "alice@example.com", name="Alice")
    response = login(acme, "alice@example.com")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = acme.client.get("/")
    assert home.status_code == 200 and "Welcome, Alice" in home.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', home.get_data(as_text=True)).group(1)
    assert acme.client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert acme.client.get("/").status_code == 302


def test_wrong_password_shows_an_error_in_the_page(app, acme, make_user):
    make_user(acme, "alice@example.com")
    response = login(acme, "alice@example.com", "not the password")
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)


def test_a_user_of_one_tenant_cannot_sign_in_on_another(app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    assert login(globex, "alice@example.com").status_code == 401


def test_a_session_cookie_does_not_carry_over_to_another_tenant(app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    login(acme, "alice@example.com")
    cookie = acme.client.get_cookie("session", domain="acme.localhost")
    assert cookie is not None
    # Replay acme's session cookie against globex: the user is unknown there.
    globex.client.set_cookie("session", cookie.value, domain="globex.localhost")
    response = globex.client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_forms_without_csrf_token_are_refused(app, acme, make_user):
    make_user(acme, "alice@example.com")
    response = acme.client.post("/login", data={"email": "alice@example.com",
                                                "password": "correct horse battery"})
    assert response.status_code == 400


def test_password_change_ends_other_sessions(app, acme, make_user):
    from app.auth.models import User
    from app.auth.service import set_password

    user_id = make_user(acme, "alice@example.com")
    login(acme, "alice@example.com")
    assert acme.client.get("/").status_code == 200
    with app.app_context(), activate(acme.info):
        set_password(db.session.get(User, user_id), "another long password")
        db.session.commit()
    assert acme.client.get("/").status_code == 302


def test_open_redirects_are_refused_after_sign_in(app, acme, make_user):
    make_user(acme, "alice@example.com")
    page = acme.client.get("/login?next=//evil.example/")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True))
    response = acme.client.post("/login?next=//evil.example/", data={
        "email": "alice@example.com", "password": "correct horse battery",
        "csrf_token": token.group(1)})
    assert response.headers["Location"] == "/"


def test_the_outbox_is_for_platform_admins_only(app, platform, acme, make_user):
    from app.email.service import send_email
    from tests.jobs_helpers import run_jobs

    make_user(platform, "admin@example.com", role="ADMIN")
    make_user(acme, "owner@example.com", role="RESELLER")
    with app.app_context(), activate(acme.info):
        send_email("alice@example.com", "welcome", {"name": "Alice"})
        db.session.commit()
    run_jobs(app, "emails")
    login(acme, "owner@example.com")
    assert acme.client.get("/admin/outbox").status_code == 403
    login(platform, "admin@example.com")
    page = platform.client.get("/admin/outbox")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Welcome to Acme Agents" in html and "acme" in html
    email_id = re.search(r'/admin/outbox/([0-9a-f-]{36})', html).group(1)
    assert platform.client.get(f"/admin/outbox/{email_id}").status_code == 200
    assert platform.client.get("/admin/outbox/not-a-uuid").status_code == 404
