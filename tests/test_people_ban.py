"""Banning a customer from the reseller's customer page (the API did it alone before): the
button asks first, the ban is audited, the customer's licenses answer BANNED at once, and
another reseller can neither see nor ban the look-alike customer. No browser needed."""

from __future__ import annotations

from tests.accounts_support import audit_actions, post_form, user_row
from tests.conftest import login
from tests.licensing_support import VALIDATE, make_license, verified


def _code(site, key: str) -> str:
    return verified(site, site.client.post(VALIDATE, json={"key": key}), {"key": key})["code"]


def test_a_reseller_bans_and_unbans_a_customer_from_its_page(app, acme, globex, make_user):
    casey = make_user(acme, "casey@example.com")
    lookalike = make_user(globex, "casey@example.com")
    lic = make_license(app, acme, license_kwargs={"owner_id": casey})
    theirs = make_license(app, globex, license_kwargs={"owner_id": lookalike})
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(globex, "owner@globex.example", role="RESELLER")
    login(acme, "owner@acme.example")
    login(globex, "owner@globex.example")
    page = f"/people/customers/{casey}"

    html = acme.client.get(page).get_data(as_text=True)
    assert 'data-testid="customer-ban"' in html
    assert f'action="/people/customers/{casey}/ban" data-confirm="Ban casey@example.com?' in html
    assert 'data-confirm-action="Ban"' in html  # the confirm dialog's button says what it does
    # Globex's owner neither sees nor bans acme's customer.
    assert globex.client.get(page).status_code == 404
    assert post_form(globex, f"{page}/ban", {},
                     token_from=f"/people/customers/{lookalike}").status_code == 404
    assert acme.client.post(f"{page}/ban").status_code == 400  # a CSRF token is needed

    done = post_form(acme, f"{page}/ban", {}, token_from=page)
    assert done.status_code == 302 and done.headers["Location"].endswith(page)
    assert user_row(app, acme, "casey@example.com").banned_at is not None
    assert user_row(app, globex, "casey@example.com").banned_at is None
    assert _code(acme, lic.key) == "BANNED"
    assert _code(globex, theirs.key) == "VALID"
    assert audit_actions(app, acme).count("user_banned") == 1
    assert "user_banned" not in audit_actions(app, globex)
    html = acme.client.get(page).get_data(as_text=True)
    assert "is banned: their licenses answer BANNED" in html  # the flash
    assert f'action="/people/customers/{casey}/unban" data-confirm="Unban' in html

    assert post_form(acme, f"{page}/unban", {}, token_from=page).status_code == 302
    assert user_row(app, acme, "casey@example.com").banned_at is None
    assert _code(acme, lic.key) == "VALID"
    assert audit_actions(app, acme)[-1] == "user_unbanned"


def test_only_resellers_ban_and_only_customers(app, acme, make_user):
    casey = make_user(acme, "casey@example.com")
    make_user(acme, "dana@example.com")
    teammate = make_user(acme, "mate@acme.example", role="RESELLER")
    make_user(acme, "owner@acme.example", role="RESELLER")
    login(acme, "dana@example.com")
    assert post_form(acme, f"/people/customers/{casey}/ban", {},
                     token_from="/").status_code == 403
    login(acme, "owner@acme.example")
    assert post_form(acme, f"/people/customers/{teammate}/ban", {},
                     token_from="/people/customers").status_code == 404
    assert user_row(app, acme, "casey@example.com").banned_at is None
    assert "user_banned" not in audit_actions(app, acme)
