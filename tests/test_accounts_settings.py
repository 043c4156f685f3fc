"""The account settings page: signed in only, password change with the current password."""

from __future__ import annotations

from tests.accounts_support import NEW_PASSWORD, PASSWORD, audit_actions, post_form
from tests.conftest import Site, host_client, login


def _change(site, current, new=NEW_PASSWORD, confirm=None):
    return post_form(site, "/account/password", {
        "current_password": current, "password": new, "confirm": confirm or new},
        token_from="/account")


def test_settings_need_a_signed_in_user(app, acme):
    response = acme.client.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_password_change_needs_the_current_password_and_ends_other_sessions(
        app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    make_user(globex, "alice@example.com")
    other = Site(acme.info, acme.host, host_client(app, acme.host))
    assert login(acme, "alice@example.com").status_code == 302
    assert login(other, "alice@example.com").status_code == 302
    refresh = acme.client.post("/api/v1/auth/token", json={
        "email": "alice@example.com", "password": PASSWORD}).get_json()["refresh_token"]

    wrong = _change(acme, "not my password at all")
    assert wrong.status_code == 400
    assert "is not your current password" in wrong.get_data(as_text=True)
    differ = _change(acme, PASSWORD, confirm="something else entirely")
    assert differ.status_code == 400 and "The two passwords differ." in differ.get_data(
        as_text=True)
    assert "password_changed" not in audit_actions(app, acme)

    ok = _change(acme, PASSWORD)
    assert ok.status_code == 302 and "sent=password" in ok.headers["Location"]
    # This session continues; the other browser and the refresh token do not.
    assert acme.client.get("/account").status_code == 200
    assert other.client.get("/account").status_code == 302
    assert acme.client.post("/api/v1/auth/refresh",
                            json={"refresh_token": refresh}).status_code == 401
    assert audit_actions(app, acme).count("password_changed") == 1
    assert "password_changed" not in audit_actions(app, globex)
    assert login(globex, "alice@example.com").status_code == 302  # globex's alice untouched


def test_settings_page_shows_only_my_account(app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    make_user(acme, "bob@example.com")
    make_user(globex, "alice@example.com")
    login(acme, "alice@example.com")
    page = acme.client.get("/account").get_data(as_text=True)
    assert "alice@example.com" in page and "bob@example.com" not in page
    assert "csrf_token" in page and "Change password" in page
