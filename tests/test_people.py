"""People: invitations (reseller and platform), team and customer pages, deactivation, the
customer page, and sign-in-as with its audit and refusals. Two tenants with look-alike data
throughout: acme's people are invisible and untouchable from globex."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select

from tests.accounts_support import (
    audit_actions,
    csrf,
    host_of,
    path_of,
    post_form,
    sent_emails,
    user_row,
)
from tests.conftest import login

NEW = "a new shiny passphrase"


def _owner(make_user, site, email):
    make_user(site, email, role="RESELLER")
    login(site, email)


def _invite(site, email, role="USER", name=""):
    return post_form(site, "/people/invite", {"email": email, "role": role, "name": name},
                     token_from="/people/customers")


def _accept(site, link, password=NEW):
    path = path_of(link)
    return post_form(site, path, {"password": password, "confirm": password, "name": ""})


def test_reseller_invites_a_customer_who_sets_a_password_and_signs_in(app, acme, globex,
                                                                       make_user):
    _owner(make_user, acme, "owner@acme.example")
    _owner(make_user, globex, "owner@globex.example")
    assert _invite(acme, "casey@customer.example", name="Casey").status_code == 302
    _invite(globex, "casey@customer.example")  # the same address at the other reseller

    [email] = sent_emails(app, acme, "invitation")
    assert email.to == "casey@customer.example"
    assert "Acme Agents" in email.subject and "Albedo" not in email.text + email.subject
    assert host_of(email.link) == "acme.localhost:5000"
    # Stored as a hash only: the token in the link is nowhere in the table.
    token = path_of(email.link).rsplit("/", 1)[1]
    from app.auth.models import Invitation
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(acme.info):
        row = db.session.scalars(select(Invitation)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in str(row.__dict__)

    # acme's page lists its invitation; globex's does not show acme's
    assert "casey@customer.example" in acme.client.get("/people/customers").get_data(
        as_text=True)
    # acme's link does not work on globex's domain
    assert globex.client.get(path_of(email.link)).status_code == 404

    visitor = acme.client.application.test_client()
    page = visitor.get(path_of(email.link), headers={"Host": "acme.localhost"})
    assert page.status_code == 200 and "casey@customer.example" in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    acme.client.post("/logout", data={"csrf_token": csrf(acme, "/")})
    done = _accept(acme, email.link)
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    assert login(acme, "casey@customer.example", NEW).status_code == 302
    casey = user_row(app, acme, "casey@customer.example")
    assert casey.role == "USER" and casey.email_verified_at is not None
    assert user_row(app, globex, "casey@customer.example") is None  # globex's still pending
    # single use
    assert acme.client.get(path_of(email.link)).status_code == 410
    assert {"invitation_sent", "invitation_accepted"} <= set(audit_actions(app, acme))
    assert "invitation_accepted" not in audit_actions(app, globex)


def test_resend_replaces_the_link_revoke_and_expiry_kill_it(app, acme, make_user, at):
    from app import clock

    _owner(make_user, acme, "owner@acme.example")
    _invite(acme, "team@acme.example", role="RESELLER")
    first = sent_emails(app, acme, "invitation")[0]
    from app.auth.models import Invitation
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(acme.info):
        invitation_id = db.session.scalars(select(Invitation.id)).one()
    assert post_form(acme, f"/people/invitations/{invitation_id}/resend", {},
                     token_from="/people/team").status_code == 302
    second = sent_emails(app, acme, "invitation")[1]
    assert first.link != second.link
    assert acme.client.get(path_of(first.link)).status_code == 404  # the old link died
    assert acme.client.get(path_of(second.link)).status_code == 200

    at(clock.now() + timedelta(days=8))
    assert acme.client.get(path_of(second.link)).status_code == 410  # expired
    at(clock.now() - timedelta(days=8))
    post_form(acme, f"/people/invitations/{invitation_id}/revoke", {},
              token_from="/people/team")
    assert acme.client.get(path_of(second.link)).status_code == 410
    actions = audit_actions(app, acme)
    assert "invitation_resent" in actions and "invitation_revoked" in actions


def test_invitations_refuse_existing_members_and_respect_tenants(app, acme, globex,
                                                                 make_user):
    make_user(acme, "alice@example.com")
    _owner(make_user, acme, "owner@acme.example")
    taken = _invite(acme, "alice@example.com")
    assert taken.status_code == 409 and "already has an account" in taken.get_data(as_text=True)
    _owner(make_user, globex, "owner@globex.example")
    _invite(globex, "bob@example.com")
    from app.auth.models import Invitation
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(globex.info):
        globex_invitation = db.session.scalars(select(Invitation.id)).one()
    # acme's staff cannot touch globex's invitation: the same 404 as a made-up id
    assert post_form(acme, f"/people/invitations/{globex_invitation}/revoke", {},
                     token_from="/people/team").status_code == 404


def test_invitations_api(app, acme, globex, api_caller):
    owner = api_caller(acme, role="RESELLER")
    spy = api_caller(globex, role="RESELLER")
    customer = api_caller(acme, role="USER")
    made = acme.client.post("/api/v1/invitations", headers=owner.headers,
                            json={"email": "Dana@Example.com", "role": "USER"})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["email"] == "dana@example.com" and body["state"] == "pending"
    assert "token" not in str(body) and "hash" not in str(body)
    listed = acme.client.get("/api/v1/invitations", headers=owner.headers).get_json()
    assert [i["email"] for i in listed["items"]] == ["dana@example.com"]
    assert globex.client.get("/api/v1/invitations", headers=spy.headers).get_json()[
        "items"] == []
    assert globex.client.post(f"/api/v1/invitations/{body['id']}/resend",
                              headers=spy.headers).status_code == 404
    assert acme.client.get("/api/v1/invitations", headers=customer.headers).status_code == 403
    resent = acme.client.post(f"/api/v1/invitations/{body['id']}/resend", headers=owner.headers)
    assert resent.get_json()["send_count"] == 2
    revoked = acme.client.delete(f"/api/v1/invitations/{body['id']}", headers=owner.headers)
    assert revoked.get_json()["state"] == "revoked"
    again = acme.client.delete(f"/api/v1/invitations/{body['id']}", headers=owner.headers)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "invitation_revoked"
    bad = acme.client.post("/api/v1/invitations", headers=owner.headers,
                           json={"email": "nope", "role": "USER"})
    assert bad.status_code == 422 and "email" in bad.get_json()["error"]["details"]["fields"]
    wrong_role = acme.client.post("/api/v1/invitations", headers=owner.headers,
                                  json={"email": "x@example.com", "role": "ADMIN"})
    assert wrong_role.status_code == 422


def test_platform_onboards_a_reseller_with_its_owner_invited(app, platform, acme, make_user,
                                                            api_caller):
    admin = api_caller(platform, role="ADMIN")
    made = platform.client.post("/api/v1/platform/resellers", headers=admin.headers, json={
        "slug": "initech", "name": "Initech", "owner_email": "boss@initech.example"})
    assert made.status_code == 201, made.get_json()
    tenant_id = made.get_json()["id"]
    from tests.conftest import Site, host_client

    with app.app_context():
        from tenants.service import get_by_slug, info_for

        info = info_for(get_by_slug("initech"))
    initech = Site(info=info, host=info.primary_host, client=host_client(app, info.primary_host))
    [email] = sent_emails(app, initech, "invitation")
    assert email.to == "boss@initech.example" and "Initech" in email.subject
    assert "Albedo" not in email.text + email.subject
    assert host_of(email.link) == "initech.localhost:5000"
    assert sent_emails(app, acme) == [] and sent_emails(app, platform) == []

    listed = platform.client.get(f"/api/v1/platform/resellers/{tenant_id}/invitations",
                                 headers=admin.headers).get_json()
    assert [i["email"] for i in listed] == ["boss@initech.example"]
    resent = platform.client.post(
        f"/api/v1/platform/resellers/{tenant_id}/invitations/{listed[0]['id']}/resend",
        headers=admin.headers)
    assert resent.status_code == 200 and resent.get_json()["send_count"] == 2
    # acme's id with initech's invitation: not found
    assert platform.client.post(
        f"/api/v1/platform/resellers/{acme.info.id}/invitations/{listed[0]['id']}/revoke",
        headers=admin.headers).status_code == 404
    link = sent_emails(app, initech, "invitation")[-1].link
    assert _accept(initech, link).status_code == 302
    assert login(initech, "boss@initech.example", NEW).status_code == 302
    assert user_row(app, initech, "boss@initech.example").role == "RESELLER"
    # the reseller's log names no operator address; the platform's log names the operator
    assert "invitation_sent" in audit_actions(app, initech)
    assert "invitation_sent" in audit_actions(app, platform)
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(initech.info):
        labels = {e.actor_label for e in db.session.scalars(select(AuditEvent))}
    assert admin.email not in labels


def test_deactivate_and_reactivate_from_the_pages(app, acme, globex, make_user):
    alice = make_user(acme, "alice@example.com")
    globex_alice = make_user(globex, "alice@example.com")
    _owner(make_user, acme, "owner@acme.example")
    _owner(make_user, globex, "owner@globex.example")
    page = acme.client.get("/people/customers").get_data(as_text=True)
    assert "alice@example.com" in page
    assert post_form(acme, f"/people/users/{alice}/deactivate", {},
                     token_from="/people/customers").status_code == 302
    assert user_row(app, acme, "alice@example.com").is_active is False
    assert user_row(app, globex, "alice@example.com").is_active is True
    assert login(acme, "alice@example.com").status_code == 401
    # globex's staff cannot reach acme's alice
    assert post_form(globex, f"/people/users/{alice}/reactivate", {},
                     token_from="/people/customers").status_code == 404
    assert globex.client.get(f"/people/customers/{alice}").status_code == 404
    login(acme, "owner@acme.example")
    post_form(acme, f"/people/users/{alice}/reactivate", {}, token_from="/people/customers")
    assert user_row(app, acme, "alice@example.com").is_active is True
    assert globex_alice is not None


def test_customer_page_shows_plan_usage_and_keys(app, acme, make_user, api_caller):
    customer = api_caller(acme, role="USER", email="casey@example.com")
    _owner(make_user, acme, "owner@acme.example")
    page = acme.client.get(f"/people/customers/{customer.user_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "casey@example.com" in html and "Plan:" in html and "test key" in html
    assert 'data-testid="customer-executions"' in html  # the usage chart with its table
    login(acme, "casey@example.com")
    assert acme.client.get(f"/people/customers/{customer.user_id}").status_code == 403


def test_sign_in_as_a_customer_is_audited_bannered_and_restricted(app, acme, globex,
                                                                  make_user):
    casey = make_user(acme, "casey@example.com", name="Casey")
    globex_casey = make_user(globex, "casey@example.com")
    _owner(make_user, acme, "owner@acme.example")
    _owner(make_user, globex, "owner@globex.example")
    # globex's staff cannot sign in as acme's customer (nor detect it exists)
    assert post_form(globex, f"/people/customers/{casey}/sign-in-as", {},
                     token_from="/people/customers").status_code == 404

    started = post_form(acme, f"/people/customers/{casey}/sign-in-as", {},
                        token_from=f"/people/customers/{casey}")
    assert started.status_code == 302
    home = acme.client.get("/").get_data(as_text=True)
    assert "Welcome, Casey" in home and 'data-testid="sign-in-as-banner"' in home
    # no password, key or billing changes while signed in as the customer
    refused = post_form(acme, "/account/password", {
        "current_password": "", "password": NEW, "confirm": NEW}, token_from="/account")
    assert refused.status_code == 403
    assert "signed in as someone else" in refused.get_data(as_text=True)
    assert post_form(acme, "/settings/api-keys", {"name": "sneaky"},
                     token_from="/account").status_code == 403
    assert post_form(acme, "/billing/portal", {}, token_from="/account").status_code == 403
    # the API never takes this session as a credential (no cookie session on /api at all)
    api = acme.client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["agents:read"]})
    assert api.status_code == 401
    assert user_row(app, acme, "casey@example.com").session_version == 0
    # reading is fine
    assert acme.client.get("/account").status_code == 200

    ended = post_form(acme, "/sign-in-as/end", {}, token_from="/")
    assert ended.status_code == 302 and str(casey) in ended.headers["Location"]
    back = acme.client.get("/").get_data(as_text=True)
    assert "sign-in-as-banner" not in back and "owner@acme.example" in back
    actions = audit_actions(app, acme)
    assert actions.count("sign_in_as_started") == 1 and actions.count("sign_in_as_ended") == 1
    assert "sign_in_as_started" not in audit_actions(app, globex)
    assert globex_casey is not None


def test_customers_cannot_sign_in_as_and_signing_out_ends_it(app, acme, make_user):
    casey = make_user(acme, "casey@example.com")
    dana = make_user(acme, "dana@example.com")
    login(acme, "casey@example.com")
    assert post_form(acme, f"/people/customers/{dana}/sign-in-as", {},
                     token_from="/").status_code == 403
    _owner(make_user, acme, "owner@acme.example")
    post_form(acme, f"/people/customers/{casey}/sign-in-as", {}, token_from="/")
    acme.client.post("/logout", data={"csrf_token": csrf(acme, "/")})
    assert audit_actions(app, acme).count("sign_in_as_ended") == 1
    # someone else signing in on this browser is not "signed in as"
    login(acme, "dana@example.com")
    assert "sign-in-as-banner" not in acme.client.get("/").get_data(as_text=True)


def test_platform_operator_signs_in_as_reseller_staff_and_back(app, platform, acme, globex,
                                                               make_user):
    make_user(platform, "admin@example.com", role="ADMIN")
    owner = make_user(acme, "owner@acme.example", role="RESELLER", name="Olivia")
    customer = make_user(acme, "casey@example.com")
    login(platform, "admin@example.com")
    path = f"/admin/resellers/{acme.info.id}/users/{owner}/sign-in-as"
    page = f"/admin/resellers/{acme.info.id}"
    # only staff, only of that reseller
    assert post_form(platform, f"/admin/resellers/{acme.info.id}/users/{customer}/sign-in-as",
                     {}, token_from=page).status_code == 404
    assert post_form(platform, f"/admin/resellers/{globex.info.id}/users/{owner}/sign-in-as",
                     {}, token_from=page).status_code == 404
    handoff = post_form(platform, path, {}, token_from=page)
    assert handoff.status_code == 302 and host_of(handoff.headers["Location"]) == \
        "acme.localhost:5000"
    link = path_of(handoff.headers["Location"])
    arrived = acme.client.get(link)
    assert arrived.status_code == 302
    home = acme.client.get("/").get_data(as_text=True)
    assert "Welcome, Olivia" in home and "sign-in-as-banner" in home
    assert "admin@example.com" not in home  # the reseller's pages never show the operator
    assert acme.client.get(link).status_code == 410  # single use
    assert post_form(acme, "/settings/api-keys", {"name": "x"},
                     token_from="/").status_code == 403
    ended = post_form(acme, "/sign-in-as/end", {}, token_from="/")
    assert ended.headers["Location"] == f"http://localhost:5000{page}"
    assert acme.client.get("/").status_code == 302  # signed out on the reseller's domain
    assert platform.client.get(page).status_code == 200  # the operator's session lives on
    for site in (acme, platform):
        actions = audit_actions(app, site)
        assert "sign_in_as_started" in actions and "sign_in_as_ended" in actions
    assert "sign_in_as_started" not in audit_actions(app, globex)


def test_handoff_links_expire(app, platform, acme, make_user, at):
    from app import clock

    make_user(platform, "admin@example.com", role="ADMIN")
    owner = make_user(acme, "owner@acme.example", role="RESELLER")
    login(platform, "admin@example.com")
    handoff = post_form(platform, f"/admin/resellers/{acme.info.id}/users/{owner}/sign-in-as",
                        {}, token_from=f"/admin/resellers/{acme.info.id}")
    at(clock.now() + timedelta(minutes=5))
    assert acme.client.get(path_of(handoff.headers["Location"])).status_code == 410


def test_the_customer_list_offers_sign_in_as_with_a_confirmation(app, acme, globex, make_user):
    casey = make_user(acme, "casey@example.com", name="Casey")
    gone = make_user(acme, "gone@example.com")
    make_user(globex, "casey@example.com")
    _owner(make_user, acme, "owner@acme.example")
    _owner(make_user, globex, "owner@globex.example")
    post_form(acme, f"/people/users/{gone}/deactivate", {}, token_from="/people/customers")
    html = acme.client.get("/people/customers").get_data(as_text=True)
    # The same component as the customer's page: a form to the same endpoint, confirmed first.
    page = acme.client.get(f"/people/customers/{casey}").get_data(as_text=True)
    for where in (html, page):
        start = where.index(f'action="/people/customers/{casey}/sign-in-as"')
        form = where[where.rindex("<form", 0, start):where.index("</form>", start)]
        assert "data-confirm=" in form and "casey@example.com" in form
        assert 'data-testid="sign-in-as"' in form
    assert f"/people/customers/{gone}/sign-in-as" not in html  # not for a deactivated one
    assert "/sign-in-as" not in acme.client.get("/people/team").get_data(as_text=True)
    assert str(casey) not in globex.client.get("/people/customers").get_data(as_text=True)
    started = post_form(acme, f"/people/customers/{casey}/sign-in-as", {},
                        token_from="/people/customers")
    assert started.status_code == 302
    assert 'data-testid="sign-in-as-banner"' in acme.client.get("/").get_data(as_text=True)


def test_the_banner_is_on_every_page_says_who_and_goes_away_on_return(app, acme, make_user):
    casey = make_user(acme, "casey@example.com", name="Casey")
    _owner(make_user, acme, "owner@acme.example")
    post_form(acme, f"/people/customers/{casey}/sign-in-as", {}, token_from="/people/customers")
    for path in ("/", "/agents", "/account", "/settings/api-keys", "/my/licenses", "/billing"):
        html = acme.client.get(path).get_data(as_text=True)
        banner = html[html.index('data-testid="sign-in-as-banner"'):]
        banner = banner[:banner.index("</div>")]
        assert "owner@acme.example" in banner and "casey@example.com" in banner, path
        assert 'action="/sign-in-as/end"' in banner and "Return to my account" in banner
        # In the layout, not among the flashed messages: once, above the page's own content.
        assert html.count('data-testid="sign-in-as-banner"') == 1
        assert html.index("sign-in-as-banner") < html.index('<main id="main"')
    post_form(acme, "/sign-in-as/end", {}, token_from="/")
    for path in ("/", "/people/customers", f"/people/customers/{casey}"):
        assert "sign-in-as-banner" not in acme.client.get(path).get_data(as_text=True)


def _ending_sentences(app, site) -> list[str]:
    from app.auth import audit_text
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(site.info), app.test_request_context():
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "sign_in_as_ended")).all()
        return [line.sentence for line in audit_text.describe(events)]


def test_sign_in_as_ends_at_its_time_limit(app, acme, globex, make_user, at):
    from datetime import UTC, datetime

    casey = make_user(acme, "casey@example.com", name="Casey")
    make_user(globex, "casey@example.com")
    _owner(make_user, acme, "owner@acme.example")
    _owner(make_user, globex, "owner@globex.example")
    start = at(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    post_form(acme, f"/people/customers/{casey}/sign-in-as", {}, token_from="/people/customers")
    post_form(globex, "/people/invite", {"email": "x@example.com", "role": "USER", "name": ""},
              token_from="/people/customers")  # globex's own session, untouched by acme's
    at(start + timedelta(minutes=59, seconds=59))
    home = acme.client.get("/").get_data(as_text=True)
    assert "Welcome, Casey" in home and "until 10:00 UTC" in home  # the default: 60 minutes
    assert audit_actions(app, acme).count("sign_in_as_ended") == 0

    at(start + timedelta(minutes=60))
    # A stylesheet or an API call (which never reads this session) does not end it…
    assert acme.client.get("/theme.css").status_code == 200
    assert acme.client.get("/api/v1/me").status_code == 401
    assert audit_actions(app, acme).count("sign_in_as_ended") == 0
    # …the next page does, and says so: back to the staff member, on the customer's page.
    ended = acme.client.get("/agents")
    assert ended.status_code == 302 and ended.headers["Location"].endswith(
        f"/people/customers/{casey}")
    back = acme.client.get(ended.headers["Location"]).get_data(as_text=True)
    assert "sign-in-as-banner" not in back and "owner@acme.example" in back
    assert "ended after its 60-minute limit" in back
    assert audit_actions(app, acme).count("sign_in_as_ended") == 1
    assert _ending_sentences(app, acme) == [
        "owner@acme.example stopped signing in as casey@example.com (ended: time limit)"]
    assert _ending_sentences(app, globex) == []
    assert globex.client.get("/people/customers").status_code == 200


def test_the_time_limit_is_a_setting_checked_at_start(app, migrated, acme, make_user, at):
    from datetime import UTC, datetime

    import pytest

    from app import create_app
    from app.auth.impersonation import SignInAsConfigError
    from tests.conftest import Site, host_client

    for bad in ("0", "481", "an hour", "-5"):
        with pytest.raises(SignInAsConfigError, match="ALBEDO_SIGN_IN_AS_MINUTES"):
            create_app(migrated.with_overrides(extra={**migrated.extra,
                                                      "ALBEDO_SIGN_IN_AS_MINUTES": bad}))
    short = create_app(migrated.with_overrides(extra={**migrated.extra,
                                                      "ALBEDO_SIGN_IN_AS_MINUTES": "5"}))
    site = Site(info=acme.info, host=acme.host, client=host_client(short, acme.host))
    casey = make_user(acme, "casey@example.com")
    _owner(make_user, site, "owner@acme.example")
    start = at(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    form = site.client.get("/people/customers").get_data(as_text=True)
    assert "for at most 5 minutes" in form
    post_form(site, f"/people/customers/{casey}/sign-in-as", {}, token_from="/people/customers")
    at(start + timedelta(minutes=4))
    assert "sign-in-as-banner" in site.client.get("/").get_data(as_text=True)
    at(start + timedelta(minutes=5))
    assert site.client.get("/").status_code == 302
    assert "sign-in-as-banner" not in site.client.get("/").get_data(as_text=True)
    with short.app_context():
        from app.extensions import db

        db.engine.dispose()


def test_the_operators_sign_in_as_ends_at_the_time_limit_too(app, platform, acme, make_user,
                                                             at):
    from datetime import UTC, datetime

    make_user(platform, "admin@example.com", role="ADMIN")
    owner = make_user(acme, "owner@acme.example", role="RESELLER", name="Olivia")
    login(platform, "admin@example.com")
    start = at(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    page = f"/admin/resellers/{acme.info.id}"
    handoff = post_form(platform, f"{page}/users/{owner}/sign-in-as", {}, token_from=page)
    acme.client.get(path_of(handoff.headers["Location"]))
    home = acme.client.get("/").get_data(as_text=True)
    assert "The platform operator" in home and "admin@example.com" not in home
    assert "Return to the platform" in home
    at(start + timedelta(hours=1))
    ended = acme.client.get("/")
    assert ended.headers["Location"] == f"http://localhost:5000{page}"
    assert acme.client.get("/").status_code == 302  # signed out on the reseller's domain
    assert platform.client.get(page).status_code == 200  # the operator's own session lives on
    for site in (acme, platform):
        assert audit_actions(app, site).count("sign_in_as_ended") == 1
