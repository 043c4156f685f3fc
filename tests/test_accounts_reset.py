"""Password reset: no account enumeration, signed single-use expiring links on the tenant's
primary domain, sessions and refresh tokens ended."""

from __future__ import annotations

from datetime import timedelta

from app import clock
from tests.accounts_support import (
    NEW_PASSWORD,
    PASSWORD,
    audit_actions,
    give_custom_primary_domain,
    host_of,
    path_of,
    post_form,
    sent_emails,
)
from tests.conftest import Site, host_client, login


def _ask(site, email, **headers):
    return post_form(site, "/forgot-password", {"email": email}, headers=headers or None)


def _reset(site, link, password=NEW_PASSWORD, confirm=None):
    path = path_of(link)
    return post_form(site, path, {"password": password, "confirm": confirm or password})


def test_request_answers_the_same_whether_or_not_the_email_has_an_account(
        app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    make_user(globex, "bob@example.com")  # an account, but at the other reseller
    known = _ask(acme, "alice@example.com")
    unknown = _ask(acme, "bob@example.com")
    assert known.status_code == unknown.status_code == 200
    assert (known.get_data(as_text=True).replace("alice@example.com", "E")
            == unknown.get_data(as_text=True).replace("bob@example.com", "E"))
    assert [m.to for m in sent_emails(app, acme, "password_reset")] == ["alice@example.com"]
    assert sent_emails(app, globex) == []


def test_reset_link_changes_the_password_once_and_ends_sessions_and_refresh_tokens(
        app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    make_user(globex, "alice@example.com")  # look-alike account, untouched throughout
    # The reset happens in another browser than the session it must end.
    other = Site(acme.info, acme.host, host_client(app, acme.host))
    assert login(acme, "alice@example.com").status_code == 302
    refresh = acme.client.post("/api/v1/auth/token", json={
        "email": "alice@example.com", "password": PASSWORD}).get_json()["refresh_token"]
    _ask(other, "alice@example.com")
    [mail] = sent_emails(app, acme, "password_reset")
    assert other.client.get(path_of(mail.link)).status_code == 200  # the form
    done = _reset(other, mail.link)
    assert done.status_code == 200
    assert 'data-testid="password-reset-done"' in done.get_data(as_text=True)
    # The session signed in before the reset is over; the refresh token is revoked.
    assert acme.client.get("/").status_code == 302
    assert acme.client.post("/api/v1/auth/refresh",
                            json={"refresh_token": refresh}).status_code == 401
    # Only the new password works here; globex's alice keeps hers.
    assert login(acme, "alice@example.com").status_code == 401
    assert login(acme, "alice@example.com", NEW_PASSWORD).status_code == 302
    assert login(globex, "alice@example.com").status_code == 302
    # The same link a second time is refused, with the password left alone.
    again = other.client.get(path_of(mail.link))
    assert again.status_code == 400 and "already used" in again.get_data(as_text=True)
    assert "password_changed" in audit_actions(app, acme)
    assert "password_changed" not in audit_actions(app, globex)


def test_a_newer_password_kills_older_reset_links(app, acme, make_user):
    make_user(acme, "alice@example.com")
    _ask(acme, "alice@example.com")
    _ask(acme, "alice@example.com")
    first, second = sent_emails(app, acme, "password_reset")
    assert _reset(acme, second.link).status_code == 200
    assert acme.client.get(path_of(first.link)).status_code == 400


def test_reset_link_expires_after_an_hour(app, acme, make_user):
    make_user(acme, "alice@example.com")
    start = clock.now()
    clock.set_clock(lambda: start)
    _ask(acme, "alice@example.com")
    [mail] = sent_emails(app, acme, "password_reset")
    clock.set_clock(lambda: start + timedelta(minutes=59))
    assert acme.client.get(path_of(mail.link)).status_code == 200
    clock.set_clock(lambda: start + timedelta(hours=1, seconds=1))
    late = acme.client.get(path_of(mail.link))
    assert late.status_code == 400 and "expired" in late.get_data(as_text=True)


def test_reset_link_from_acme_does_nothing_at_globex(app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    make_user(globex, "alice@example.com")
    _ask(acme, "alice@example.com")
    [mail] = sent_emails(app, acme, "password_reset")
    assert globex.client.get(path_of(mail.link)).status_code == 400
    assert login(globex, "alice@example.com").status_code == 302  # password unchanged


def test_reset_link_points_at_the_primary_domain_whatever_host_was_sent(app, acme, make_user):
    make_user(acme, "alice@example.com")
    primary = give_custom_primary_domain(app, acme, "agents.acme-shop.example")
    # Asked for on the slug host, with forged forwarding headers.
    _ask(acme, "alice@example.com", **{"X-Forwarded-Host": "evil.example",
                                       "X-Forwarded-Proto": "https",
                                       "Forwarded": "host=evil.example"})
    [mail] = sent_emails(app, acme, "password_reset")
    assert host_of(mail.link) == f"{primary}:5000"
    assert mail.link.startswith("http://") and "evil.example" not in mail.text


def test_bad_reset_input_is_a_form_error(app, acme, make_user):
    make_user(acme, "alice@example.com")
    _ask(acme, "alice@example.com")
    [mail] = sent_emails(app, acme, "password_reset")
    differ = _reset(acme, mail.link, confirm="something else entirely")
    assert differ.status_code == 400 and "The two passwords differ." in differ.get_data(
        as_text=True)
    short = _reset(acme, mail.link, password="short")
    assert short.status_code == 400 and "at least 10 characters" in short.get_data(as_text=True)
    empty = post_form(acme, "/forgot-password", {"email": ""})
    assert empty.status_code == 400
    # The link survived the failed attempts.
    assert _reset(acme, mail.link).status_code == 200
