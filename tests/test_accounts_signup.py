"""Sign-up for end customers on a reseller's domain, and email verification."""

from __future__ import annotations

from datetime import timedelta

from app import clock
from tests.accounts_support import (
    PASSWORD,
    audit_actions,
    give_custom_primary_domain,
    host_of,
    path_of,
    post_form,
    sent_emails,
    user_row,
)


def _sign_up(site, email, password=PASSWORD, **headers):
    return post_form(site, "/signup", {"email": email, "password": password, "name": "Ann"},
                     headers=headers or None)


def test_sign_up_creates_an_unverified_user_of_that_reseller_only(app, acme, globex):
    response = _sign_up(acme, "Ann@Example.com")
    assert response.status_code == 200
    assert 'data-testid="check-email"' in response.get_data(as_text=True)
    user = user_row(app, acme, "ann@example.com")
    assert user is not None and user.role == "USER" and user.email_verified_at is None
    # The look-alike tenant neither holds the user nor sent anything.
    assert user_row(app, globex, "ann@example.com") is None
    assert sent_emails(app, globex) == []
    [mail] = sent_emails(app, acme, "verify_email")
    assert mail.to == "ann@example.com" and "Acme Agents" in mail.subject
    assert host_of(mail.link) == acme.info.primary_host + ":5000"
    assert "sign_up" in audit_actions(app, acme)
    assert "sign_up" not in audit_actions(app, globex)


def test_verification_link_verifies_once_signed_and_in_its_tenant(app, acme, globex):
    _sign_up(acme, "ann@example.com")
    _sign_up(globex, "ann@example.com")  # the same person at the other reseller
    [acme_mail] = sent_emails(app, acme, "verify_email")
    # acme's link on globex's domain: the signed tenant id does not match.
    assert globex.client.get(path_of(acme_mail.link)).status_code == 400
    assert user_row(app, globex, "ann@example.com").email_verified_at is None
    # A tampered signature is refused.
    assert acme.client.get(path_of(acme_mail.link) + "x").status_code == 400
    ok = acme.client.get(path_of(acme_mail.link))
    assert ok.status_code == 200 and 'data-testid="email-verified"' in ok.get_data(as_text=True)
    assert user_row(app, acme, "ann@example.com").email_verified_at is not None
    assert user_row(app, globex, "ann@example.com").email_verified_at is None


def test_verification_link_expires(app, acme):
    start = clock.now()
    clock.set_clock(lambda: start)
    _sign_up(acme, "ann@example.com")
    [mail] = sent_emails(app, acme, "verify_email")
    clock.set_clock(lambda: start + timedelta(days=2, seconds=1))
    late = acme.client.get(path_of(mail.link))
    assert late.status_code == 400 and "expired" in late.get_data(as_text=True)
    assert user_row(app, acme, "ann@example.com").email_verified_at is None


def test_registered_email_gets_the_same_answer_and_no_second_account(app, acme, globex,
                                                                     make_user):
    make_user(acme, "taken@example.com")
    fresh = _sign_up(acme, "new@example.com")
    taken = _sign_up(acme, "taken@example.com")
    assert taken.status_code == fresh.status_code == 200
    normalise = lambda r, e: r.get_data(as_text=True).replace(e, "EMAIL")  # noqa: E731
    assert normalise(taken, "taken@example.com") == normalise(fresh, "new@example.com")
    # The owner of the address hears about it; no verification link for an existing account.
    assert [m.template for m in sent_emails(app, acme) if m.to == "taken@example.com"] == [
        "account_exists"]
    assert sent_emails(app, globex) == []


def test_sign_up_is_404_on_the_platform_and_where_the_reseller_turned_it_off(
        app, platform, acme, globex):
    from app.extensions import db
    from tenants.service import get_by_slug

    with app.app_context():
        get_by_slug("globex").signup_enabled = False
        db.session.commit()
    assert platform.client.get("/signup").status_code == 404
    assert globex.client.get("/signup").status_code == 404
    closed = post_form(globex, "/signup", {"email": "x@example.com", "password": PASSWORD},
                       token_from="/login")
    assert closed.status_code == 404 and user_row(app, globex, "x@example.com") is None
    assert acme.client.get("/signup").status_code == 200
    # The sign-in pages link to sign-up only where it exists.
    assert "/signup" in acme.client.get("/login").get_data(as_text=True)
    assert "/signup" not in globex.client.get("/login").get_data(as_text=True)
    assert "/signup" not in platform.client.get("/login").get_data(as_text=True)


def test_bad_sign_up_input_is_a_form_error_not_a_500(app, acme):
    short = _sign_up(acme, "ann@example.com", password="short")
    assert short.status_code == 400
    assert "at least 10 characters" in short.get_data(as_text=True)
    bad_email = _sign_up(acme, "not-an-email")
    assert bad_email.status_code == 400
    assert "must be an email address" in bad_email.get_data(as_text=True)
    no_csrf = acme.client.post("/signup", data={"email": "a@example.com", "password": PASSWORD})
    assert no_csrf.status_code == 400
    assert user_row(app, acme, "ann@example.com") is None
    assert user_row(app, acme, "a@example.com") is None


def test_verification_link_ignores_forged_forwarded_host(app, acme, globex):
    primary = give_custom_primary_domain(app, acme, "agents.acme-shop.example")
    # The request arrives on the slug host with forged forwarding headers.
    _sign_up(acme, "ann@example.com", **{"X-Forwarded-Host": "evil.example",
                                          "Forwarded": "host=evil.example"})
    [mail] = sent_emails(app, acme, "verify_email")
    assert host_of(mail.link) == f"{primary}:5000"
    assert "evil.example" not in mail.text


def test_resend_verification_from_account_settings(app, acme, make_user):
    from tests.conftest import login

    _sign_up(acme, "ann@example.com")
    assert login(acme, "ann@example.com").status_code == 302
    page = acme.client.get("/account").get_data(as_text=True)
    assert "not verified yet" in page
    response = post_form(acme, "/account/verify-email", {}, token_from="/account")
    assert response.status_code == 302
    assert len(sent_emails(app, acme, "verify_email")) == 2
    acme.client.get(path_of(sent_emails(app, acme, "verify_email")[-1].link))
    assert "not verified yet" not in acme.client.get("/account").get_data(as_text=True)
