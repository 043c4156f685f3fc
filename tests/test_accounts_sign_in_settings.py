"""A reseller's sign-in settings: sign-up on or off, its own Google / GitHub OAuth apps."""

from __future__ import annotations

from tests.accounts_support import post_form
from tests.conftest import login


def _save_app(site, provider, client_id, secret="", enabled=True):
    data = {f"{provider}-client_id": client_id, f"{provider}-client_secret": secret}
    if enabled:
        data[f"{provider}-enabled"] = "y"
    return post_form(site, f"/settings/sign-in/{provider}", data, token_from="/settings/sign-in")


def test_only_resellers_see_their_sign_in_settings(app, acme, globex, make_user):
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(acme, "customer@example.com", role="USER")
    assert acme.client.get("/settings/sign-in").status_code == 302  # sign in first
    login(acme, "customer@example.com")
    assert acme.client.get("/settings/sign-in").status_code == 403
    login(acme, "owner@acme.example")
    page = acme.client.get("/settings/sign-in")
    assert page.status_code == 200
    # The redirect URIs to register are on acme's own domain.
    for provider in ("google", "github"):
        assert (f"http://acme.localhost:5000/auth/oauth/{provider}/callback"
                in page.get_data(as_text=True))


def test_a_reseller_enables_its_own_oauth_app_for_its_tenant_only(app, acme, globex,
                                                                  make_user):
    from app import secrets_box
    from app.auth import oauth
    from app.extensions import db
    from tenants import activate

    make_user(acme, "owner@acme.example", role="RESELLER")
    login(acme, "owner@acme.example")
    missing = _save_app(acme, "github", "acme-github")
    assert missing.status_code == 400 and "is required" in missing.get_data(as_text=True)
    assert _save_app(acme, "github", "acme-github", "s3cret-one").status_code == 302
    assert acme.client.get("/auth/oauth/github/start").status_code == 302
    assert globex.client.get("/auth/oauth/github/start").status_code == 404
    # A blank secret on a later save keeps the stored one; the form never shows it back.
    assert _save_app(acme, "github", "acme-github-2").status_code == 302
    page = acme.client.get("/settings/sign-in").get_data(as_text=True)
    assert "s3cret-one" not in page and "acme-github-2" in page
    with app.app_context(), activate(acme.info):
        row = oauth.provider_row("github")
        assert row.client_id == "acme-github-2"
        assert secrets_box.decrypt_text(row.client_secret_encrypted, acme.info.id,
                                        "oauth-client-secret:github") == "s3cret-one"
    with app.app_context(), activate(globex.info):
        assert oauth.enabled_providers() == []
        db.session.rollback()
    # Turning it off removes the routes.
    assert _save_app(acme, "github", "acme-github-2", enabled=False).status_code == 302
    assert acme.client.get("/auth/oauth/github/start").status_code == 404


def test_a_reseller_turns_sign_up_off_for_its_tenant_only(app, acme, globex, make_user):
    make_user(acme, "owner@acme.example", role="RESELLER")
    login(acme, "owner@acme.example")
    off = post_form(acme, "/settings/sign-in/signup", {}, token_from="/settings/sign-in")
    assert off.status_code == 302
    assert acme.client.get("/signup").status_code == 404
    assert globex.client.get("/signup").status_code == 200
    on = post_form(acme, "/settings/sign-in/signup", {"signup_enabled": "y"},
                   token_from="/settings/sign-in")
    assert on.status_code == 302
    assert acme.client.get("/signup").status_code == 200


def test_sign_in_settings_changes_are_audited_without_the_secret(app, acme, globex, make_user):
    from tests.accounts_support import audit_actions

    make_user(acme, "owner@acme.example", role="RESELLER")
    login(acme, "owner@acme.example")
    post_form(acme, "/settings/sign-in/signup", {}, token_from="/settings/sign-in")
    _save_app(acme, "google", "acme-google", "very-secret")
    assert audit_actions(app, acme).count("sign_in_settings_changed") == 2
    assert "sign_in_settings_changed" not in audit_actions(app, globex)
    log = acme.client.get("/audit").get_data(as_text=True)
    assert "very-secret" not in log
