"""OAuth sign-in with Google and GitHub, per tenant, against a local stand-in provider.

Authlib's real client runs over HTTP against tests/fakes/oauth_provider.py; the test plays
the browser, carrying each redirect by hand: app → provider's authorize → app's callback.
"""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from tests.accounts_support import (
    audit_actions,
    host_of,
    path_of,
    post_form,
    user_row,
)
from tests.conftest import Site, host_client, login
from tests.fakes.oauth_provider import FakeAccount, start_oauth_provider


@pytest.fixture
def provider():
    fake = start_oauth_provider()
    fake.accounts["ann"] = FakeAccount("1001", "ann@mail.example", name="Ann Example",
                                       login="ann")
    fake.signed_in = "ann"
    yield fake
    fake.close()


@pytest.fixture
def oauth_app(app, provider):
    """The app with provider endpoints pointed at the fake (as the environment would)."""
    settings = app.extensions["albedo.settings"]
    app.extensions["albedo.settings"] = settings.with_overrides(
        extra={**settings.extra, **provider.settings_extra()})
    return app


def enable(app, provider, site, name: str, enabled: bool = True) -> str:
    """Give ``site`` its own OAuth app at the provider; returns its client id."""
    from app.auth import oauth
    from app.extensions import db
    from tenants import activate

    client_id = f"{site.info.slug}-{name}-client"
    provider.clients[client_id] = f"{client_id}-secret"
    with app.app_context(), activate(site.info):
        oauth.configure_provider(name, client_id, f"{client_id}-secret", enabled=enabled)
        db.session.commit()
    return client_id


def to_provider(site, start_response):
    """Follow the app's redirect to the provider; returns the callback URL it sends back."""
    assert start_response.status_code == 302, start_response.get_data(as_text=True)
    authorize_url = start_response.headers["Location"]
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def sign_in(site, name: str):
    """The whole round trip; returns (callback response, callback URL)."""
    callback = to_provider(site, site.client.get(f"/auth/oauth/{name}/start"))
    return site.client.get(path_of(callback)), callback


def identities(app, site, email):
    from app.auth.models import OAuthIdentity
    from app.extensions import db
    from tenants import activate

    user = user_row(app, site, email)
    with app.app_context(), activate(site.info):
        return [(i.provider, i.subject) for i in db.session.scalars(
            select(OAuthIdentity).where(OAuthIdentity.user_id == user.id))]


def test_google_account_signs_in_as_a_separate_user_at_each_reseller(
        oauth_app, provider, acme, globex):
    app = oauth_app
    acme_client = enable(app, provider, acme, "google")
    enable(app, provider, globex, "google")
    start = acme.client.get("/auth/oauth/google/start")
    assert f"client_id={acme_client}" in start.headers["Location"]  # acme's own app
    callback = to_provider(acme, start)
    # The callback is on acme's own domain.
    assert host_of(callback) == f"{acme.info.primary_host}:5000"
    done = acme.client.get(path_of(callback))
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert "ann@mail.example" in acme.client.get("/").get_data(as_text=True)

    response, _ = sign_in(globex, "google")
    assert response.status_code == 302
    acme_ann, globex_ann = (user_row(app, acme, "ann@mail.example"),
                            user_row(app, globex, "ann@mail.example"))
    assert acme_ann.id != globex_ann.id
    assert acme_ann.role == globex_ann.role == "USER"
    assert acme_ann.email_verified_at is not None and acme_ann.password_hash is None
    assert identities(app, acme, "ann@mail.example") == [("google", "1001")]
    assert identities(app, globex, "ann@mail.example") == [("google", "1001")]
    assert audit_actions(app, acme).count("sign_up") == 1
    assert audit_actions(app, globex).count("sign_up") == 1

    # Signing in again at acme reuses the identity: no new user, no new sign-up.
    acme.client.post("/logout", data={"csrf_token": _csrf(acme, "/account")})
    again, _ = sign_in(acme, "google")
    assert again.status_code == 302
    assert audit_actions(app, acme).count("sign_up") == 1
    assert audit_actions(app, acme).count("sign_in") == 2
    # Authlib really ran the OpenID flow: discovery, code exchange, id_token checked by JWKS.
    for call in ("GET /google/.well-known/openid-configuration", "POST /google/token",
                 "GET /google/jwks"):
        assert call in provider.log


def _csrf(site, path):
    from tests.accounts_support import csrf

    return csrf(site, path)


def test_github_links_to_the_existing_verified_user_with_that_email(
        oauth_app, provider, acme, globex, make_user):
    app = oauth_app
    alice_id = make_user(acme, "ann@mail.example")
    make_user(globex, "ann@mail.example")  # look-alike at the other reseller, no OAuth there
    enable(app, provider, acme, "github")
    response, _ = sign_in(acme, "github")
    assert response.status_code == 302
    assert user_row(app, acme, "ann@mail.example").id == alice_id
    assert identities(app, acme, "ann@mail.example") == [("github", "1001")]
    assert identities(app, globex, "ann@mail.example") == []
    page = acme.client.get("/account").get_data(as_text=True)
    assert "GitHub" in page and 'data-testid="identities"' in page
    assert "GET /github-api/user/emails" in provider.log
    # The unverified secondary address GitHub also listed did not become an account.
    assert user_row(app, acme, "old-unverified@example.net") is None


def test_state_is_checked_so_a_callback_cannot_be_replayed_or_moved(
        oauth_app, provider, acme):
    app = oauth_app
    enable(app, provider, acme, "google")
    callback = to_provider(acme, acme.client.get("/auth/oauth/google/start"))
    # The same callback delivered to another browser (login CSRF): no state there.
    stranger = Site(acme.info, acme.host, host_client(app, acme.host))
    moved = stranger.client.get(path_of(callback))
    assert moved.status_code == 400
    assert "did not complete" in moved.get_data(as_text=True)
    # A forged state in the right browser is refused too.
    forged = acme.client.get(path_of(callback).replace("state=", "state=x"))
    assert forged.status_code == 400
    assert user_row(app, acme, "ann@mail.example") is None
    assert stranger.client.get("/").status_code == 302  # not signed in

    ok, callback = sign_in(acme, "google")
    assert ok.status_code == 302
    # The state is spent: the same callback again is refused.
    assert acme.client.get(path_of(callback)).status_code == 400


def test_a_tenant_without_oauth_has_no_oauth_routes(oauth_app, provider, acme, globex):
    app = oauth_app
    enable(app, provider, acme, "google")
    enable(app, provider, acme, "github", enabled=False)
    for path in ("/auth/oauth/google/start", "/auth/oauth/google/callback?code=x&state=y",
                 "/auth/oauth/github/start"):
        assert globex.client.get(path).status_code == 404, path
    assert acme.client.get("/auth/oauth/github/start").status_code == 404  # disabled
    assert acme.client.get("/auth/oauth/twitter/start").status_code == 404
    assert acme.client.get("/auth/oauth/google/start").status_code == 302
    assert "Sign in with Google" in acme.client.get("/login").get_data(as_text=True)
    globex_login = globex.client.get("/login").get_data(as_text=True)
    assert "Sign in with" not in globex_login and "oauth" not in globex_login


def test_an_unverified_local_account_is_not_taken_over(oauth_app, provider, acme):
    app = oauth_app
    enable(app, provider, acme, "google")
    # Someone registered ann's address first, without being able to verify it.
    post_form(acme, "/signup", {"email": "ann@mail.example", "password": "squatter's pass"})
    browser = Site(acme.info, acme.host, host_client(app, acme.host))
    response, _ = sign_in(browser, "google")
    assert response.status_code == 409
    assert "not verified yet" in response.get_data(as_text=True)
    assert identities(app, acme, "ann@mail.example") == []
    assert browser.client.get("/").status_code == 302


def test_no_account_is_created_where_sign_up_is_off_or_the_email_is_unverified(
        oauth_app, provider, acme, globex):
    from app.extensions import db
    from tenants.service import get_by_slug

    app = oauth_app
    enable(app, provider, acme, "google")
    enable(app, provider, globex, "google")
    with app.app_context():
        get_by_slug("globex").signup_enabled = False
        db.session.commit()
    closed, _ = sign_in(globex, "google")
    assert closed.status_code == 403 and user_row(app, globex, "ann@mail.example") is None
    provider.accounts["ann"].email_verified = False
    unverified, _ = sign_in(acme, "google")
    assert unverified.status_code == 403
    assert "no verified email" in unverified.get_data(as_text=True)
    assert user_row(app, acme, "ann@mail.example") is None


def test_cancelling_at_the_provider_is_a_clear_400(oauth_app, provider, acme):
    app = oauth_app
    enable(app, provider, acme, "github")
    provider.deny = True
    response, _ = sign_in(acme, "github")
    assert response.status_code == 400 and "cancelled" in response.get_data(as_text=True)


def test_link_and_unlink_from_account_settings(oauth_app, provider, acme, globex, make_user):
    app = oauth_app
    make_user(acme, "alice@example.com")
    make_user(globex, "alice@example.com")
    enable(app, provider, acme, "github")
    enable(app, provider, globex, "github")
    login(acme, "alice@example.com")
    # ann's GitHub account (another address) is linked to alice explicitly, by a CSRF'd POST.
    start = post_form(acme, "/account/oauth/github/link", {}, token_from="/account")
    linked = acme.client.get(path_of(to_provider(acme, start)))
    assert linked.status_code == 302 and "sent=linked" in linked.headers["Location"]
    assert identities(app, acme, "alice@example.com") == [("github", "1001")]
    assert user_row(app, acme, "ann@mail.example") is None
    # Now that GitHub account signs in as alice at acme, and nowhere else.
    browser = Site(acme.info, acme.host, host_client(app, acme.host))
    sign_in(browser, "github")
    assert "alice@example.com" in browser.client.get("/").get_data(as_text=True)
    assert identities(app, globex, "alice@example.com") == []

    from app.auth.models import OAuthIdentity
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(acme.info):
        identity_id = db.session.scalars(select(OAuthIdentity.id)).one()
    # globex's alice cannot remove acme's identity (it does not exist for her).
    login(globex, "alice@example.com")
    assert post_form(globex, f"/account/oauth/{identity_id}/unlink", {},
                     token_from="/account").status_code == 404
    removed = post_form(acme, f"/account/oauth/{identity_id}/unlink", {},
                        token_from="/account")
    assert removed.status_code == 302
    assert identities(app, acme, "alice@example.com") == []


def test_the_only_sign_in_method_cannot_be_removed(oauth_app, provider, acme):
    from app.auth.models import OAuthIdentity
    from app.extensions import db
    from tenants import activate

    app = oauth_app
    enable(app, provider, acme, "google")
    sign_in(acme, "google")
    with app.app_context(), activate(acme.info):
        identity_id = db.session.scalars(select(OAuthIdentity.id)).one()
    refused = post_form(acme, f"/account/oauth/{identity_id}/unlink", {}, token_from="/account")
    assert refused.status_code == 400 and "Set a password" in refused.get_data(as_text=True)
    assert identities(app, acme, "ann@mail.example") == [("google", "1001")]


def test_client_secrets_are_encrypted_and_bound_to_their_tenant(oauth_app, provider, acme,
                                                                globex):
    from app import secrets_box
    from app.auth.models import TenantOAuthProvider
    from app.extensions import db
    from tenants import activate

    app = oauth_app
    enable(app, provider, acme, "google")
    with app.app_context(), activate(acme.info):
        blob = db.session.scalars(select(TenantOAuthProvider.client_secret_encrypted)).one()
        assert "acme-google-client-secret" not in blob
        with pytest.raises(secrets_box.SecretError):
            secrets_box.decrypt(blob, globex.info.id, "oauth-client-secret:google")
    with app.app_context(), activate(globex.info):
        assert db.session.scalars(select(TenantOAuthProvider)).all() == []


def test_the_flow_runs_on_the_primary_domain_whatever_host_it_starts_on(
        oauth_app, provider, acme):
    from tests.accounts_support import give_custom_primary_domain

    app = oauth_app
    enable(app, provider, acme, "google")
    primary = give_custom_primary_domain(app, acme, "agents.acme-shop.example")
    hop = acme.client.get("/auth/oauth/google/start", headers={"X-Forwarded-Host": "evil.example"})
    assert hop.status_code == 302
    assert hop.headers["Location"] == f"http://{primary}:5000/auth/oauth/google/start"
    on_primary = Site(acme.info, primary, host_client(app, primary))
    response, callback = sign_in(on_primary, "google")
    assert host_of(callback) == f"{primary}:5000"
    assert response.status_code == 302
    assert user_row(app, acme, "ann@mail.example") is not None


def test_an_unreachable_provider_is_a_502_page_not_a_500(oauth_app, provider, acme):
    import socket

    app = oauth_app
    enable(app, provider, acme, "google")
    # A port nothing listens on: bind, note it, close.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/.well-known/openid-configuration"
    settings = app.extensions["albedo.settings"]
    app.extensions["albedo.settings"] = settings.with_overrides(
        extra={**settings.extra, "OAUTH_GOOGLE_SERVER_METADATA_URL": dead})
    response = acme.client.get("/auth/oauth/google/start")
    assert response.status_code == 502
    assert "cannot be reached" in response.get_data(as_text=True)


def test_a_mistyped_endpoint_override_fails_at_start_with_its_name(migrated):
    from app import create_app
    from app.auth.oauth import OAuthConfigError

    with pytest.raises(OAuthConfigError, match="OAUTH_GITHUB_API_BASE"):
        create_app(migrated.with_overrides(
            extra={**migrated.extra, "OAUTH_GITHUB_API_BASE": "api.github.com"}))
